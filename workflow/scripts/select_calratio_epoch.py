from pipeline_steps.train.calratio_selection import run

run(**dict(snakemake.input.items()), **dict(snakemake.output.items()), model=snakemake.params.model, checkpoint_dir=snakemake.params.checkpoint_dir, log=snakemake.log[0])
