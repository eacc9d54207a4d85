from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.categorise.step import run_minmax

run_minmax(muons_file=snakemake.input[0], output=snakemake.output[0], log=snakemake.log[0])
