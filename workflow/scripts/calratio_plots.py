from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pipeline_steps.validate.calratio_plots import run

run(chosen_model=snakemake.input.chosen_model, preprocess_dir=snakemake.input.test.rsplit("/", 1)[0], history=snakemake.input.history, selection=snakemake.input.selection, outputs=dict(snakemake.output.items()), model=snakemake.params.model, log=snakemake.log[0])
