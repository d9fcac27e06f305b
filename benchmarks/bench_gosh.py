"""Timing of the batched sensitivity analyses (GOSH, leave-one-out, influence).

usage: python benchmarks/bench_gosh.py [--repeat N] [--src DIR] [--out benchmarks/results_gosh.md]

GOSH of k = 16 studies fits all 65,535 subsets in one call of ``metapool.models.fit_batch``
(a (65,535, 16) batch with a mask of which studies each subset has); leave-one-out and influence
diagnostics at k = 1,000 fit 1,000 (1,001) models of 999 studies.  Simulated data (seeded):
yi ~ N(0.3, 0.2 + vi), vi ~ U(0.01, 0.2).  Reports the median CPU seconds (this process) and
wall-clock seconds over the repeats (after one warm-up call), and checks one result against a
direct fit so that a fast wrong answer cannot pass unnoticed.  ``--src DIR`` imports metapool
from DIR (e.g. an export of an older commit) to compare versions on the same machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from timing import timed  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]


def _data(k, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.3, np.sqrt(0.2 + v))
    return y, v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--src", default=str(ROOT), help="directory to import metapool from")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results_gosh.md"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(args.src).resolve()))
    from metapool import sensitivity as sens
    from metapool.models import fit

    load0 = os.getloadavg()

    rows = []
    y16, v16 = _data(16, 1)
    for method in ("FE", "DL", "REML"):
        c, t, _, g = timed(lambda: sens.gosh(y16, v16, method=method), args.repeat, warmup=True)
        full = g.incl.all(axis=1)
        check = fit(y16, v16, method=method)
        assert g.n_subsets == 65_535 and abs(g.estimate[full][0] - check.estimate) < 1e-8
        rows.append(("GOSH, k = 16, all subsets", method, f"{g.n_subsets:,}", c, t))
    y1k, v1k = _data(1000, 2)
    for method in ("FE", "DL", "REML"):
        c, t, _, out = timed(lambda: sens.leave_one_out(y1k, v1k, method=method), args.repeat, warmup=True)
        check = fit(y1k[1:], v1k[1:], method=method)
        assert abs(out.estimate[0] - check.estimate) < 1e-8
        rows.append(("leave-one-out, k = 1,000", method, "1,000", c, t))
    for method in ("DL", "REML"):
        c, t, _, _ = timed(lambda: sens.influence(y1k, v1k, method=method), args.repeat, warmup=True)
        rows.append(("influence diagnostics, k = 1,000", method, "1,001", c, t))
    c, t, _, _ = timed(lambda: sens.gosh(*_data(40, 3), method="DL", subsets=100_000, seed=1), args.repeat, warmup=True)
    rows.append(("GOSH, k = 40, random subsets", "DL", "100,000", c, t))

    head = ("| analysis | method | models fitted | median CPU (s) | median wall (s) |\n"
            "|---|---|---:|---:|---:|\n")
    table = head + "".join(f"| {a} | {m} | {n} | {c:.3f} | {t:.3f} |\n" for a, m, n, c, t in rows)
    print(table)
    load1 = os.getloadavg()
    import scipy

    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    env = (f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, {cpu}, "
           f"{os.cpu_count()} CPUs (shared); median of {args.repeat} runs after a warm-up run; load average "
           f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end (other processes inflate wall times); "
           f"{time.strftime('%Y-%m-%d')}")
    text = ("# Batched sensitivity analyses: timings\n\n"
            "Produced by `python benchmarks/bench_gosh.py` (simulated, seeded data; each analysis is\n"
            "one vectorised `fit_batch` call, results checked against a direct `fit`). CPU = CPU seconds\n"
            "of the process, wall = elapsed seconds.\n\n"
            f"{table}\n{env}.\n")
    out = Path(args.out)
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(f"written {out}")


if __name__ == "__main__":
    main()
