# Stage: generate - trained model + held-out conditions -> generated.root in the input layout.
# One rule per generative kind (framework env differs); the model wildcard is constrained by kind.


rule generate_covariance_gan:
    wildcard_constraints:
        model=_alternatives(model_names("covariance_gan")),
    input:
        model=trained_model_file,
        test=preprocessed("test.parquet"),
        transforms=preprocessed("transforms.json"),
        categories=model_categories,
    output:
        root="results/generate/{model}/generated.root",
        generation="results/generate/{model}/generation.json",
    log:
        "logs/generate/{model}.log",
    params:
        model_name=lambda wc: wc.model,
        preprocessing=preprocessing_name,
        model=generation_model_slice,
        dataset=model_output_layout,
        validation=generation_settings,
        seed=config["seed"],
        code=kind_code("covariance_gan", "generate"),
    threads: 2  # sampling, and the ROOT write of the previous block (generate/step.py SAMPLING_THREADS)
    resources:
        gpu=1,
    conda:
        kind_env("covariance_gan")
    script:
        "../scripts/generate_model.py"


rule generate_flow:
    wildcard_constraints:
        model=_alternatives(model_names("flow")),
    input:
        model=trained_model_file,
        test=preprocessed("test.parquet"),
        transforms=preprocessed("transforms.json"),
        categories=model_categories,
    output:
        root="results/generate/{model}/generated.root",
        generation="results/generate/{model}/generation.json",
    log:
        "logs/generate/{model}.log",
    params:
        model_name=lambda wc: wc.model,
        preprocessing=preprocessing_name,
        model=generation_model_slice,
        dataset=model_output_layout,
        validation=generation_settings,
        seed=config["seed"],
        code=kind_code("flow", "generate"),
    threads: 2  # sampling, and the ROOT write of the previous block (generate/step.py SAMPLING_THREADS)
    resources:
        gpu=1,
    conda:
        kind_env("flow")
    script:
        "../scripts/generate_model.py"


register_final_targets(lambda: [f"results/generate/{model}/generated.root" for model in generative_model_names()])
