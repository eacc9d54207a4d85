from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.ingest.step import run_summary

run_summary(summaries=list(snakemake.input.summaries), output=snakemake.output[0], dataset=snakemake.wildcards.dataset, log=snakemake.log[0])
