# Stage: generate - trained model + held-out conditions -> generated.root in the input layout.
# One rule per generative kind (framework env differs); the model wildcard is constrained by kind.


rule generate_covariance_gan:
    wildcard_constraints:
        model=_alternatives(model_names("covariance_gan")),
    input:
        model="results/train/{model}/generator.keras",
        test="results/preprocess/{model}/test.parquet",
        transforms="results/preprocess/{model}/transforms.json",
        categories=model_categories,
    output:
        root="results/generate/{model}/generated.root",
        generation="results/generate/{model}/generation.json",
    log:
        "logs/generate/{model}.log",
    params:
        model_name=lambda wc: wc.model,
        model=generation_model_slice,
        dataset=model_output_layout,
        validation=lambda wc: {"generated_events": config["validation"].get("generated_events", 20000)},
        seed=config["seed"],
        code=source_hash("generate", "models/covariance_gan", "preprocess/transforms", "common"),
    resources:
        gpu=1,
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/generate_model.py"


rule generate_flow:
    wildcard_constraints:
        model=_alternatives(model_names("flow")),
    input:
        model="results/train/{model}/model.pt",
        test="results/preprocess/{model}/test.parquet",
        transforms="results/preprocess/{model}/transforms.json",
        categories=model_categories,
    output:
        root="results/generate/{model}/generated.root",
        generation="results/generate/{model}/generation.json",
    log:
        "logs/generate/{model}.log",
    params:
        model_name=lambda wc: wc.model,
        model=generation_model_slice,
        dataset=model_output_layout,
        validation=lambda wc: {"generated_events": config["validation"].get("generated_events", 20000)},
        seed=config["seed"],
        code=source_hash("generate", "models/flow", "preprocess/transforms", "categorise/categories", "common"),
    resources:
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/generate_model.py"


register_final_targets(lambda: [f"results/generate/{model}/generated.root" for model in generative_model_names()])
