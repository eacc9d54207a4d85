# Stage: validate - the BDT figure of merit beside its real-vs-real floor, distances, a verdict and plots
# per generative model, then one summary table; and the CalRatio classifier's plots and metrics.


rule validate_model:
    wildcard_constraints:
        model=_alternatives(generative_model_names()),
    input:
        test=preprocessed("test.parquet"),
        transforms=preprocessed("transforms.json"),
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
        code=source_hash("validate/step", "preprocess/model_transforms", "common/logs"),
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
        code=source_hash("validate/summary", "common/logs"),
    conda:
        "../../envs/validate.yaml"
    script:
        "../scripts/validate_summary.py"


register_final_targets(
    lambda: ["results/summary.csv"] + [f"results/validate/{model}/metrics.json" for model in generative_model_names()]
)


# --- CalRatio classifier (not generative): final plots and metrics of the chosen epoch on the test sample ---
rule calratio_plots:
    wildcard_constraints:
        model=_alternatives(model_names("calratio_rnn")),
    input:
        chosen_model="results/train/{model}/chosen.keras",
        selection="results/train/{model}/selection.json",
        history="results/train/{model}/history.csv",
        test=preprocessed("test.parquet"),
        test_sequences=preprocessed("test_sequences.npz"),
        cr_test=preprocessed("cr_test.parquet"),
        cr_test_sequences=preprocessed("cr_test_sequences.npz"),
    output:
        metrics="results/validate/{model}/metrics.json",
        outputs_linear=report(
            "results/validate/{model}/outputs_linear.png",
            caption="../report/calratio_outputs.rst",
            category="validate",
            labels={"model": "{model}", "figure": "outputs per class (linear)"},
        ),
        outputs_log=report(
            "results/validate/{model}/outputs_log.png",
            caption="../report/calratio_outputs.rst",
            category="validate",
            labels={"model": "{model}", "figure": "outputs per class (log)"},
        ),
        cr_data_mc_pt_bins=report(
            "results/validate/{model}/cr_data_mc_pt_bins.png",
            caption="../report/calratio_cr_data_mc.rst",
            category="validate",
            labels={"model": "{model}", "figure": "CR data vs MC in pT bins"},
        ),
        roc=report(
            "results/validate/{model}/roc.png",
            caption="../report/calratio_roc.rst",
            category="validate",
            labels={"model": "{model}", "figure": "ROC curves"},
        ),
        soverb=report(
            "results/validate/{model}/soverb.png",
            caption="../report/calratio_soverb.rst",
            category="validate",
            labels={"model": "{model}", "figure": "S/sqrt(B) scan"},
        ),
        signal_efficiency_mass_plane=report(
            "results/validate/{model}/signal_efficiency_mass_plane.png",
            caption="../report/calratio_signal_efficiency.rst",
            category="validate",
            labels={"model": "{model}", "figure": "signal efficiency (mS, mH)"},
        ),
        inputs_main_vs_cr=report(
            "results/validate/{model}/inputs_main_vs_cr.png",
            caption="../report/calratio_inputs.rst",
            category="validate",
            labels={"model": "{model}", "figure": "main vs CR inputs"},
        ),
        training_history=report(
            "results/validate/{model}/training_history.png",
            caption="../report/calratio_history.rst",
            category="train",
            labels={"model": "{model}", "figure": "training history"},
        ),
    log:
        "logs/validate/{model}.log",
    params:
        model=model_slice("conditions", "preprocessing", "hyperparameters", "training"),
        identity=calratio_identity,
        bootstrap={"replicas": config["validation"]["bootstrap"], "seed": config["seed"]},
        code=source_hash(
            "validate/calratio_plots",
            "preprocess/calratio_inputs",
            "train/calratio_rnn",
            "models/calratio_rnn",
            "common/logs",
        ),
    threads: 1  # validate/calratio_plots.py PLOT_THREADS
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/calratio_plots.py"


register_final_targets(lambda: expand("results/validate/{model}/metrics.json", model=model_names("calratio_rnn")))
