from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.validate.step import run
figures = {key: getattr(snakemake.output, key) for key in ("distributions", "correlations", "bdt_output", "response", "profiles")}
run(test_split=snakemake.input.test, transforms=snakemake.input.transforms, generated=snakemake.input.generated, metrics=snakemake.output.metrics, figures=figures, params=dict(snakemake.params.items()), log_path=snakemake.log[0], categories=(snakemake.input.categories or [None])[0], verdict_csv=snakemake.output.verdict)
