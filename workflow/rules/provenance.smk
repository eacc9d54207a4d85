# Stage: provenance. results/provenance.json ties every model to the sha256 of its raw ROOT inputs (checksum_raw),
# its config slice, its trained, generated, validated (and exported) files, the package versions and the git commit.
# `make verify` re-hashes what it lists and reports drift (pipeline_steps/provenance/).


rule provenance:
    input:
        raw_checksums=provenance_raw_checksums,
        outputs=provenance_model_outputs,
    output:
        "results/provenance.json",
    log:
        "logs/provenance/provenance.log",
    params:
        models=provenance_model_slices,
        seed=config["seed"],
        code=source_hash("provenance", "common/logs"),
    conda:
        "../../envs/validate.yaml"
    script:
        "../scripts/provenance.py"


register_final_targets(lambda: ["results/provenance.json"])


# The sha256 of one ingest part's raw files, taken once for export and provenance, which read these JSONs instead
# of the files (pipeline_steps/provenance/raw_checksums.py: a real dataset is terabytes). It has the ingest job's
# input, so a new, replaced or touched raw file reruns both.
rule checksum_raw:
    input:
        raw_files=part_raw_files,
    output:
        "results/checksums/{dataset}/{part}.json",
    log:
        "logs/checksums/{dataset}/{part}.log",
    params:
        code=source_hash("provenance/raw_checksums", "provenance/step", "common/logs"),
    conda:
        "../../envs/validate.yaml"
    priority: STAGE_PRIORITY["ingest"]
    script:
        "../scripts/checksum_raw.py"
