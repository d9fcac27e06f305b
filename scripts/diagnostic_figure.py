"""Snakemake job ``diagnostic_figure``: one diagnostic figure of one outcome.

Draws ``results/figures/{outcome}_{kind}.{png,svg}`` (kind: loo, cumulative, influence, baujat,
gosh, bubble) from the stored result ``results/pooled/{outcome}.json``, so the figure shows the
numbers of the JSON and of the report's tables.  The work is in :func:`_tasks.diagnostic_figure`,
run by the warm worker (:mod:`_worker`).
"""
from _worker import submit

submit("diagnostic_figure", snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
