"""The work of each workflow job, as plain functions (the rules' scripts only call these).

``analyse_outcome`` (one job per outcome): the outcome's snapshot (a Snakemake param made by
:func:`metapool.workflow.make_plan`) -> :func:`metapool.analysis.analyse_outcome` -> the pooled
result (``results/pooled/{outcome}.json``), the effect sizes (``results/effects/{outcome}.csv``)
and every figure of the outcome (``results/figures/{outcome}/{kind}.{png,svg}``), all drawn from
the one result object the job holds.

``report`` (one job): reads every pooled result and renders the summary tables, the reproduction
table, one audit file per published target (``results/audit/{target_id}.json``) and the report.
It fits no model.

Every file is written atomically (:mod:`metapool.io`); the same input gives byte-identical files.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["run_outcome", "run_report", "outcome_job", "report_job", "job_log"]


# --------------------------------------------------------------------------- outcome
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

    from .analysis import analyse_outcome
    from .io import remove_stale_temporaries, write_json
    from .spec import OutcomeSpec
    from .tables import effects_rows, write_csv

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
    from .plots import draw_figures

    times = draw_figures(analysis, kinds, figures)
    t3 = time.perf_counter()
    progress(f"{analysis.outcome}: k = {analysis.k}; fits {', '.join(f.method for f in analysis.fits)}; "
             f"analysis {t1 - t0:.2f} s, tables {t2 - t1:.2f} s, figures {t3 - t2:.2f} s "
             f"({', '.join(f'{k} {s:.2f}' for k, s in times.items())})")
    return analysis


# --------------------------------------------------------------------------- report
def load_analyses(paths: Sequence) -> list:
    from .analysis import OutcomeAnalysis

    return [OutcomeAnalysis.from_dict(json.loads(Path(p).read_text(encoding="utf-8"))) for p in paths]


def run_report(pooled: Sequence, *, plan, studies, figures: Sequence, outputs: Mapping, progress=print):
    """Render every table and the report from the pooled results (no model is fitted here).

    Parameters
    ----------
    pooled : paths of ``results/pooled/{outcome}.json`` in outcome order.
    plan : str or mapping
        The report snapshot (:meth:`metapool.workflow.Plan.report_snapshot`): title, targets,
        skipped rows.
    studies : path of the study table (provenance section).
    figures : folders ``results/figures/{outcome}`` in outcome order.
    outputs : mapping with ``summary_csv, summary_md, reproduction_csv, reproduction_md, html`` and
        ``audit`` (a list of ``results/audit/{target_id}.json`` paths).
    """
    from . import report, tables
    from .data import load_studies
    from .io import write_json, write_text
    from .reproduce import check_unlinked

    from .io import remove_stale_temporaries

    for key, path in outputs.items():
        for p in (path if isinstance(path, list) else [path]):
            remove_stale_temporaries(p)
    t0 = time.perf_counter()
    meta = json.loads(plan) if isinstance(plan, str) else plan
    analyses = load_analyses(pooled)
    checks = {c.target_id: c for a in analyses for c in a.reproduction}
    for t in meta["targets"]:
        if t["target_id"] not in checks:
            checks[t["target_id"]] = check_unlinked(t)
    ordered = [checks[t["target_id"]] for t in meta["targets"]]
    summary = tables.summary_rows(analyses)
    write_text(outputs["summary_csv"], tables.csv_text(summary, tables.SUMMARY_COLUMNS))
    write_text(outputs["summary_md"], report.summary_markdown(summary))
    rows = [c.row() for c in ordered]
    write_text(outputs["reproduction_csv"], tables.csv_text(rows, report.REPRODUCTION_COLUMNS))
    write_text(outputs["reproduction_md"], report.reproduction_markdown(ordered))
    for path in outputs.get("audit", []):
        tid = Path(path).stem
        c = checks[tid]
        write_json(path, {"target": c.row(), "audit": c.audit})
    figs = {a.outcome: Path(d) for a, d in zip(analyses, figures)}
    html = report.render_html(analyses, ordered, figs, studies=load_studies(studies), title=meta["title"],
                              skipped=meta.get("skipped", []))
    write_text(outputs["html"], html)
    progress(f"report: {len(analyses)} outcomes, {len(ordered)} targets, {time.perf_counter() - t0:.2f} s")


# --------------------------------------------------------------------------- snakemake adapters
@contextlib.contextmanager
def job_log(path):
    """Send stdout and stderr to the job's log file; on failure, the traceback goes to the log and
    one line naming the error and the log goes to the terminal."""
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stderr
    with open(path, "w", encoding="utf-8") as fh:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        try:
            yield
        except Exception as exc:
            traceback.print_exc()
            fh.flush()
            sys.stdout, sys.stderr = old
            terminal.write(f"metapool: {type(exc).__name__}: {exc} (details: {path})\n")
            raise SystemExit(1) from None
        finally:
            sys.stdout, sys.stderr = old


def outcome_job(smk) -> None:
    """The ``analyse_outcome`` rule: ``smk`` is Snakemake's ``snakemake`` object."""
    with job_log(smk.log[0] if smk.log else None):
        run_outcome(smk.params.snapshot, pooled=smk.output.pooled, effects=smk.output.effects,
                    figures=smk.output.figures)


def report_job(smk) -> None:
    """The ``report`` rule."""
    with job_log(smk.log[0] if smk.log else None):
        run_report(list(smk.input.pooled), plan=smk.params.plan, studies=smk.input.studies,
                   figures=list(smk.input.figures),
                   outputs={"summary_csv": smk.output.summary_csv, "summary_md": smk.output.summary_md,
                            "reproduction_csv": smk.output.reproduction_csv,
                            "reproduction_md": smk.output.reproduction_md, "html": smk.output.html,
                            "audit": list(smk.output.audit)})
