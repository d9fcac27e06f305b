"""Timing of the batched sensitivity analyses (GOSH, leave-one-out, influence).

usage: python benchmarks/bench_gosh.py [--repeat N] [--out benchmarks/results_gosh.md]

GOSH of k = 16 studies fits all 65,535 subsets in one call of ``metapool.models.fit_batch``;
leave-one-out and influence diagnostics at k = 1,000 fit 1,000 (1,001) models of 999 studies.
Simulated data (seeded): yi ~ N(0.3, 0.2 + vi), vi ~ U(0.01, 0.2).  Reports the median
wall-clock time over the repeats, and checks one result against a direct fit so that a fast
wrong answer cannot pass unnoticed.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metapool import sensitivity as sens  # noqa: E402
from metapool.models import fit  # noqa: E402


def _data(k, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.3, np.sqrt(0.2 + v))
    return y, v


def _time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results_gosh.md"))
    args = ap.parse_args(argv)

    rows = []
    y16, v16 = _data(16, 1)
    for method in ("FE", "DL", "REML"):
        t, g = _time(lambda: sens.gosh(y16, v16, method=method), args.repeat)
        full = g.incl.all(axis=1)
        check = fit(y16, v16, method=method)
        assert g.n_subsets == 65_535 and abs(g.estimate[full][0] - check.estimate) < 1e-8
        rows.append(("GOSH, k = 16, all subsets", method, f"{g.n_subsets:,}", t))
    y1k, v1k = _data(1000, 2)
    for method in ("FE", "DL", "REML"):
        t, out = _time(lambda: sens.leave_one_out(y1k, v1k, method=method), args.repeat)
        check = fit(y1k[1:], v1k[1:], method=method)
        assert abs(out.estimate.iloc[0] - check.estimate) < 1e-8
        rows.append(("leave-one-out, k = 1,000", method, "1,000", t))
    for method in ("DL", "REML"):
        t, _ = _time(lambda: sens.influence(y1k, v1k, method=method), args.repeat)
        rows.append(("influence diagnostics, k = 1,000", method, "1,001", t))
    t, _ = _time(lambda: sens.gosh(*_data(40, 3), method="DL", subsets=100_000, seed=1), args.repeat)
    rows.append(("GOSH, k = 40, random subsets", "DL", "100,000", t))

    head = "| analysis | method | models fitted | median time (s) |\n|---|---|---:|---:|\n"
    table = head + "".join(f"| {a} | {m} | {n} | {t:.3f} |\n" for a, m, n, t in rows)
    print(table)
    env = (f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
           f"{os.cpu_count()} CPUs (shared), median of {args.repeat} runs")
    text = ("# Batched sensitivity analyses: timings\n\n"
            "Produced by `python benchmarks/bench_gosh.py` (simulated, seeded data; each analysis is\n"
            "one vectorised `fit_batch` call, results checked against a direct `fit`).\n\n"
            f"{table}\n{env}.\n")
    out = Path(args.out)
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(f"written {out}")


if __name__ == "__main__":
    main()
