from pipeline_steps.ingest.step import run_summary

run_summary(summaries=list(snakemake.input.summaries), output=snakemake.output[0], dataset=snakemake.wildcards.dataset, log=snakemake.log[0])
