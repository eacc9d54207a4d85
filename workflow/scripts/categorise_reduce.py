from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.categorise.step import run_reduce

run_reduce(partial_files=list(snakemake.input), output=snakemake.output[0], log=snakemake.log[0])
