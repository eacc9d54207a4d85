from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.categorise.step import run_categorise

run_categorise(muons_files=list(snakemake.input.muons), minmax_file=snakemake.input.minmax, category_files=list(snakemake.output.categories), categories_json=snakemake.output.described, params=snakemake.params, log=snakemake.log[0])
