from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pipeline_steps.provenance import records_from_rule, write_provenance
records = records_from_rule(snakemake.params.models)
write_provenance(records, output=snakemake.output[0], checkout=snakemake.scriptdir, seed=snakemake.params.seed, log=snakemake.log[0])
