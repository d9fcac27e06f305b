# One job that reads every outcome's result and renders the tables, the audit files of the published
# targets and the report.  It fits no model.


rule report:
    input:
        pooled=expand(f"{RESULTS}/pooled/{{outcome}}.json", outcome=OUTCOMES),
        figures=expand(f"{RESULTS}/figures/{{outcome}}", outcome=OUTCOMES),
        studies=config["studies"],   # used as a module, Snakemake puts the prefix in front
    output:
        summary_csv=report(REPORT_OUTPUTS["summary_csv"], caption="../report/summary.rst", category="Tables"),
        summary_md=REPORT_OUTPUTS["summary_md"],
        reproduction_csv=report(
            REPORT_OUTPUTS["reproduction_csv"], caption="../report/reproduction.rst", category="Tables"
        ),
        reproduction_md=REPORT_OUTPUTS["reproduction_md"],
        html=REPORT_OUTPUTS["html"],
        audit=AUDIT_OUTPUTS,
    params:
        plan=PLAN.report_snapshot(),
        code=CODE["report"],
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/metapool.yaml"
    script:
        "../../scripts/report.py"
