from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

run_with_fixed_hash_seed()  # outputs must not depend on the hash seed of the user's shell
from pipeline_steps.common.logs import send_process_output_to_log  # noqa: E402

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pipeline_steps.ingest.step import run

run(raw_file=snakemake.input.raw_file, parquet=snakemake.output.parquet, summary=snakemake.output.summary, reading=snakemake.params.reading, mapping=snakemake.params.mapping, table=snakemake.wildcards.table, dataset=snakemake.wildcards.dataset, log=snakemake.log[0])
