# Stage: export - trained model -> results/export/{model}/: ONNX + native model + transforms + bundle.json,
# verified against the framework when made (pipeline_steps/export/). One rule per framework (conda env).


rule export_covariance_gan:
    wildcard_constraints:
        model=_alternatives(model_names("covariance_gan")),
    input:
        model=["results/train/{model}/generator.keras", "results/train/{model}/model.json"],
        transforms=preprocessed("transforms.json"),
        test=preprocessed("test.parquet"),
        categories=model_categories,
        raw_checksums=export_raw_checksums,
    output:
        onnx=protected("results/export/{model}/model.onnx"),
        native=protected("results/export/{model}/model.keras"),
        model_json=protected("results/export/{model}/model.json"),
        transforms=protected("results/export/{model}/transforms.json"),
        arrays=protected("results/export/{model}/transforms.npz"),
        runner=protected("results/export/{model}/run_bundle.py"),
        verification=protected("results/export/{model}/verification.npz"),
        manifest=protected("results/export/{model}/bundle.json"),
    log:
        "logs/export/{model}.log",
    params:
        bundle=lambda wc: f"results/export/{wc.model}",
        model=full_model_config,
        tree=model_tree,
        branches=model_branches,
        export=export_settings("covariance_gan"),
        code=kind_code("covariance_gan", "export"),
    threads: 1
    conda:
        kind_env("covariance_gan")
    script:
        "../scripts/export_model.py"


rule export_flow:
    wildcard_constraints:
        model=_alternatives(model_names("flow")),
    input:
        model=["results/train/{model}/model.pt", "results/train/{model}/model.json"],
        transforms=preprocessed("transforms.json"),
        test=preprocessed("test.parquet"),
        categories=model_categories,
        raw_checksums=export_raw_checksums,
    output:
        onnx=protected("results/export/{model}/model.onnx"),
        native=protected("results/export/{model}/model.pt"),
        model_json=protected("results/export/{model}/model.json"),
        transforms=protected("results/export/{model}/transforms.json"),
        arrays=protected("results/export/{model}/transforms.npz"),
        runner=protected("results/export/{model}/run_bundle.py"),
        verification=protected("results/export/{model}/verification.npz"),
        manifest=protected("results/export/{model}/bundle.json"),
    log:
        "logs/export/{model}.log",
    params:
        bundle=lambda wc: f"results/export/{wc.model}",
        model=full_model_config,
        tree=model_tree,
        branches=model_branches,
        export=export_settings("flow"),
        code=kind_code("flow", "export"),
    threads: 1
    conda:
        kind_env("flow")
    script:
        "../scripts/export_model.py"


rule export_calratio_rnn:
    wildcard_constraints:
        model=_alternatives(model_names("calratio_rnn")),
    input:
        model=["results/train/{model}/chosen.keras", "results/train/{model}/selection.json"],
        transforms=preprocessed("transforms.json"),
        test=preprocessed("test.parquet"),
        test_sequences=preprocessed("test_sequences.npz"),
        categories=[],
        raw_checksums=export_raw_checksums,
    output:
        onnx=protected("results/export/{model}/model.onnx"),
        native=protected("results/export/{model}/model.keras"),
        transforms=protected("results/export/{model}/transforms.json"),
        arrays=protected("results/export/{model}/transforms.npz"),
        runner=protected("results/export/{model}/run_bundle.py"),
        verification=protected("results/export/{model}/verification.npz"),
        manifest=protected("results/export/{model}/bundle.json"),
    log:
        "logs/export/{model}.log",
    params:
        bundle=lambda wc: f"results/export/{wc.model}",
        model=full_model_config,
        tree=model_tree,
        branches=model_branches,
        export=export_settings("calratio_rnn"),
        code=kind_code("calratio_rnn", "export"),
    threads: 1
    conda:
        kind_env("calratio_rnn")
    script:
        "../scripts/export_model.py"


register_final_targets(lambda: expand("results/export/{model}/bundle.json", model=list(config["models"])))
