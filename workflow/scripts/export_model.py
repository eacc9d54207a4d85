from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.export.step import run
run(model_files=list(snakemake.input.model), transforms=snakemake.input.transforms, test_split=snakemake.input.test, output_dir=snakemake.params.bundle, params={"model_name": snakemake.wildcards.model, **dict(snakemake.params.items())}, raw_checksums=list(snakemake.input.raw_checksums), log_path=snakemake.log[0], categories=(list(snakemake.input.categories) or [None])[0])
