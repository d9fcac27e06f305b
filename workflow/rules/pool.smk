# One job per outcome: effect sizes, every configured model and extra analysis, forest and
# funnel plots.  Effects, pooling and figures share one job on purpose: each Python job pays
# ~2 s of imports (numpy, scipy, pandas, matplotlib), so one coarse job per outcome keeps a full
# run fast while every outcome remains its own branch of the DAG.
#
# The diagnostic figures (leave-one-out, cumulative, influence, Baujat, GOSH, bubble) apply only
# where their analysis ran (enough studies, a numeric moderator): which ones is known from the
# pooled result, so analyse_outcome is a checkpoint and the report asks for exactly the figures
# listed in extras["figures"] of each results/pooled/{outcome}.json (see report.smk).  Each is
# drawn by its own small job from that stored result; no outcome gets an empty or dummy figure.


include: "diagnostics.smk"


checkpoint analyse_outcome:
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


rule diagnostic_figure:
    input:
        pooled=f"{RESULTS}/pooled/{{outcome}}.json",
    output:
        png=f"{RESULTS}/figures/{{outcome}}_{{kind}}.png",
        svg=report(
            f"{RESULTS}/figures/{{outcome}}_{{kind}}.svg",
            caption="../report/diagnostics.rst",
            category="Diagnostic plots",
            subcategory="{kind}",
        ),
    wildcard_constraints:
        kind="|".join(DIAGNOSTIC_KINDS),
    params:
        kind="{kind}",
    log:
        f"{RESULTS}/logs/diagnostic_figure/{{outcome}}_{{kind}}.log",
    conda:
        "../envs/metapool.yaml"
    script:
        "../../scripts/diagnostic_figure.py"
