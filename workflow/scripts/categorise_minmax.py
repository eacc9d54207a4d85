from pipeline_steps.preprocess.categorise_step import run_minmax

run_minmax(muons_file=snakemake.input[0], output=snakemake.output[0], log=snakemake.log[0])
