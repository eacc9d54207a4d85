# Stage: ingest. One job per (part, table), a part being up to 1/ingest_parts of a dataset's raw files
# chosen by a hash of their names (pipeline_steps/ingest/parts.py):
# results/ingest/{dataset}/{table}/{part}.parquet + .json, then one summary per dataset. Logic: pipeline_steps/ingest/.


rule ingest_table:
    input:
        raw_files=part_raw_files,
    output:
        parquet="results/ingest/{dataset}/{table}/{part}.parquet",
        summary="results/ingest/{dataset}/{table}/{part}.json",
    log:
        "logs/ingest/{dataset}/{table}/{part}.log",
    params:
        reading=ingest_reading,
        mapping=ingest_mapping,
        source_files=ingest_source_files,
        code=source_hash("ingest", "common/logs"),
    threads: ingest_threads
    conda:
        "../../envs/ingest.yaml"
    priority: STAGE_PRIORITY["ingest"]
    script:
        "../scripts/ingest_table.py"


rule ingest_summary:
    input:
        summaries=ingest_part_summaries,
    output:
        "results/ingest/{dataset}/summary.json",
    log:
        "logs/ingest/{dataset}/summary.log",
    params:
        code=source_hash("ingest", "common/logs"),
    conda:
        "../../envs/ingest.yaml"
    script:
        "../scripts/ingest_summary.py"


register_final_targets(lambda: [f"results/ingest/{dataset}/summary.json" for dataset in config["datasets"]])
