from pipeline_steps.preprocess.categorise_step import run_reduce

run_reduce(partial_files=list(snakemake.input), output=snakemake.output[0], log=snakemake.log[0])
