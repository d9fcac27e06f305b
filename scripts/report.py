"""Snakemake job ``report``: summary tables, reproduction check and the HTML report.

Reads every ``results/pooled/{outcome}.json`` (the objects the figures were drawn from), the
study table and the published targets; writes ``results/summary.csv/.md``,
``results/reproduction.csv/.md`` and the self-contained ``results/report.html``, all atomically.
The work is in :func:`_tasks.report`, run by the warm worker (:mod:`_worker`).
"""
from _worker import submit

submit("report", snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
