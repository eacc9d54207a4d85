from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pipeline_steps.export.step import run
run(model_files=list(snakemake.input.model), transforms=snakemake.input.transforms, test_split=snakemake.input.test, output_dir=snakemake.params.bundle, params={"model_name": snakemake.wildcards.model, "model": snakemake.params.model, "tree": snakemake.params.tree, "export": snakemake.params.export}, raw_files=list(snakemake.input.raw), log_path=snakemake.log[0], categories=(list(snakemake.input.categories) or [None])[0])
