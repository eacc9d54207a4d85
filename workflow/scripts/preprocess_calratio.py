from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pathlib import Path

from pipeline_steps.preprocess.step import run_calratio

run_calratio(main_tables=list(snakemake.input.main), control_tables=list(snakemake.input.control), output_dir=Path(snakemake.output.transforms).parent, params=snakemake.params, log=snakemake.log[0])
