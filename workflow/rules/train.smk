# Stage: train - one rule per model kind (its env, trained file and hashed modules: pipeline_steps/model_kinds.py),
# plus the CalRatio epoch selection. Logic: pipeline_steps/train/ (shared loop, checkpoints, settings) and models/


# --- LHCb covariance GAN (TensorFlow): generator + discriminator + referee ---
# The checkpoint folder results/checkpoints/{model}/ is a param, not an output: Snakemake's
# --rerun-incomplete removes declared outputs, and the checkpoints are what lets the job resume.
rule train_covariance_gan:
    wildcard_constraints:
        model=_alternatives(model_names("covariance_gan")),
    input:
        train=preprocessed("train.parquet"),
        validation=preprocessed("validation.parquet"),
        transforms=preprocessed("transforms.json"),
    output:
        generator=protected("results/train/{model}/generator.keras"),
        model_json="results/train/{model}/model.json",
        history="results/train/{model}/history.csv",
        spd="results/train/{model}/spd.json",
        loss_plot=report(
            "results/train/{model}/loss.png",
            caption="../report/train_covariance_gan_loss.rst",
            category="train",
            labels={"model": "{model}", "figure": "referee loss"},
        ),
        correlations_plot=report(
            "results/train/{model}/correlations.png",
            caption="../report/train_covariance_gan_correlations.rst",
            category="train",
            labels={"model": "{model}", "figure": "output correlations"},
        ),
    log:
        "logs/train/{model}.log",
    benchmark:
        "benchmarks/train/{model}.tsv"
    params:
        model=training_slice,
        seed=config["seed"],
        checkpoint_dir=checkpoint_dir,
        code=kind_code("covariance_gan", "train"),
    threads: training_threads
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: 4000 * attempt,
    conda:
        kind_env("covariance_gan")
    priority: STAGE_PRIORITY["train"]
    script:
        "../scripts/train_covariance_gan.py"


register_final_targets(lambda: expand("results/train/{model}/generator.keras", model=model_names("covariance_gan")))


# --- FlashSim-style conditional normalizing flows (PyTorch + zuko) ---
# One flow per SHiP category for categorised models (see pipeline_steps/models/flow.py). The
# checkpoint folder is a param, not an output, so --rerun-incomplete keeps what lets the job resume.
rule train_flow:
    wildcard_constraints:
        model=_alternatives(model_names("flow")),
    input:
        train=preprocessed("train.parquet"),
        validation=preprocessed("validation.parquet"),
        transforms=preprocessed("transforms.json"),
    output:
        model_pt=protected("results/train/{model}/model.pt"),
        model_json="results/train/{model}/model.json",
        history="results/train/{model}/history.csv",
        loss_plot=report(
            "results/train/{model}/loss.png",
            caption="../report/train_flow_loss.rst",
            category="train",
            labels={"model": "{model}", "figure": "flow NLL"},
        ),
    log:
        "logs/train/{model}.log",
    benchmark:
        "benchmarks/train/{model}.tsv"
    params:
        model=training_slice,
        seed=config["seed"],
        checkpoint_dir=checkpoint_dir,
        code=kind_code("flow", "train"),
    threads: training_threads
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: 4000 * attempt,
    conda:
        kind_env("flow")
    priority: STAGE_PRIORITY["train"]
    script:
        "../scripts/train_flow.py"


register_final_targets(lambda: expand("results/train/{model}/model.pt", model=model_names("flow")))


# --- ATLAS CalRatio 2019 RNN (TensorFlow): 3-class jet classifier vs a data/MC adversary ---
# Per-epoch checkpoints live in results/checkpoints/{model}/ (a param, not an output, so that
# --rerun-incomplete keeps them); the epoch selection reads the chosen epoch's weights from there.
rule train_calratio_rnn:
    wildcard_constraints:
        model=_alternatives(model_names("calratio_rnn")),
    input:
        train=preprocessed("train.parquet"),
        train_sequences=preprocessed("train_sequences.npz"),
        validation=preprocessed("validation.parquet"),
        validation_sequences=preprocessed("validation_sequences.npz"),
        cr_train=preprocessed("cr_train.parquet"),
        cr_train_sequences=preprocessed("cr_train_sequences.npz"),
        cr_validation=preprocessed("cr_validation.parquet"),
        cr_validation_sequences=preprocessed("cr_validation_sequences.npz"),
    output:
        history="results/train/{model}/history.csv",
        final_model="results/train/{model}/final.keras",
    log:
        "logs/train/{model}.log",
    benchmark:
        "benchmarks/train/{model}.tsv"
    params:
        model=training_slice,
        seed=config["seed"],
        checkpoint_dir=checkpoint_dir,
        code=kind_code("calratio_rnn", "train"),
    threads: training_threads
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: 4000 * attempt,
    conda:
        kind_env("calratio_rnn")
    priority: STAGE_PRIORITY["train"]
    script:
        "../scripts/train_calratio_rnn.py"


rule select_calratio_epoch:
    wildcard_constraints:
        model=_alternatives(model_names("calratio_rnn")),
    input:
        history="results/train/{model}/history.csv",
        final_model="results/train/{model}/final.keras",
    output:
        selection="results/train/{model}/selection.json",
        chosen_model=protected("results/train/{model}/chosen.keras"),
    log:
        "logs/train/{model}_select.log",
    params:
        model=model_slice("training"),
        checkpoint_dir=checkpoint_dir,
        code=source_hash("train/calratio_selection", "train/calratio_rnn", "models/calratio_rnn", "common/logs"),
    threads: 1
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/select_calratio_epoch.py"


register_final_targets(lambda: expand("results/train/{model}/selection.json", model=model_names("calratio_rnn")))
