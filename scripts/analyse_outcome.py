"""Snakemake job `analyse_outcome`: one outcome's analysis, tables and figures (metapool.jobs.analyse_outcome)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the package next to the workflow
from metapool.jobs.analyse_outcome import outcome_job  # noqa: E402

outcome_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
