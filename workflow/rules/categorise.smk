# Stage: categorise - SHiP muons into the study's 4 categories (charge x from the target or not),
# normalised with global min/max reduced from per-part partials (map: categorise_minmax, reduce:
# categorise_reduce, then categorise). Logic: pipeline_steps/categorise/.


_CATEGORISE_CODE = source_hash("categorise/categories", "categorise/step", "common/logs")


rule categorise_minmax:
    wildcard_constraints:
        dataset=_alternatives(categorised_datasets(config)),
    input:
        categorise_muon_table,
    output:
        "results/categorise/{dataset}/minmax/{part}.json",
    log:
        "logs/categorise/{dataset}/minmax/{part}.log",
    params:
        code=_CATEGORISE_CODE,
    conda:
        "../../envs/ingest.yaml"
    priority: STAGE_PRIORITY["categorise"]
    script:
        "../scripts/categorise_minmax.py"


rule categorise_reduce:
    wildcard_constraints:
        dataset=_alternatives(categorised_datasets(config)),
    input:
        categorise_minmax_partials,
    output:
        "results/categorise/{dataset}/minmax.json",
    log:
        "logs/categorise/{dataset}/reduce.log",
    params:
        code=_CATEGORISE_CODE,
    conda:
        "../../envs/ingest.yaml"
    priority: STAGE_PRIORITY["categorise"]
    script:
        "../scripts/categorise_reduce.py"


rule categorise:
    wildcard_constraints:
        dataset=_alternatives(categorised_datasets(config)),
    input:
        muons=categorise_muon_tables,
        minmax="results/categorise/{dataset}/minmax.json",
    output:
        categories=expand("results/categorise/{{dataset}}/cat{category}.parquet", category=CATEGORIES),
        described="results/categorise/{dataset}/categories.json",
    log:
        "logs/categorise/{dataset}/categorise.log",
    params:
        identity=dataset_identity,
        code=_CATEGORISE_CODE,
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    conda:
        "../../envs/ingest.yaml"
    priority: STAGE_PRIORITY["categorise"]
    script:
        "../scripts/categorise.py"


register_final_targets(
    lambda: [f"results/categorise/{dataset}/categories.json" for dataset in categorised_datasets(config)]
)
