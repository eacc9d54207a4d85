from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pathlib import Path
from pipeline_steps.generate.step import run
run(train_dir=str(Path(snakemake.input.model).parent), test_split=snakemake.input.test, transforms=snakemake.input.transforms, output=snakemake.output.root, generation_json=snakemake.output.generation, params=dict(snakemake.params.items()), log_path=snakemake.log[0], categories=(snakemake.input.categories or [None])[0])
