from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.toy.step import run

run(outputs=list(snakemake.output), dataset=snakemake.params.dataset, params=snakemake.params, log=snakemake.log[0])
