from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pathlib import Path
from pipeline_steps.generate.step import run
run(train_dir=str(Path(snakemake.input.model).parent), test_split=snakemake.input.test, transforms=snakemake.input.transforms, output=snakemake.output.root, generation_json=snakemake.output.generation, params=dict(snakemake.params.items()), log_path=snakemake.log[0], categories=(snakemake.input.categories or [None])[0])
