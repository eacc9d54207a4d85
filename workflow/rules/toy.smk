# Stage: toy. Embedded default data: seeded raw ROOT files in the real layouts, for every dataset without
# `files`: one rule and job per dataset (toy_<dataset>) that writes all its `toy.n_files` files, blacklisted
# ones included (they exist, as a bad real file would; ingestion leaves them out). A file's bytes depend
# only on (seed, dataset, index), and Snakemake spends ~2 ms planning each job, so one job per dataset
# loses nothing that one per file gave; a missing file makes the job write them all again (the same
# bytes, new timestamps, so the dataset is ingested again). Ingest registers the targets.

for _dataset in PLAN.toy_datasets():

    rule:
        name:
            f"toy_{_dataset}"
        output:
            PLAN.toy_files(_dataset),
        log:
            f"logs/toy/{_dataset}.log",
        params:
            dataset=_dataset,
            toy=PLAN.toy_params(_dataset),
            tree=config["datasets"][_dataset]["tree"],
            seed=config["seed"],
            code=source_hash("toy", "common/logs"),
        conda:
            "../../envs/ingest.yaml"
        priority: STAGE_PRIORITY["toy"]
        script:
            "../scripts/toy_dataset.py"
