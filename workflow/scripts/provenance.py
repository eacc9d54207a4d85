from pipeline_steps.common.logs import start_job

start_job(snakemake.log[0])  # fixed hash seed; library start-up noise to the log, not the terminal

from pipeline_steps.provenance.step import records_from_rule, write_provenance
records = records_from_rule(snakemake.params.models)
write_provenance(records, raw_checksums=list(snakemake.input.raw_checksums), output=snakemake.output[0], checkout=snakemake.scriptdir, seed=snakemake.params.seed, log=snakemake.log[0])
