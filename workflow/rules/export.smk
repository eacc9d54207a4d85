# Stage: export - trained model -> results/export/{model}/: ONNX + native model + transforms + bundle.json,
# verified against the framework when made (pipeline_steps/export/). One rule per framework (conda env).


rule export_covariance_gan:
    wildcard_constraints:
        model=_alternatives(model_names("covariance_gan")),
    input:
        model=["results/train/{model}/generator.keras", "results/train/{model}/model.json"],
        transforms="results/preprocess/{model}/transforms.json",
        test="results/preprocess/{model}/test.parquet",
        categories=model_categories,
        raw=export_raw_files,
    output:
        onnx=protected("results/export/{model}/model.onnx"),
        native=protected("results/export/{model}/model.keras"),
        model_json=protected("results/export/{model}/model.json"),
        transforms=protected("results/export/{model}/transforms.json"),
        arrays=protected("results/export/{model}/transforms.npz"),
        runner=protected("results/export/{model}/run_bundle.py"),
        manifest=protected("results/export/{model}/bundle.json"),
    log:
        "logs/export/{model}.log",
    params:
        bundle=lambda wc: f"results/export/{wc.model}",
        model=lambda wc: config["models"][wc.model],
        tree=model_tree,
        export=config["export"],
        code=source_hash(
            "export/step",
            "export/keras_export",
            "export/c_export",
            "models/covariance_gan",
            "preprocess/transforms",
            "common",
        ),
    threads: 1
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/export_model.py"


rule export_flow:
    wildcard_constraints:
        model=_alternatives(model_names("flow")),
    input:
        model=["results/train/{model}/model.pt", "results/train/{model}/model.json"],
        transforms="results/preprocess/{model}/transforms.json",
        test="results/preprocess/{model}/test.parquet",
        categories=model_categories,
        raw=export_raw_files,
    output:
        onnx=protected("results/export/{model}/model.onnx"),
        native=protected("results/export/{model}/model.pt"),
        model_json=protected("results/export/{model}/model.json"),
        transforms=protected("results/export/{model}/transforms.json"),
        arrays=protected("results/export/{model}/transforms.npz"),
        runner=protected("results/export/{model}/run_bundle.py"),
        manifest=protected("results/export/{model}/bundle.json"),
    log:
        "logs/export/{model}.log",
    params:
        bundle=lambda wc: f"results/export/{wc.model}",
        model=lambda wc: config["models"][wc.model],
        tree=model_tree,
        export=config["export"],
        code=source_hash(
            "export/step",
            "export/torch_export",
            "models/flow",
            "preprocess/transforms",
            "categorise/categories",
            "common",
        ),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/export_model.py"


rule export_calratio_rnn:
    wildcard_constraints:
        model=_alternatives(model_names("calratio_rnn")),
    input:
        model=["results/train/{model}/chosen.keras", "results/train/{model}/selection.json"],
        transforms="results/preprocess/{model}/transforms.json",
        test="results/preprocess/{model}/test.parquet",
        test_sequences="results/preprocess/{model}/test_sequences.npz",
        categories=[],
        raw=export_raw_files,
    output:
        onnx=protected("results/export/{model}/model.onnx"),
        native=protected("results/export/{model}/model.keras"),
        transforms=protected("results/export/{model}/transforms.json"),
        arrays=protected("results/export/{model}/transforms.npz"),
        runner=protected("results/export/{model}/run_bundle.py"),
        manifest=protected("results/export/{model}/bundle.json"),
    log:
        "logs/export/{model}.log",
    params:
        bundle=lambda wc: f"results/export/{wc.model}",
        model=lambda wc: config["models"][wc.model],
        tree=model_tree,
        export=config["export"],
        code=source_hash(
            "export/step",
            "export/keras_export",
            "models/calratio_rnn",
            "preprocess/calratio_inputs",
            "preprocess/transforms",
            "common",
        ),
    threads: 1
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/export_model.py"


register_final_targets(lambda: expand("results/export/{model}/bundle.json", model=list(config["models"])))
