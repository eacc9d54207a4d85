from pipeline_steps.validate.step import run_summary
run_summary(metrics=list(snakemake.input.metrics), generation=list(snakemake.input.generation), train_dirs=list(snakemake.params.train_dirs), output=snakemake.output[0], log_path=snakemake.log[0])
