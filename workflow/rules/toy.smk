# Stage: toy. Embedded default data: seeded raw ROOT files in the real layouts, one job per file,
# only for datasets without `files` (toy_params refuses the others). Ingest registers the targets.


rule toy_dataset:
    wildcard_constraints:
        index=r"\d+",
    output:
        "data/raw/{dataset}/{index}.root",
    log:
        "logs/toy/{dataset}/{index}.log",
    params:
        toy=toy_slice,
        tree=dataset_tree,
        seed=config["seed"],
        code=source_hash("toy", "common"),
    conda:
        "../../envs/ingest.yaml"
    script:
        "../scripts/toy_dataset.py"
