from pipeline_steps.ingest.step import run

run(raw_file=snakemake.input.raw_file, parquet=snakemake.output.parquet, summary=snakemake.output.summary, reading=snakemake.params.reading, mapping=snakemake.params.mapping, table=snakemake.wildcards.table, dataset=snakemake.wildcards.dataset, log=snakemake.log[0])
