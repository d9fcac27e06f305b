"""Snakemake job ``report``: summary tables, reproduction check and the HTML report.

Reads every ``results/pooled/{outcome}.json`` (the same objects the figures were drawn from),
the study table and the published targets; writes ``results/summary.csv/.md``,
``results/reproduction.csv/.md`` and the self-contained ``results/report.html`` atomically.
"""
import json
from pathlib import Path

from _common import job_log


def load_analyses(paths, outcomes):
    from metapool.results import OutcomeAnalysis

    return {o: OutcomeAnalysis.from_dict(json.loads(Path(p).read_text())) for o, p in zip(outcomes, paths)}


def main(snakemake):
    import pandas as pd

    from metapool import report, tables
    from metapool.io import write_text
    from metapool.tables import write_csv

    outcomes = list(snakemake.params.outcomes)
    analyses = load_analyses(snakemake.input.pooled, outcomes)
    summary = tables.summary_frame(list(analyses.values()))
    write_csv(snakemake.output.summary_csv, summary)
    write_text(snakemake.output.summary_md, "# Summary of pooled estimates\n\n" + tables.to_markdown(summary))
    targets = pd.read_csv(snakemake.input.targets) if snakemake.input.targets else pd.DataFrame()
    rep = report.reproduction_table(analyses, targets)
    write_csv(snakemake.output.reproduction_csv, rep)
    write_text(snakemake.output.reproduction_md, report.reproduction_markdown(rep))
    figures = {o: {"forest": f, "funnel": u}
               for o, f, u in zip(outcomes, snakemake.input.forest, snakemake.input.funnel)}
    studies = pd.read_csv(snakemake.input.studies)
    html = report.render_html(analyses, summary, rep, figures, studies=studies, title=snakemake.params.title)
    write_text(snakemake.output.html, html)


with job_log(snakemake.log[0]):
    main(snakemake)
