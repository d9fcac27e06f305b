"""Crash safety and reproducibility of the workflow, in temporary copies of the project.

* Two runs from scratch give byte-identical results (tables, JSON, SVG and PNG figures,
  Markdown, report.html) - one with the warm worker, one with ``METAPOOL_WORKER=0``, which also
  shows that the worker does not change any output.
* A run killed in the middle (SIGKILL to Snakemake's whole process group once a few outcome
  jobs have finished) leaves no half-written file in ``results/``; the worker stops the killed
  jobs' children at once; ``snakemake --unlock`` + ``snakemake --rerun-incomplete`` then
  finishes with results identical to the uninterrupted run, served by the worker that was
  started before the kill.

The project and the ``metapool`` package are copied once and every run imports that copy, so
edits to the working tree during the test cannot make runs differ.  A subset of the bundled outcomes (every data kind, subgroups, GLMM, MH) keeps the runs short;
docs/reliability.md reports the same comparison on the full bundled config.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_PARTS, copy_project
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("ln_remission", "sri4_wk12", "injection_site", "fever", "sae", "sri4_wk12_rr",
            "sri4_wk12_rd", "sae_rr", "injection_site_rd", "treg_abs", "th17_abs", "sledai", "cdasi")
WORKER_LOG = Path(".snakemake", "log", "metapool-worker.log")
CODE: list[str] = []          # the frozen copy of the package (PYTHONPATH of every run)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> Path:
    """One copy of the project *and* the package, so that every run here uses the same code and
    data even while the working tree is being edited (runs import it via PYTHONPATH)."""
    dest = tmp_path_factory.mktemp("frozen")
    copy_project(dest, parts=(*PROJECT_PARTS, "metapool"))
    CODE[:] = [str(dest)]
    return dest


def make_project(frozen: Path, dest: Path) -> Path:
    copy_project(dest, source=frozen)
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    keep = [o for o in OUTCOMES if o in cfg["outcomes"]]
    assert len(keep) >= 8, "the bundled config no longer has the outcomes this test uses"
    cfg["outcomes"] = {o: cfg["outcomes"][o] for o in keep}
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200))
    return dest


def snakemake(cwd: Path, *args, env=None, timeout=900) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONPATH": CODE[0], **(env or {})})
    assert res.returncode == 0, f"snakemake {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def result_files(cwd: Path) -> dict[str, bytes]:
    """Every result file except logs and hidden files (fingerprint, temporary files)."""
    out = {}
    for p in sorted((cwd / "results").rglob("*")):
        rel = p.relative_to(cwd / "results").as_posix()
        if p.is_file() and not rel.startswith("logs/") and not any(
                part.startswith(".") for part in Path(rel).parts):
            out[rel] = p.read_bytes()
    return out


def assert_same_results(a: Path, b: Path):
    fa, fb = result_files(a), result_files(b)
    assert sorted(fa) == sorted(fb)
    differ = [name for name in fa if fa[name] != fb[name]]
    assert not differ, f"files differ between {a} and {b}: {differ[:10]}"


def complete(path: Path) -> bool:
    """True if a result file is whole: it parses (JSON, CSV) or ends as its format must."""
    data = path.read_bytes()
    suffix = path.suffix
    if suffix == ".json":
        json.loads(data)
        return True
    if suffix == ".png":
        return data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    if suffix == ".svg":
        return data.rstrip().endswith(b"</svg>")
    if suffix == ".html":
        return data.rstrip().endswith(b"</html>")
    if suffix in (".csv", ".md"):
        return data.endswith(b"\n")
    return True


@pytest.fixture(scope="module")
def reference(frozen, tmp_path_factory) -> Path:
    """An uninterrupted run with the warm worker."""
    cwd = make_project(frozen, tmp_path_factory.mktemp("crash") / "reference")
    snakemake(cwd)
    return cwd


def test_results_are_complete_and_readable(reference):
    files = result_files(reference)
    assert any(n.startswith("pooled/") for n in files) and "report.html" in files
    for name in files:
        assert complete(reference / "results" / name), name
        mode = (reference / "results" / name).stat().st_mode & 0o777
        assert mode == 0o644, f"{name} has mode {oct(mode)}"


def test_two_runs_without_worker_give_identical_bytes(frozen, reference, tmp_path):
    """A second run from scratch, each job importing everything itself: the same bytes."""
    cwd = make_project(frozen, tmp_path / "again")
    snakemake(cwd, env={"METAPOOL_WORKER": "0"})
    assert not (cwd / WORKER_LOG).exists()          # the worker really was off
    assert_same_results(reference, cwd)


def _parent_pids() -> dict[int, int]:
    """``{pid: parent pid}`` of every process (from /proc/<pid>/stat)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        out[int(stat.parent.name)] = int(text[text.rindex(")") + 2:].split()[1])
    return out


def _worker_children(cwd: Path) -> list[int]:
    """PIDs of the live children of the worker(s) this run started (from the worker log)."""
    log = (cwd / WORKER_LOG).read_text() if (cwd / WORKER_LOG).exists() else ""
    workers = set(map(int, re.findall(r"worker (\d+) ready", log)))
    return [pid for pid, parent in _parent_pids().items() if parent in workers]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and process groups")
def test_killed_run_restarts_to_identical_results(frozen, reference, tmp_path):
    cwd = make_project(frozen, tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": CODE[0]})
    pooled = cwd / "results" / "pooled"
    seen: set = set()
    deadline = time.monotonic() + 600
    try:
        # kill once three outcomes are done and the worker is running a job (to test its clean-up)
        while len(list(pooled.glob("*.json")) if pooled.exists() else []) < 3 or not _worker_children(cwd):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            for p in (cwd / "results").rglob("*"):      # whatever is visible is whole, at any time
                if p.is_file() and not p.name.startswith(".") and p not in seen and "logs" not in p.parts:
                    assert complete(p), p
                    seen.add(p)
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)              # a crash: no clean-up by Snakemake
        proc.wait()
    n_done = len(list(pooled.glob("*.json")))
    assert 3 <= n_done < len(OUTCOMES)
    for p in (cwd / "results").rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            assert complete(p), f"half-written after the kill: {p}"
    leftovers = [p for p in (cwd / "results").rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert all(p.name.startswith(".") for p in leftovers)
    # the worker notices that the jobs' clients are gone and stops their children at once
    assert re.search(r"worker \d+ ready", (cwd / WORKER_LOG).read_text()), "no worker ran"
    t0 = time.monotonic()
    while _worker_children(cwd) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert not _worker_children(cwd), "a killed job's child is still running"
    ready_before = len(re.findall(r"worker \d+ ready", (cwd / WORKER_LOG).read_text()))

    snakemake(cwd, "--unlock")
    snakemake(cwd, "--rerun-incomplete")
    assert_same_results(reference, cwd)
    # the restarted run was served by the worker that was already warm (idle < 10 s)
    assert len(re.findall(r"worker \d+ ready", (cwd / WORKER_LOG).read_text())) == ready_before
    # and nothing is left to do
    res = snakemake(cwd, "-n")
    assert "Nothing to be done" in res.stdout + res.stderr
