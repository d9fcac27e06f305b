"""The ``report`` job (one per run): reads every pooled result and renders the summary tables, the
reproduction table, one audit file per published target (``results/audit/{target_id}.json``) and the
HTML report.  It fits no model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping, Sequence

from . import job_log

__all__ = ["run_report", "report_job", "load_analyses"]


def load_analyses(paths: Sequence) -> list:
    from ..analysis import OutcomeAnalysis

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
    from .. import report, tables
    from ..data import load_studies
    from ..io import remove_stale_temporaries, write_json, write_text
    from ..reproduce import check_unlinked

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


def report_job(smk) -> None:
    """The ``report`` rule."""
    with job_log(smk.log[0] if smk.log else None):
        run_report(list(smk.input.pooled), plan=smk.params.plan, studies=smk.input.studies,
                   figures=list(smk.input.figures),
                   outputs={"summary_csv": smk.output.summary_csv, "summary_md": smk.output.summary_md,
                            "reproduction_csv": smk.output.reproduction_csv,
                            "reproduction_md": smk.output.reproduction_md, "html": smk.output.html,
                            "audit": list(smk.output.audit)})
