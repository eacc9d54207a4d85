from pipeline_steps.common.logs import send_process_output_to_log

send_process_output_to_log(snakemake.log[0])  # library start-up noise goes to the log, not the terminal

from pipeline_steps.preprocess.categorise_step import run_reduce

run_reduce(partial_files=list(snakemake.input), output=snakemake.output[0], log=snakemake.log[0])
