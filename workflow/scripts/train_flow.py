from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.train.flow import run

run(**dict(snakemake.input.items()), **dict(snakemake.output.items()), model=snakemake.params.model, seed=snakemake.params.seed, checkpoint_dir=snakemake.params.checkpoint_dir, log=snakemake.log[0], threads=snakemake.threads)
