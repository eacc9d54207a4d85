from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.preprocess.step import run_model

run_model(tables=list(snakemake.input.tables), outputs=dict(snakemake.output.items()), params=snakemake.params, log=snakemake.log[0])
