from pipeline_steps.toy.step import run

run(output=snakemake.output[0], dataset=snakemake.wildcards.dataset, index=int(snakemake.wildcards.index), params=snakemake.params, log=snakemake.log[0])
