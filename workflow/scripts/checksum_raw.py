from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.provenance.step import write_raw_checksums
write_raw_checksums(raw_files=list(snakemake.input.raw_files), output=snakemake.output[0], log=snakemake.log[0])
