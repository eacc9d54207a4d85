from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.train.calratio_rnn import run

run(preprocess_dir=snakemake.input.train.rsplit("/", 1)[0], **dict(snakemake.output.items()), model=snakemake.params.model, seed=snakemake.params.seed, checkpoint_dir=snakemake.params.checkpoint_dir, threads=snakemake.threads, log=snakemake.log[0])
