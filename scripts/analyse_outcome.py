"""Snakemake job ``analyse_outcome``: one outcome's effect sizes, pooled models and figures.

Reads the outcome's data snapshot (``results/data/{outcome}.json``, written by common.smk),
calls :func:`metapool.analysis.analyse_outcome` and writes, from that one result object,
``results/effects/{outcome}.csv``, ``results/pooled/{outcome}.json`` and the forest and
funnel plots (PNG + SVG).  Every file is written atomically.
"""
import json
from pathlib import Path

from _common import job_log, stem


def effects_frame(analysis):
    """Per-study rows: analysis-scale yi, vi, CI; reporting-scale estimate and CI; weights."""
    import pandas as pd

    from metapool.transforms import back_transform

    primary = analysis.primary
    es = analysis.effects
    df = primary.study_frame().rename(columns={"weight": f"weight_{primary.method}"})
    ni = es.ni if es.ni is not None and len(es.ni) == len(df) else None
    for col, src in (("estimate", "yi"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub")):
        df[col] = back_transform(es.measure, df[src].to_numpy(), ni=ni)
    for f in analysis.fits:
        if f is not primary and len(f.weights) == len(f.study):
            w = pd.Series(f.weights, index=list(f.study))
            df[f"weight_{f.method}"] = df["study"].map(w)
    df.insert(1, "measure", es.measure)
    prov = pd.DataFrame(analysis.extras.get("provenance", []))
    if len(prov):
        keep = [c for c in ("study", "status", "source") if c in prov.columns]
        df = df.merge(prov[keep].drop_duplicates("study"), on="study", how="left")
    return df


def main(snakemake):
    import pandas as pd

    from metapool.analysis import analyse_outcome
    from metapool.io import write_json
    from metapool.tables import write_csv
    from metapool.plots.forest import forest_plot
    from metapool.plots.funnel import funnel_plot

    snap = json.loads(Path(snakemake.input.snapshot).read_text())
    rows = pd.DataFrame.from_records(snap["rows"])
    studies = pd.DataFrame.from_records(snap["studies"]) if snap["studies"] else None
    analysis = analyse_outcome(snap["outcome"], snap["spec"], rows, studies)
    write_csv(snakemake.output.effects, effects_frame(analysis))
    write_json(snakemake.output.pooled, analysis.to_dict())
    forest_plot(analysis, stem(snakemake.output.forest_png))
    funnel_plot(analysis, stem(snakemake.output.funnel_png))


with job_log(snakemake.log[0]):
    main(snakemake)
