"""Cost of the Snakemake workflow: CPU and wall time of whole runs, of each job, and of a job's imports.

    python benchmarks/bench_workflow.py [--cores 2] [--outcomes 12] [--out benchmarks/results_workflow.md]

Takes about 2 minutes on 2 cores.

Measures, each in a fresh temporary copy of the project (Snakefile, workflow/, scripts/, metapool/):

* ``bundled``: the bundled review from scratch, then a no-op re-run, then a re-run after adding one
  inline study to ``ln_remission`` (only that outcome's job and the report run).  Issue 8's targets
  on 2 cores: at most 40 CPU-s and 30 s for the full run, under 1.5 s for the no-op run.
* ``synthetic``: a review written by ``benchmarks/make_review.py`` (``--outcomes`` proportion
  outcomes, k = 5-20, FE + REML + GLMM, every further analysis on, every figure).  Target: at most
  5 CPU-s per outcome, figures included.
* ``imports``: the CPU cost of starting one job process, step by step (interpreter, Snakemake's
  script preamble, numpy + scipy.special, the analysis modules, matplotlib and the figure modules).

CPU seconds are user + sys of Snakemake and all its children (``RUSAGE_CHILDREN``), so they count
every job process.  Per job: Snakemake's ``benchmark:`` files (``cpu_time``) and the split that
each outcome job writes to its log (analysis, tables, figures).  Writes a Markdown page to
``--out`` (``--out ''`` prints only).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("Snakefile", "workflow", "scripts", "metapool")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_review import make_review  # noqa: E402


def copy_workflow(dest: Path, with_data: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in PARTS + (("config.yaml", "data") if with_data else ()):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / part)
    return dest


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cwd: Path, cores: int) -> dict:
    """One ``snakemake --cores N``: wall seconds and CPU seconds of it and every child."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet"],
                         cwd=cwd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
        raise SystemExit(f"snakemake failed in {cwd}")
    return {"wall": wall, "cpu": cpu}


def jobs_of(cwd: Path) -> list:
    """Per job: name, CPU seconds (benchmark file) and the split the outcome job logged."""
    out = []
    bench = cwd / "results" / "benchmarks"
    for f in sorted(bench.rglob("*.tsv")):
        with open(f, newline="") as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        name = f.stem if f.parent.name == "benchmarks" else f"{f.parent.name}/{f.stem}"
        job = {"job": name, "cpu": float(row["cpu_time"]), "wall": float(row["s"]),
               "rss_mb": float(row["max_rss"])}
        log = cwd / "results" / "logs" / "analyse_outcome" / f"{f.stem}.log"
        if f.parent.name == "analyse_outcome" and log.exists():
            m = re.search(r"k = (\d+);.*analysis ([\d.]+) s, tables ([\d.]+) s, figures ([\d.]+) s", log.read_text())
            if m:
                job.update(k=int(m[1]), analysis=float(m[2]), tables=float(m[3]), figures=float(m[4]))
        out.append(job)
    return out


def add_study(cwd: Path) -> str:
    """One more ln_remission study, inline in config.yaml (plus its study-table row)."""
    cfg = yaml.safe_load((cwd / "config.yaml").read_text())
    cfg.setdefault("extra_studies", []).append(
        {"study": "Benchmark2026", "outcome": "ln_remission", "events": 9, "total": 20, "status": "reported",
         "source": "benchmark (synthetic)"})
    (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200, allow_unicode=True))
    with open(cwd / cfg["studies"], "a", encoding="utf-8") as fh:
        fh.write("Benchmark2026,,Benchmark A,2026,synthetic,SLE,1 MIU qod,,20,,,,benchmark (synthetic),\n")
    return "ln_remission"


IMPORT_STEPS = (
    ("interpreter start", "pass"),
    ("+ Snakemake's script preamble (snakemake.script)", "import snakemake.script"),
    ("+ numpy, scipy.special", "import numpy, scipy.special"),
    ("+ the analysis (metapool.analysis, audit, reproduce)",
     "import metapool.analysis, metapool.audit, metapool.reproduce, metapool.jobs.analyse_outcome"),
    ("+ matplotlib and the figure modules (metapool.plots)", "import metapool.plots, metapool.plots.forest"),
)


def import_costs(repeat: int = 5) -> list:
    """CPU seconds of a fresh interpreter that runs the imports up to each step (median of ``repeat``)."""
    out, code = [], []
    for label, stmt in IMPORT_STEPS:
        code.append(stmt)
        src = f"import sys; sys.path.insert(0, {str(ROOT)!r}); " + "; ".join(code)
        times = []
        for _ in range(repeat):
            cpu0 = _children_cpu()
            subprocess.run([sys.executable, "-c", src], check=True)
            times.append(_children_cpu() - cpu0)
        out.append((label, statistics.median(times)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--outcomes", type=int, default=12)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results_workflow.md"))
    args = ap.parse_args(argv)
    res = {"cores": args.cores, "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = copy_workflow(Path(tmp) / "bundled")
        res["full"] = run(cwd, args.cores)
        res["bundled_jobs"] = jobs_of(cwd)
        res["noop"] = run(cwd, args.cores)
        res["added_to"] = add_study(cwd)
        res["one_study"] = run(cwd, args.cores)
        print(f"bundled: full {res['full']['wall']:.1f} s / {res['full']['cpu']:.1f} CPU-s; no-op "
              f"{res['noop']['wall']:.2f} s; one study {res['one_study']['wall']:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:      # Snakemake's own floor: a one-rule workflow, nothing to do
        empty = Path(tmp)
        (empty / "Snakefile").write_text('rule all:\n    input: "a.txt"\n\nrule a:\n    output: "a.txt"\n'
                                         '    params: x="1"\n    shell: "touch {output}"\n')
        run(empty, args.cores)
        res["empty_noop"] = min((run(empty, args.cores) for _ in range(3)), key=lambda r: r["wall"])
    with tempfile.TemporaryDirectory() as tmp:
        review = make_review(Path(tmp) / "synthetic", outcomes=args.outcomes)
        copy_workflow(review, with_data=False)
        res["synthetic"] = run(review, args.cores)
        res["synthetic_jobs"] = jobs_of(review)
        print(f"synthetic ({args.outcomes} outcomes): {res['synthetic']['wall']:.1f} s / "
              f"{res['synthetic']['cpu']:.1f} CPU-s", flush=True)
    res["imports"] = import_costs()
    res["load_end"] = os.getloadavg()
    text = markdown(res, args)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def _job_table(jobs) -> list:
    lines = ["| job | k | CPU-s (benchmark) | wall s | analysis s | tables s | figures s | max RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for j in sorted(jobs, key=lambda j: -j["cpu"]):
        lines.append(f"| {j['job']} | {j.get('k', '')} | {j['cpu']:.2f} | {j['wall']:.2f} | "
                     + " | ".join(f"{j[x]:.2f}" if x in j else "" for x in ("analysis", "tables", "figures"))
                     + f" | {j['rss_mb']:.0f} |")
    return lines


def markdown(res: dict, args) -> str:
    n = args.outcomes
    syn = res["synthetic"]
    syn_jobs = [j for j in res["synthetic_jobs"] if j["job"].startswith("analyse_outcome/")]
    per_outcome = statistics.mean(j["cpu"] for j in syn_jobs) if syn_jobs else float("nan")
    load = lambda x: ", ".join(f"{v:.2f}" for v in x)  # noqa: E731
    lines = [
        "# Workflow benchmark", "",
        f"`python benchmarks/bench_workflow.py --cores {args.cores} --outcomes {n}`; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {load(res['load_start'])} at the "
        f"start and {load(res['load_end'])} at the end.  CPU-s = user + sys of Snakemake and every job "
        "process; per-job CPU from Snakemake's `benchmark:` files.", "",
        "| run | wall s | CPU-s | target (issue 8, 2 cores) |", "|---|---:|---:|---|",
        f"| bundled review, full run | {res['full']['wall']:.1f} | {res['full']['cpu']:.1f} | ≤ 30 s, ≤ 40 CPU-s |",
        f"| bundled review, nothing to do | {res['noop']['wall']:.2f} | {res['noop']['cpu']:.2f} | < 1.5 s |",
        f"| for comparison: a one-rule workflow, nothing to do (Snakemake's own start-up; best of 3) | "
        f"{res['empty_noop']['wall']:.2f} | {res['empty_noop']['cpu']:.2f} | |",
        f"| after adding one study to `{res['added_to']}` | {res['one_study']['wall']:.1f} | "
        f"{res['one_study']['cpu']:.1f} | |",
        f"| synthetic review, {n} proportion outcomes (k = 5-20, every analysis and figure) | {syn['wall']:.1f} | "
        f"{syn['cpu']:.1f} | |",
        f"| synthetic review, per outcome job (mean) | | {per_outcome:.2f} | ≤ 5 CPU-s |", "",
        "## Cost of starting one job process", "",
        "CPU seconds of a fresh interpreter running the imports up to each step (median of 5); the last "
        "line is the fixed cost of every `analyse_outcome` job before it computes anything.", "",
        "| step | cumulative CPU-s |", "|---|---:|"]
    lines += [f"| {label} | {cpu:.2f} |" for label, cpu in res["imports"]]
    lines += ["", "## Where each job's time goes: synthetic review", "",
              "analysis / tables / figures: wall seconds the job logged for each part (after its imports).", ""]
    lines += _job_table(res["synthetic_jobs"])
    lines += ["", "## Where each job's time goes: bundled review", ""]
    lines += _job_table(res["bundled_jobs"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
