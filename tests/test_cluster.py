"""The bundled workflow on a real SLURM cluster, through snakemake-executor-plugin-slurm.

The project is copied twice; one copy runs locally (``--workflow-profile workflow/profiles/default``),
the other on SLURM (``--workflow-profile workflow/profiles/slurm``).  Then:

(a) every file under results/ except the logs is byte-identical between the two runs;
(b) SLURM's accounting (``sacct``) holds exactly one job per job that Snakemake sent to the cluster:
    the plugin names every sbatch job after the run's UUID (``SLURM run ID: ...`` in Snakemake's
    output) and sets its comment to ``rule_<rule>_wildcards_<wildcard values joined by _>``; these
    are compared with the non-local jobs Snakemake printed (``rule``/``checkpoint`` blocks, local ones
    print ``localrule``/``localcheckpoint``) and with the SLURM job ids it logged at submission;
(c) no process of either run is left afterwards, and no job of the run is still queued.

Needs a cluster whose accounting stores job comments (``AccountingStoreFlags=job_comment``), with the
partition and account of workflow/profiles/slurm: ``.ci/start-slurm.sh`` sets one up on Debian
(``.ci/stop-slurm.sh`` stops it).  Skipped when ``sbatch`` is not on PATH, when ``sinfo`` fails, or
when the executor plugin is not installed (``pip install -e ".[cluster]"``).  Takes minutes.
"""
from __future__ import annotations

import collections
import datetime
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, copy_project


def _slurm_problem():
    """Why the cluster test cannot run here (None: it can)."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (start a test cluster with .ci/start-slurm.sh)"
    try:
        subprocess.run(["sinfo", "-h"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo fails, so SLURM does not answer: {exc}"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return 'snakemake-executor-plugin-slurm is not installed (pip install -e ".[cluster]")'
    return None


_PROBLEM = _slurm_problem()
# The tests that need the cluster; the checks of this module's own helpers at the end run anywhere.
on_cluster = pytest.mark.skipif(_PROBLEM is not None, reason=str(_PROBLEM))

# Status polling of the plugin: its defaults (first check after 40 s, then 10 s more after every
# check without a finished job) suit a busy cluster; this workflow's jobs take seconds.
FAST_STATUS = ["--slurm-init-seconds-before-status-checks", "5", "--seconds-between-status-checks", "5"]
RUN_TIMEOUT = 45 * 60
JOB_HEADER = re.compile(r"^(local)?(rule|checkpoint) (\w+):$")


def _env():
    """Environment of both runs, inherited by the sbatch jobs (the plugin submits with --export=ALL).

    PYTHONPATH puts this checkout's ``metapool`` first (the jobs re-parse the Snakefile and import
    it on the node).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def _snakemake(cwd, *args):
    """Run Snakemake in ``cwd``; its combined output, or a failure that shows the output's end."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=RUN_TIMEOUT)
    (Path(cwd) / "snakemake-output.txt").write_text(proc.stdout)
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed in {cwd}:\n{proc.stdout[-6000:]}"
    return proc.stdout


def _jobs(output):
    """(local?, rule, wildcard values) of every job block Snakemake printed."""
    jobs = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        m = JOB_HEADER.match(line)
        if not m:
            continue
        values = ()
        for body in lines[i + 1:]:
            if not body.startswith("    "):
                break
            if body.strip().startswith("wildcards: "):
                values = tuple(kv.split("=", 1)[1] for kv in body.strip()[len("wildcards: "):].split(", "))
        jobs.append((m.group(1) is not None, m.group(3), values))
    return jobs


def _processes_of(folder):
    """Live processes (pid, command) that run in ``folder`` or name it in their command or environment."""
    folder = str(folder)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue  # a zombie holds no resources and runs nothing
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
            try:
                environ = (entry / "environ").read_bytes().decode(errors="replace")
            except OSError:
                environ = ""
        except (OSError, IndexError):
            continue  # ended meanwhile
        if cwd == folder or cwd.startswith(folder + "/") or folder in cmdline or folder in environ:
            found.append((int(entry.name), cmdline.strip()))
    return found


def _leftovers(folder, wait=15.0):
    """Processes of ``folder`` still alive after up to ``wait`` seconds (ending ones may finish)."""
    end = time.monotonic() + wait
    while True:
        left = _processes_of(folder)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.5)


def _result_files(root):
    """{path relative to results/: bytes} of every file under results/ except the logs and the
    benchmark files (run times and memory differ from run to run by nature)."""
    base = Path(root) / "results"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and p.relative_to(base).parts[0] not in ("logs", "benchmarks")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The workflow run once locally and once on SLURM, each in a fresh copy of the project."""
    base = tmp_path_factory.mktemp("cluster")
    local = copy_project(base / "local")
    slurm = copy_project(base / "slurm")
    local_out = _snakemake(local, "--workflow-profile", "workflow/profiles/default")
    local_left = _leftovers(local)
    started = datetime.datetime.now() - datetime.timedelta(minutes=5)
    slurm_out = _snakemake(slurm, "--workflow-profile", "workflow/profiles/slurm", *FAST_STATUS)
    slurm_left = _leftovers(slurm)
    run_id = re.search(r"^SLURM run ID: (\S+)$", slurm_out, re.M)
    assert run_id, f"no 'SLURM run ID' in the output of the SLURM run:\n{slurm_out[-3000:]}"
    return {"local": local, "slurm": slurm, "local_out": local_out, "slurm_out": slurm_out,
            "local_left": local_left, "slurm_left": slurm_left, "run_id": run_id.group(1),
            "started": started}


@pytest.mark.cluster
@on_cluster
def test_results_identical(runs):
    """(a) Same files with the same bytes under results/ (logs excepted), local and on SLURM."""
    local, slurm = _result_files(runs["local"]), _result_files(runs["slurm"])
    assert local, "the local run wrote no results"
    assert sorted(local) == sorted(slurm), (
        f"only local: {sorted(set(local) - set(slurm))}; only SLURM: {sorted(set(slurm) - set(local))}")
    differ = [name for name in local if local[name] != slurm[name]]
    assert not differ, f"{len(differ)} of {len(local)} result files differ: {differ}"


@pytest.mark.cluster
@on_cluster
def test_same_jobs_local_and_slurm(runs):
    """Both runs ran the same jobs (rule and wildcards); the SLURM run sent the non-local ones away."""
    local_jobs = _jobs(runs["local_out"])
    slurm_jobs = _jobs(runs["slurm_out"])
    assert local_jobs and all(is_local for is_local, _, _ in local_jobs)
    assert (collections.Counter((rule, wc) for _, rule, wc in local_jobs)
            == collections.Counter((rule, wc) for _, rule, wc in slurm_jobs))
    remote_rules = {rule for is_local, rule, _ in slurm_jobs if not is_local}
    assert {"analyse_outcome", "report"} <= remote_rules, remote_rules


@pytest.mark.cluster
@on_cluster
def test_sacct_one_job_per_cluster_job(runs):
    """(b) sacct has one job of this run per job that Snakemake submitted, with its rule and wildcards."""
    out = runs["slurm_out"]
    remote = [(rule, wc) for is_local, rule, wc in _jobs(out) if not is_local]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted) == len(remote) == len(set(submitted)), (len(submitted), len(remote))
    rows = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--name", runs["run_id"], "-o", "JobIDRaw,JobName,Comment,State",
         "-S", runs["started"].strftime("%Y-%m-%dT%H:%M:%S")],
        check=True, capture_output=True, text=True).stdout.splitlines()
    rows = [r.split("|") for r in rows if r.strip()]
    assert sorted(r[0] for r in rows) == sorted(submitted), (
        f"sacct jobs named {runs['run_id']}: {[r[0] for r in rows]}; submitted: {submitted}")
    assert all(r[1] == runs["run_id"] for r in rows)
    assert all(r[3] == "COMPLETED" for r in rows), [r for r in rows if r[3] != "COMPLETED"]
    comments = collections.Counter(r[2] for r in rows)
    assert "" not in comments, ("sacct shows no job comment: the cluster must store comments "
                                "(AccountingStoreFlags=job_comment in slurm.conf)")
    expected = collections.Counter(f"rule_{rule}_wildcards_{'_'.join(wc)}" if wc else f"rule_{rule}"
                                   for rule, wc in remote)
    assert comments == expected


@pytest.mark.cluster
@on_cluster
def test_no_process_left(runs):
    """(c) Nothing of either run still runs, and no job of the SLURM run is still in the queue."""
    assert runs["local_left"] == [], runs["local_left"]
    assert runs["slurm_left"] == [], runs["slurm_left"]
    queued = subprocess.run(["squeue", "-h", "--name", runs["run_id"], "-o", "%i %T"],
                            check=True, capture_output=True, text=True).stdout.strip()
    assert queued == "", f"jobs of run {runs['run_id']} still in the queue: {queued}"


# --- the helpers above detect what they look for (no cluster needed) -------------------------------


def test_process_scan_sees_a_process_in_the_folder(tmp_path):
    """_processes_of finds a live process by its working directory, and not once it has ended."""
    proc = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        assert proc.pid in [pid for pid, _ in _processes_of(tmp_path)]
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in [pid for pid, _ in _processes_of(tmp_path)]


def test_job_blocks_of_a_real_dry_run(tmp_path):
    """_jobs reads Snakemake's own job blocks: one analyse_outcome job per configured outcome."""
    import yaml

    project = copy_project(tmp_path / "p")
    out = _snakemake(project, "--dry-run", "--cores", "1")
    jobs = _jobs(out)
    outcomes = list(yaml.safe_load((project / "config.yaml").read_text())["outcomes"])
    per_outcome = sorted(wc for _, rule, wc in jobs if rule == "analyse_outcome")
    assert per_outcome == sorted((o,) for o in outcomes)
    assert [wc for _, rule, wc in jobs if rule == "report"] == [()]
