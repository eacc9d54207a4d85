from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pipeline_steps.validate.step import run
figures = {key: getattr(snakemake.output, key) for key in ("distributions", "correlations", "bdt_output", "response", "profiles")}
run(test_split=snakemake.input.test, transforms=snakemake.input.transforms, generated=snakemake.input.generated, metrics=snakemake.output.metrics, figures=figures, params=dict(snakemake.params.items()), log_path=snakemake.log[0], categories=(snakemake.input.categories or [None])[0], verdict_csv=snakemake.output.verdict)
