# Stage: toy. Embedded default data: seeded raw ROOT files in the real layouts, for every dataset without
# `files`: a rule and job (toy_<dataset>) that writes all its `toy.n_files` files, blacklisted ones included
# (they exist, as a bad real file would; ingestion leaves them out), or, for 200 files or more, one per run of
# whole ingest parts of at least TOY_FILES_PER_JOB (100) files (toy_<dataset>, toy_<dataset>_1, ...;
# workflow_plan.py says why). A file's bytes depend only on (seed, dataset, index), and Snakemake spends ~2 ms
# planning each job, so a job per run of files loses nothing that one per file gave; a missing file makes its
# job write its run again (the same bytes, new timestamps, so their parts are ingested again). Ingest
# registers the targets.
_toy_code = source_hash("toy", "common/logs")  # ~20 ms a call: once, not once per toy rule

for _dataset in PLAN.toy_datasets():
    for _job, _files in PLAN.toy_jobs(_dataset):

        rule:
            name:
                f"toy_{_job}"
            output:
                _files,
            log:
                f"logs/toy/{_job}.log",
            params:
                dataset=_dataset,
                toy=PLAN.toy_params(_dataset),
                tree=config["datasets"][_dataset]["tree"],
                seed=config["seed"],
                code=_toy_code,
            conda:
                "../../envs/ingest.yaml"
            priority: STAGE_PRIORITY["toy"]
            script:
                "../scripts/toy_dataset.py"
