# One job per outcome: effect sizes, every configured model and further analysis, the reproduction
# checks of the published targets that name the outcome, and every figure of the outcome, all from
# one result object.  The job's input is its snapshot, a param (config settings, data rows, study
# rows, targets): Snakemake reruns the job when it changes (params trigger), and when a package
# module the job imports changes (the `code` param).


rule analyse_outcome:
    output:
        effects=f"{RESULTS}/effects/{{outcome}}.csv",
        pooled=f"{RESULTS}/pooled/{{outcome}}.json",
        figures=report(
            directory(f"{RESULTS}/figures/{{outcome}}"),
            patterns=["{kind}.svg"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{outcome}",
        ),
    params:
        snapshot=lambda wc: PLAN.snapshots[wc.outcome],
        code=CODE["analyse_outcome"],
    log:
        f"{RESULTS}/logs/analyse_outcome/{{outcome}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyse_outcome/{{outcome}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/metapool.yaml"
    script:
        "../../scripts/analyse_outcome.py"
