# Stage: ingest. One job per (raw file, table): results/ingest/{dataset}/{table}/{stem}.parquet + .json,
# then one summary per dataset. Logic: pipeline_steps/ingest/.


rule ingest_table:
    input:
        raw_file=raw_file,
    output:
        parquet="results/ingest/{dataset}/{table}/{stem}.parquet",
        summary="results/ingest/{dataset}/{table}/{stem}.json",
    log:
        "logs/ingest/{dataset}/{table}/{stem}.log",
    params:
        reading=ingest_reading,
        mapping=ingest_mapping,
        code=source_hash("ingest", "common"),
    threads: 1
    conda:
        "../../envs/ingest.yaml"
    script:
        "../scripts/ingest_table.py"


rule ingest_summary:
    input:
        summaries=ingest_file_summaries,
    output:
        "results/ingest/{dataset}/summary.json",
    log:
        "logs/ingest/{dataset}/summary.log",
    params:
        code=source_hash("ingest", "common"),
    conda:
        "../../envs/ingest.yaml"
    script:
        "../scripts/ingest_summary.py"


register_final_targets(lambda: [f"results/ingest/{dataset}/summary.json" for dataset in config["datasets"]])
