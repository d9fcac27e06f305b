"""Helpers shared by the workflow scripts (not a rule script itself)."""
from __future__ import annotations

import contextlib
import logging
import sys
import traceback
import warnings
from pathlib import Path


@contextlib.contextmanager
def job_log(path):
    """Send warnings, logging and any error of the job to the rule's ``log:`` file.

    On failure the traceback goes to the log and a one-line message to stderr, then the job
    exits with status 1 (Snakemake shows the log path).
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        handler = logging.StreamHandler(fh)
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True,
                            format="%(levelname)s %(name)s: %(message)s")
        logging.captureWarnings(True)
        warnings.simplefilter("default")
        try:
            with contextlib.redirect_stdout(fh):
                yield logging.getLogger("metapool.workflow")
        except Exception as exc:
            traceback.print_exc(file=fh)
            fh.flush()
            sys.stderr.write(f"metapool: {type(exc).__name__}: {exc} (details: {path})\n")
            sys.exit(1)


def stem(path) -> str:
    """``results/figures/x_forest.png`` -> ``results/figures/x_forest``."""
    p = Path(path)
    return str(p.with_suffix(""))
