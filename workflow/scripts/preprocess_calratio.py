from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pathlib import Path

from pipeline_steps.preprocess.calratio_step import run

run(main_tables=list(snakemake.input.main), control_tables=list(snakemake.input.control), output_dir=Path(snakemake.output.transforms).parent, params=snakemake.params, log=snakemake.log[0])
