from pipeline_steps.validate.calratio_plots import run

run(chosen_model=snakemake.input.chosen_model, preprocess_dir=snakemake.input.test.rsplit("/", 1)[0], history=snakemake.input.history, selection=snakemake.input.selection, outputs=dict(snakemake.output.items()), model=snakemake.params.model, log=snakemake.log[0])
