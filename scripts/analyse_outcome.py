"""Snakemake job ``analyse_outcome``: one outcome's effect sizes, pooled models and figures.

Reads the outcome's data snapshot (``results/data/{outcome}.json``, written by common.smk),
runs :func:`metapool.analysis.analyse_outcome` and writes, from that one result object,
``results/effects/{outcome}.csv``, ``results/pooled/{outcome}.json`` and the forest and funnel
plots (PNG + SVG), all atomically.  The work is in :func:`_tasks.analyse_outcome`; it runs in the
warm worker (:mod:`_worker`) so that the job does not pay the imports again.
"""
from _worker import submit

submit("analyse_outcome", snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
