"""The work of each workflow job, as plain functions of a ``snakemake``-like object.

``job.input``, ``job.output``, ``job.params`` (attribute access to the rule's named entries) and
``job.log``.  Run either by the warm worker (:mod:`_worker`, the default) or in-process.
"""
import json
import time
from pathlib import Path


def _stem(path) -> str:
    """``results/figures/x_forest.png`` -> ``results/figures/x_forest``."""
    return str(Path(path).with_suffix(""))


def preload():
    """Import everything the tasks use (the worker does this once, before forking jobs)."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas  # noqa: F401

    from metapool import analysis, report as _report, tables  # noqa: F401
    from metapool.plots import diagnostics, forest, funnel  # noqa: F401


def warm_up():
    """Draw a throw-away forest and funnel plot so fonts and renderers are loaded once."""
    import io

    import pandas as pd

    from metapool.analysis import analyse_outcome
    from metapool.plots import forest, funnel

    rows = pd.DataFrame({"study": ["a", "b", "c"], "outcome": "warm_up", "events": [3, 5, 8],
                         "total": [20, 25, 30], "status": "reported"})
    a = analyse_outcome("warm_up", {"label": "warm-up", "measure": "PLO"}, rows, None, {})
    for fig in (forest.build_forest(a), funnel.build_funnel(a)):
        for fmt in ("png", "svg"):
            fig.savefig(io.BytesIO(), format=fmt)


def effects_frame(analysis):
    """Per-study rows: ``study`` (id), ``label`` ("He 2020"), analysis-scale yi, vi, CI;
    reporting-scale estimate and CI; weights."""
    import numpy as np
    import pandas as pd

    from metapool.transforms import back_transform

    primary = analysis.primary
    es = analysis.effects
    df = primary.study_frame().rename(columns={"weight": f"weight_{primary.method}"})
    ni = es.ni if es.ni is not None and len(es.ni) == len(df) else None
    for col, src in (("estimate", "yi"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub")):
        df[col] = back_transform(es.measure, df[src].to_numpy(), ni=ni)
    for f in analysis.fits:
        # the GLMM has no inverse-variance weights (all NaN): no weight column for it
        if f is not primary and len(f.weights) == len(f.study) and np.isfinite(f.weights).any():
            w = pd.Series(f.weights, index=list(f.study))
            df[f"weight_{f.method}"] = df["study"].map(w)
    df.insert(1, "measure", es.measure)
    names = analysis.extras.get("study_labels") or {}
    df.insert(1, "label", [str(names.get(s) or s) for s in df["study"]])
    prov = pd.DataFrame(analysis.extras.get("provenance", []))
    if len(prov):
        keep = [c for c in ("study", "status", "source") if c in prov.columns]
        df = df.merge(prov[keep].drop_duplicates("study"), on="study", how="left")
    return df


def analyse_outcome(snakemake):
    import pandas as pd

    from metapool.analysis import analyse_outcome
    from metapool.io import write_json
    from metapool.tables import write_csv
    from metapool.plots.forest import forest_plot
    from metapool.plots.funnel import funnel_plot

    t0 = time.perf_counter()
    snap = json.loads(Path(snakemake.input.snapshot).read_text())
    rows = pd.DataFrame.from_records(snap["rows"])
    studies = pd.DataFrame.from_records(snap["studies"]) if snap["studies"] else None
    analysis = analyse_outcome(snap["outcome"], snap["spec"], rows, studies)
    write_csv(snakemake.output.effects, effects_frame(analysis))
    write_json(snakemake.output.pooled, analysis.to_dict())
    t1 = time.perf_counter()
    forest_plot(analysis, _stem(snakemake.output.forest_png))
    t2 = time.perf_counter()
    bias = analysis.extras.get("small_study") or {}
    ok = [bias.get(t) if (bias.get(t) or {}).get("status") == "ok" else None
          for t in ("trim_and_fill", "egger")]
    funnel_plot(analysis, _stem(snakemake.output.funnel_png), contours=True, filled=ok[0], egger=ok[1])
    t3 = time.perf_counter()
    print(f"{snap['outcome']}: k = {analysis.effects.k}, fits {', '.join(f.method for f in analysis.fits)}; "
          f"analysis {t1 - t0:.2f} s, forest {t2 - t1:.2f} s, funnel {t3 - t2:.2f} s")


def draw_diagnostic(analysis, kind: str, stem: str):
    """Draw figure ``kind`` of ``analysis`` from its stored extras (``{stem}.png`` and ``.svg``)."""
    import pandas as pd

    from metapool import analysis as ana
    from metapool.plots import diagnostics
    from metapool.plots.forest import summary_forest

    ex, es, label = analysis.extras, analysis.effects, analysis.label
    names = ex.get("study_labels") or {}
    if kind not in ex.get("figures", []):
        raise ValueError(f"{analysis.outcome}: no {kind} figure (extras['figures'] = {ex.get('figures')})")
    if kind in ("loo", "cumulative"):
        res = ex["leave_one_out" if kind == "loo" else "cumulative"]
        t = pd.DataFrame(res["table"])
        fit = next((f for f in analysis.fits if f.method == res["method"]), analysis.primary)
        if kind == "loo":
            labels = [f"omitting {names.get(s) or s}" for s in t["study"]]
            title = f"Leave-one-out ({res['method']}): {label}"
        else:
            labels = [f"+ {names.get(s) or s}" + ("" if o is None or pd.isna(o) else f" ({o:g})"
                                                   if isinstance(o, float) else f" ({o})")
                      for s, o in zip(t["study"], t["order"])]
            title = f"Cumulative meta-analysis by {res['order_by']} ({res['method']}): {label}"
        return summary_forest(labels, t["estimate"], t["ci_lb"], t["ci_ub"], measure=es.measure,
                              path_stem=stem, title=title, pooled=fit, ni=es.ni, level=fit.level)
    if kind == "influence":
        res = ex["influence"]
        frame = pd.DataFrame(res["table"])
        frame["label"] = [str(names.get(s) or s) for s in frame["study"]]
        return diagnostics.influence_plot(frame, stem, tau2=res["tau2"], Q=res["Q"],
                                          title=f"Influence diagnostics ({res['method']}): {label}")
    if kind == "baujat":
        res = ex["influence"]
        frame = pd.DataFrame(res["baujat"])
        frame["label"] = [str(names.get(s) or s) for s in frame["study"]]
        frame.attrs["method"] = res["method"]
        return diagnostics.baujat_plot(frame, stem, title=f"Baujat plot ({res['method']}): {label}")
    if kind == "gosh":
        g = ana.gosh_result(analysis)
        return diagnostics.gosh_plot(g, stem, measure=es.measure, title=f"GOSH plot ({g.method}): {label}")
    reg, _, _ = ana.metareg_result(analysis)
    return diagnostics.bubble_plot(reg, stem, moderator=reg.coef[1], measure=es.measure,
                                   title=f"Meta-regression on {reg.coef[1]}: {label}")


def diagnostic_figure(snakemake):
    """One diagnostic figure (``snakemake.params.kind``) of one outcome, from its pooled JSON."""
    from metapool.results import OutcomeAnalysis

    t0 = time.perf_counter()
    analysis = OutcomeAnalysis.from_dict(json.loads(Path(snakemake.input.pooled).read_text()))
    draw_diagnostic(analysis, snakemake.params.kind, _stem(snakemake.output.png))
    print(f"{analysis.outcome} {snakemake.params.kind}: {time.perf_counter() - t0:.2f} s")


def load_analyses(paths, outcomes):
    from metapool.results import OutcomeAnalysis

    return {o: OutcomeAnalysis.from_dict(json.loads(Path(p).read_text())) for o, p in zip(outcomes, paths)}


def report(snakemake):
    import pandas as pd

    from metapool import report, tables
    from metapool.data import load_studies, load_targets
    from metapool.io import write_text
    from metapool.tables import write_csv

    outcomes = list(snakemake.params.outcomes)
    analyses = load_analyses(snakemake.input.pooled, outcomes)
    summary = tables.summary_frame(list(analyses.values()))
    write_csv(snakemake.output.summary_csv, summary)
    key = ["outcome", "model", "method", "k", "n", "estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub",
           "tau2", "I2", "Q_pval"]
    write_text(snakemake.output.summary_md,
               "# Summary of pooled estimates\n\nReporting scale (proportions as fractions, ratios "
               "back-transformed); all columns in summary.csv.\n\n" + tables.to_markdown(summary[key]))
    targets = load_targets(snakemake.input.targets) if snakemake.input.targets else pd.DataFrame()
    rep = report.reproduction_table(analyses, targets)
    write_csv(snakemake.output.reproduction_csv, rep)
    write_text(snakemake.output.reproduction_md, report.reproduction_markdown(rep))
    figures = {o: {"forest": f, "funnel": u}
               for o, f, u in zip(outcomes, snakemake.input.forest, snakemake.input.funnel)}
    for o, a in analyses.items():      # the diagnostic figures the analysis lists, next to the forest
        for kind in a.extras.get("figures", []):
            figures[o][kind] = str(Path(figures[o]["forest"]).with_name(f"{o}_{kind}.svg"))
    studies = load_studies(snakemake.input.studies)
    html = report.render_html(analyses, summary, rep, figures, studies=studies, title=snakemake.params.title)
    write_text(snakemake.output.html, html)


