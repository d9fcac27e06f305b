"""Wall-clock time of the workflow on the bundled data: full run, no-op run, one added study.

    python benchmarks/bench_workflow.py [--cores 2] [--repeat 1] [--out benchmarks/results_workflow.md]

Copies Snakefile, workflow/, scripts/, config.yaml and data/ to a temporary directory (the
package itself is imported from the installed/checked-out ``metapool``), then times

* ``full``: ``snakemake --cores N`` from scratch (targets: < 30 s on a 2-core machine);
* ``noop``: the same command again, nothing to do (target: < 2 s);
* ``one_outcome``: after adding one inline study to the first outcome (only that outcome's
  job and the report run).

Prints one line per measurement and a JSON summary on the last line, and writes a Markdown
table to ``--out`` (default ``benchmarks/results_workflow.md``; ``--out ''`` prints only).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("Snakefile", "workflow", "scripts", "config.yaml", "data")


def copy_project(dest: Path) -> Path:
    for part in PARTS:
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / part)
    return dest


def run(cwd: Path, cores: int) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet", "all"],
                         cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"snakemake failed in {cwd}")
    return dt


def add_study(cwd: Path) -> str:
    """Add a copy of the first outcome's first row as a new inline study; return the outcome."""
    import pandas as pd

    cfg = yaml.safe_load((cwd / "config.yaml").read_text())
    snap_dir = cwd / "results" / "data"
    for outcome in cfg["outcomes"]:
        rows = json.loads((snap_dir / f"{outcome}.json").read_text())["rows"]
        if rows:
            row = {k: v for k, v in rows[0].items()
                   if v is not None and not pd.isna(v) and k not in ("kind", "table", "line")}
            studies_csv = cwd / cfg["studies"]
            studies = pd.read_csv(studies_csv, dtype=str, keep_default_na=False)
            new = studies[studies["study"] == row["study"]].assign(study="Benchmark_added_study")
            pd.concat([studies, new]).to_csv(studies_csv, index=False)
            row.update(study="Benchmark_added_study", status="reported", source="benchmark (synthetic)")
            cfg.setdefault("extra_studies", []).append(row)
            (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            return outcome
    raise SystemExit("no outcome rows found")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results_workflow.md"))
    args = ap.parse_args(argv)
    out = {"cores": args.cores, "full": [], "noop": [], "one_outcome": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cwd = copy_project(Path(tmp))
            out["full"].append(run(cwd, args.cores))
            out["noop"].append(run(cwd, args.cores))
            out["outcome"] = add_study(cwd)
            out["one_outcome"].append(run(cwd, args.cores))
    for key in ("full", "noop", "one_outcome"):
        print(f"{key:12s} " + "  ".join(f"{t:6.2f} s" for t in out[key]))
    print(json.dumps(out))
    if args.out:
        Path(args.out).write_text(markdown(out))


def markdown(out: dict) -> str:
    """The measurements as a Markdown page (best of the repeats, with the targets)."""
    import os
    import platform

    rows = [("full run from scratch", "full", "< 30 s"), ("nothing to do", "noop", "< 2 s"),
            (f"after adding one study to `{out.get('outcome', '?')}`", "one_outcome", "")]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = ["# Workflow benchmark", "",
             f"`python benchmarks/bench_workflow.py --cores {out['cores']}` on the bundled data; "
             f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average after the run "
             f"{load}. Wall-clock seconds, best of {len(out['full'])} repeat(s).", "",
             "| run | time (s) | target |", "|---|---:|---|"]
    lines += [f"| {label} | {min(out[key]):.2f} | {target} |" for label, key, target in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
