# One job for everything that reads all outcomes: summary tables, reproduction check, report.


rule report:
    input:
        pooled=expand(f"{RESULTS}/pooled/{{outcome}}.json", outcome=OUTCOMES),
        forest=expand(f"{RESULTS}/figures/{{outcome}}_forest.svg", outcome=OUTCOMES),
        funnel=expand(f"{RESULTS}/figures/{{outcome}}_funnel.svg", outcome=OUTCOMES),
        diagnostics=diagnostic_figures,
        studies=config["studies"],
        targets=config.get("targets", []),
    output:
        summary_csv=report(
            REPORT_OUTPUTS["summary_csv"], caption="../report/summary.rst", category="Tables"
        ),
        summary_md=REPORT_OUTPUTS["summary_md"],
        reproduction_csv=report(
            REPORT_OUTPUTS["reproduction_csv"],
            caption="../report/reproduction.rst",
            category="Tables",
        ),
        reproduction_md=REPORT_OUTPUTS["reproduction_md"],
        html=REPORT_OUTPUTS["html"],
    params:
        title=config.get("title", "Meta-analysis report"),
        outcomes=OUTCOMES,
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/metapool.yaml"
    script:
        "../../scripts/report.py"
