# Stage: provenance. results/provenance.json ties every model to the sha256 of its raw ROOT inputs,
# its config slice, its trained, generated, validated (and exported) files, the package versions and the git commit.
# `make verify` re-hashes what it lists and reports drift (pipeline_steps/provenance/).


rule provenance:
    input:
        raw=provenance_raw_inputs,
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
