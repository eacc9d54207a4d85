from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.validate.step import run_summary
run_summary(metrics=list(snakemake.input.metrics), generation=list(snakemake.input.generation), train_dirs=list(snakemake.params.train_dirs), output=snakemake.output[0], log_path=snakemake.log[0])
