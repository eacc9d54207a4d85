# Fast-simulation workflow: raw ROOT files in, validated and exported generative models out.
# Thin on purpose: the rules live in workflow/rules/, the logic in the pipeline_steps package.
import os

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, found next to this Snakefile whatever the working directory; user files given
# with --configfile are merged over it (later files override nested keys).
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/toy.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/categorise.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/scan.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/provenance.smk"


rule all:
    default_target: True
    input:
        final_targets(),
