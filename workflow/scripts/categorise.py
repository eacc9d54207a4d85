from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pipeline_steps.preprocess.categorise_step import run_categorise

run_categorise(muons_files=list(snakemake.input.muons), minmax_file=snakemake.input.minmax, category_files=list(snakemake.output.categories), categories_json=snakemake.output.described, params=snakemake.params, log=snakemake.log[0])
