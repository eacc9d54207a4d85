from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.scan.step import run
run(metrics=list(snakemake.input.metrics), histories=list(snakemake.input.histories), scan=snakemake.params.scan,
    ranking=snakemake.output.ranking, best=snakemake.output.best, plot=snakemake.output.plot, log=snakemake.log[0],
    selections=list(snakemake.input.selections))
