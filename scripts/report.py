"""Snakemake job `report`: summary, reproduction table, audit files and report.html (metapool.jobs.report)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the package next to the workflow
from metapool.jobs.report import report_job  # noqa: E402

report_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
