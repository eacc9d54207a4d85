# Stage: validate - the BDT figure of merit beside its real-vs-real floor, distances, a verdict and plots
# per generative model, then one summary table.


rule validate_model:
    wildcard_constraints:
        model=_alternatives(generative_model_names()),
    input:
        test="results/preprocess/{model}/test.parquet",
        transforms="results/preprocess/{model}/transforms.json",
        generated="results/generate/{model}/generated.root",
        categories=model_categories,
    output:
        metrics="results/validate/{model}/metrics.json",
        verdict=report(
            "results/validate/{model}/verdict.csv",
            caption="../report/validate_verdict.rst",
            category="validate",
            labels={"model": "{model}", "figure": "verdict"},
        ),
        distributions=report(
            "results/validate/{model}/distributions.png",
            caption="../report/validate_distributions.rst",
            category="validate",
            labels={"model": "{model}", "figure": "1D distributions"},
        ),
        correlations=report(
            "results/validate/{model}/correlations.png",
            caption="../report/validate_correlations.rst",
            category="validate",
            labels={"model": "{model}", "figure": "2D correlations"},
        ),
        bdt_output=report(
            "results/validate/{model}/bdt_output.png",
            caption="../report/validate_bdt_output.rst",
            category="validate",
            labels={"model": "{model}", "figure": "BDT output"},
        ),
        response=report(
            "results/validate/{model}/response.png",
            caption="../report/validate_response.rst",
            category="validate",
            labels={"model": "{model}", "figure": "response"},
        ),
        profiles=report(
            directory("results/validate/{model}/profiles"),
            patterns=["{name}.png"],
            caption="../report/validate_profiles.rst",
            category="validate",
            labels={"model": "{model}", "figure": "profile {name}"},
        ),
    log:
        "logs/validate/{model}.log",
    params:
        model_name=lambda wc: wc.model,
        model=generation_model_slice,
        dataset=model_output_layout,
        validation=config["validation"],
        seed=config["seed"],
        code=source_hash("validate/step", "common"),
    threads: 1
    conda:
        "../../envs/validate.yaml"
    script:
        "../scripts/validate_model.py"


rule validate_summary:
    input:
        metrics=lambda wc: [f"results/validate/{model}/metrics.json" for model in generative_model_names()],
        generation=lambda wc: [f"results/generate/{model}/generation.json" for model in generative_model_names()],
    output:
        report(
            "results/summary.csv",
            caption="../report/validate_summary.rst",
            category="validate",
            labels={"model": "all", "figure": "summary table"},
        ),
    log:
        "logs/validate/summary.log",
    params:
        train_dirs=[f"results/train/{model}" for model in generative_model_names()],
        code=source_hash("validate/summary", "common"),
    conda:
        "../../envs/validate.yaml"
    script:
        "../scripts/validate_summary.py"


register_final_targets(
    lambda: ["results/summary.csv"] + [f"results/validate/{model}/metrics.json" for model in generative_model_names()]
)
