# Stage: scan - rank the instances of each scanned model (models.<name>.scan, expanded in common.smk)
# by a validation figure of merit; best.json points the model's own name at the best instance.


rule rank_scan:
    wildcard_constraints:
        scan=_alternatives(scan_names()),
    input:
        metrics=scan_metrics,
        histories=scan_histories,
        selections=scan_selections,
    output:
        ranking="results/scan/{scan}/ranking.csv",
        best="results/scan/{scan}/best.json",
        plot=report(
            "results/scan/{scan}/metric_vs_hyperparameters.png",
            caption="../report/scan_ranking.rst",
            category="scan",
            labels={"model": "{scan}", "figure": "metric vs hyperparameters"},
        ),
    log:
        "logs/scan/{scan}.log",
    params:
        scan=scan_slice,
        code=source_hash("scan/step", "scan/ranking", "common/logs"),
    threads: 1
    conda:
        "../../envs/validate.yaml"
    script:
        "../scripts/rank_scan.py"


register_final_targets(lambda: expand("results/scan/{scan}/best.json", scan=scan_names()))
