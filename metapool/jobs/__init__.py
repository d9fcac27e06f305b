"""The work of each workflow job, as plain functions; each rule's script only calls its module here.

One module per rule, named after it (``jobs.analyse_outcome``, ``jobs.report``): the workflow
fingerprints the package modules each job module imports (:func:`metapool.workflow.code_fingerprint`),
so an edit reruns exactly the jobs whose code changed.  Every file is written atomically
(:mod:`metapool.io`); the same input gives byte-identical files.
"""
from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path

__all__ = ["job_log"]


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
