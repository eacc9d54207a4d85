from pipeline_steps.preprocess.model_step import run

run(tables=list(snakemake.input.tables), outputs=dict(snakemake.output.items()), params=snakemake.params, log=snakemake.log[0])
