"""Shared test helpers: the metafor reference cases (tests/metafor_cases*.json, made by tests/make_*.R)."""
import json
from pathlib import Path

import pandas as pd
import pytest

TESTS = Path(__file__).parent
REFERENCE = TESTS / "metafor_cases.json"


def load_cases(path=REFERENCE):
    """All reference cases of a metafor JSON file (see tests/make_metafor_cases.R)."""
    return json.loads(Path(path).read_text())["cases"]


def cases_where(pred, path=REFERENCE):
    """pytest params (id = case name) for the cases that satisfy ``pred(case)``."""
    return [pytest.param(c, id=c["case"]) for c in load_cases(path) if pred(c)]


def rows_frame(case):
    """The case's input rows as a DataFrame."""
    return pd.DataFrame(case["rows"])


def assert_close(actual, expected, rel=1e-8, abs_=1e-10, what=""):
    """Compare numbers or sequences; metafor's JSON writes NA/NULL as {} or None (skipped)."""
    import numpy as np

    if expected in ({}, None):
        return
    a = np.atleast_1d(np.asarray(actual, dtype=float))
    e = np.atleast_1d(np.asarray([np.nan if x in ({}, None) else x for x in np.atleast_1d(expected)],
                                 dtype=float))
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    ok = np.isclose(a, e, rtol=rel, atol=abs_) | (np.isnan(e) & np.isnan(a))
    assert ok.all(), f"{what}: got {a[~ok]}, metafor {e[~ok]}"


ROOT = TESTS.parent
PROJECT_PARTS = ("Snakefile", "workflow", "scripts", "config.yaml", "data", "metapool")
"""What a review folder needs to run the workflow (the jobs import the package next to the Snakefile)."""


def copy_project(dest, parts=PROJECT_PARTS, source=ROOT):
    """Copy the workflow project (``parts`` of ``source``) into ``dest`` for a test run."""
    import shutil

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        src = Path(source) / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / part)
    return dest


def keep_only_outcomes(cfg: dict, outcomes, project) -> dict:
    """Restrict ``cfg`` (a parsed config.yaml of ``project``) to ``outcomes``: the other outcomes'
    rows are listed in ``ignore_outcomes``, as a user who narrows a review does."""
    import csv

    cfg["outcomes"] = {k: cfg["outcomes"][k] for k in outcomes}
    present = set()
    for t in cfg["tables"]:
        with open(Path(project) / t, newline="", encoding="utf-8") as fh:
            present |= {r["outcome"] for r in csv.DictReader(fh)}
    present |= {r["outcome"] for r in cfg.get("extra_studies") or []}
    cfg["ignore_outcomes"] = sorted(present - set(outcomes))
    return cfg


def run_snakemake(cwd, *args, timeout=900, env=None):
    """``snakemake --cores 2 ARGS`` in ``cwd`` (a subprocess); the CompletedProcess."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory):
    """One full run of the bundled project in a temporary copy, shared by the tests that read its
    outputs (the slowest fixture of the suite: about half a minute on 2 cores)."""
    cwd = copy_project(tmp_path_factory.mktemp("bundled"))
    res = run_snakemake(cwd, "-q")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return cwd
