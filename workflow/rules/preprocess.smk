# Stage: preprocess - deterministic train/validation/test splits + fitted invertible transforms per model.
# {model} here is a preprocessing name (common.smk, preprocessed()): a model's own, or for a scan's points
# the scan's name and their `preprocessing` keys, which the points that set the same ones share.


# --- CalRatio inputs: main sample + control region, padded sequences ---
rule preprocess_calratio:
    wildcard_constraints:
        model=_alternatives(calratio_preprocessings()),
    input:
        main=calratio_main_tables,
        control=calratio_control_tables,
    output:
        splits=expand(
            "results/preprocess/{{model}}/{region}{split}.parquet",
            region=["", "cr_"],
            split=["train", "validation", "test"],
        ),
        sequences=expand(
            "results/preprocess/{{model}}/{region}{split}_sequences.npz",
            region=["", "cr_"],
            split=["train", "validation", "test"],
        ),
        transforms="results/preprocess/{model}/transforms.json",
        arrays="results/preprocess/{model}/transforms.npz",
    log:
        "logs/preprocess/{model}.log",
    params:
        model=preprocess_calratio_slice,
        name=lambda wc: wc.model,
        layout=calratio_layout,
        seed=config["seed"],
        code=source_hash(
            "preprocess/calratio_inputs",
            "preprocess/step",
            "preprocess/calratio_splits",
            "preprocess/split",
            "preprocess/transforms",
            "preprocess/model_transforms",
            "preprocess/derived",
            "preprocess/covariance_representation",
            "common/logs",
        ),
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    conda:
        "../../envs/ingest.yaml"
    priority: STAGE_PRIORITY["preprocess"]
    script:
        "../scripts/preprocess_calratio.py"


register_final_targets(lambda: [f"results/preprocess/{name}/transforms.json" for name in calratio_preprocessings()])


# --- every generative model (flow, covariance_gan): deterministic splits + fitted transforms ---
rule preprocess_model:
    wildcard_constraints:
        model=_alternatives(model_preprocessings()),
    input:
        unpack(preprocess_model_inputs),
    output:
        train="results/preprocess/{model}/train.parquet",
        validation="results/preprocess/{model}/validation.parquet",
        test="results/preprocess/{model}/test.parquet",
        transforms="results/preprocess/{model}/transforms.json",
        arrays="results/preprocess/{model}/transforms.npz",
        distributions=report(
            "results/preprocess/{model}/plots/distributions.png",
            caption="../report/preprocess_distributions.rst",
            category="preprocess",
            labels={"model": "{model}", "figure": "distributions"},
        ),
        correlations=report(
            "results/preprocess/{model}/plots/correlations.png",
            caption="../report/preprocess_correlations.rst",
            category="preprocess",
            labels={"model": "{model}", "figure": "correlations"},
        ),
    log:
        "logs/preprocess/{model}.log",
    params:
        model=lambda wc: wc.model,
        config=preprocess_model_slice,
        seed=config["seed"],
        code=source_hash(
            "preprocess/step",
            "preprocess/model_splits",
            "preprocess/split",
            "preprocess/transforms",
            "preprocess/model_transforms",
            "preprocess/derived",
            "preprocess/covariance_representation",
            "preprocess/plots",
            "common/logs",
        ),
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    conda:
        "../../envs/ingest.yaml"
    priority: STAGE_PRIORITY["preprocess"]
    script:
        "../scripts/preprocess_model.py"


register_final_targets(lambda: [f"results/preprocess/{name}/transforms.json" for name in model_preprocessings()])
