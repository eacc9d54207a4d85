from pipeline_steps.validate.ranking import run
run(metrics=list(snakemake.input.metrics), histories=list(snakemake.input.histories), scan=snakemake.params.scan,
    ranking=snakemake.output.ranking, best=snakemake.output.best, plot=snakemake.output.plot, log=snakemake.log[0])
