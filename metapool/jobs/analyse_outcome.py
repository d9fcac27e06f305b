"""The ``analyse_outcome`` job (one per outcome).

The outcome's snapshot (a Snakemake param made by :func:`metapool.workflow.make_plan`) ->
:func:`metapool.analysis.analyse_outcome` -> the pooled result (``results/pooled/{outcome}.json``),
the effect sizes (``results/effects/{outcome}.csv``) and every figure of the outcome
(``results/figures/{outcome}/{kind}.{png,svg}``), all drawn from the one result object the job holds.
"""
from __future__ import annotations

import json
import time

from . import job_log

__all__ = ["run_outcome", "outcome_job"]


def run_outcome(snapshot, *, pooled, effects, figures, progress=print):
    """Analyse one outcome from its snapshot and write its pooled JSON, effects CSV and figures.

    Parameters
    ----------
    snapshot : str or mapping
        JSON text (or the parsed object) with ``outcome``, ``spec``, ``rows``, ``studies``,
        ``targets`` and ``figures`` (the figure kinds to draw).
    pooled, effects : path
        Output files.
    figures : path
        Output folder of the figures (created).

    Returns
    -------
    OutcomeAnalysis
    """
    import dataclasses

    from ..analysis import analyse_outcome
    from ..io import remove_stale_temporaries, write_json
    from ..spec import OutcomeSpec
    from ..tables import effects_rows, write_csv

    for path in (pooled, effects):
        remove_stale_temporaries(path)
    t0 = time.perf_counter()
    snap = json.loads(snapshot) if isinstance(snapshot, str) else snapshot
    spec = OutcomeSpec.from_dict(snap["spec"])
    analysis = analyse_outcome(snap["outcome"], spec, snap["rows"], snap["studies"], targets=snap.get("targets", ()))
    kinds = list(snap.get("figures") or analysis.figures)
    analysis = dataclasses.replace(analysis, figures=tuple(kinds))
    t1 = time.perf_counter()
    write_json(pooled, analysis.to_dict())
    rows = effects_rows(analysis)
    columns = list(dict.fromkeys(["study", "label", "measure", "yi", "vi", "ci_lb", "ci_ub", "estimate",
                                  "estimate_ci_lb", "estimate_ci_ub",
                                  *[k for r in rows for k in r if k.startswith("weight_")],
                                  "status", "pooled", "source"]))
    write_csv(effects, rows, columns)
    t2 = time.perf_counter()
    from ..plots import draw_figures

    times = draw_figures(analysis, kinds, figures)
    t3 = time.perf_counter()
    progress(f"{analysis.outcome}: k = {analysis.k}; fits {', '.join(f.method for f in analysis.fits)}; "
             f"analysis {t1 - t0:.2f} s, tables {t2 - t1:.2f} s, figures {t3 - t2:.2f} s "
             f"({', '.join(f'{k} {s:.2f}' for k, s in times.items())})")
    return analysis


def outcome_job(smk) -> None:
    """The ``analyse_outcome`` rule: ``smk`` is Snakemake's ``snakemake`` object."""
    with job_log(smk.log[0] if smk.log else None):
        run_outcome(smk.params.snapshot, pooled=smk.output.pooled, effects=smk.output.effects,
                    figures=smk.output.figures)
