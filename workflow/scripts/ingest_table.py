from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.ingest.step import run

run(raw_files=list(snakemake.input.raw_files), source_files=list(snakemake.params.source_files), parquet=snakemake.output.parquet, summary=snakemake.output.summary, reading=snakemake.params.reading, mapping=snakemake.params.mapping, table=snakemake.wildcards.table, dataset=snakemake.wildcards.dataset, log=snakemake.log[0], threads=snakemake.threads)
