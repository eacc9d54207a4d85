from pipeline_steps.train.covariance_gan import run

run(**dict(snakemake.input.items()), **dict(snakemake.output.items()), model=snakemake.params.model, seed=snakemake.params.seed, checkpoint_dir=snakemake.params.checkpoint_dir, log=snakemake.log[0], threads=snakemake.threads)
