from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.validate.calratio_plots import run

run(chosen_model=snakemake.input.chosen_model, preprocess_dir=snakemake.input.test.rsplit("/", 1)[0], history=snakemake.input.history, selection=snakemake.input.selection, outputs=dict(snakemake.output.items()), model=snakemake.params.model, identity=snakemake.params.identity, bootstrap=snakemake.params.bootstrap, log=snakemake.log[0])
