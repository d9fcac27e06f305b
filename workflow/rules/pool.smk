# One job per outcome: effect sizes, every configured model and extra analysis, forest and
# funnel plots.  Effects, pooling and figures share one job on purpose: each Python job pays
# ~2 s of imports (numpy, scipy, pandas, matplotlib), so one coarse job per outcome keeps a full
# run fast while every outcome remains its own branch of the DAG.


rule analyse_outcome:
    input:
        snapshot=f"{SNAPSHOTS}/{{outcome}}.json",
    output:
        effects=f"{RESULTS}/effects/{{outcome}}.csv",
        pooled=f"{RESULTS}/pooled/{{outcome}}.json",
        forest_png=f"{RESULTS}/figures/{{outcome}}_forest.png",
        forest_svg=report(
            f"{RESULTS}/figures/{{outcome}}_forest.svg",
            caption="../report/forest.rst",
            category="Forest plots",
        ),
        funnel_png=f"{RESULTS}/figures/{{outcome}}_funnel.png",
        funnel_svg=report(
            f"{RESULTS}/figures/{{outcome}}_funnel.svg",
            caption="../report/funnel.rst",
            category="Funnel plots",
        ),
    log:
        f"{RESULTS}/logs/analyse_outcome/{{outcome}}.log",
    conda:
        "../envs/metapool.yaml"
    script:
        "../../scripts/analyse_outcome.py"
