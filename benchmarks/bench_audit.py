"""Timing of `metapool audit` (model search, k = 16 subset search, missing-study search).

usage: python benchmarks/bench_audit.py [--repeat N] [--out benchmarks/results_audit.md]

* all models on one table of k = 16 proportions;
* the subset search over the 65,535 subsets of that table (tests/audit_cases.json case
  ``prop16_sub_PLO_REML_z``: R metafor's PLO REML z on 7 of the 16 studies, printed to 3
  decimals), with the pruning bound and, once, without it (exhaustive);
* the missing-study search of EVIDENCE.md §4 note 4 (ISR 33.1 % with He 2020 9/29 and
  He 2016 5/40; remainders up to n = 1000);
* the continuous missing-study search (case ``missing_SMCR_FE_z``: three pre/post studies plus a
  hidden fourth, metafor SMCR FE; the hidden row must lie in the region found).

Each run checks its answer (the generating subset is found; the crude-proportion solutions equal
the closed form), so a fast wrong answer cannot pass.  Reports the median wall-clock and CPU time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
from timing import timed  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metapool import audit as audit_mod  # noqa: E402
from metapool.audit import audit  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results_audit.md"))
    args = ap.parse_args(argv)

    cases = {c["case"]: c for c in json.loads((ROOT / "tests" / "audit_cases.json").read_text())["cases"]}
    case = cases["prop16_sub_PLO_REML_z"]
    table = {k: [r[k] for r in case["table"]] for k in ("study", "events", "total")}
    pr = case["printed"]["3"]
    printed = (pr["estimate"], (pr["ci_lb"], pr["ci_ub"]))
    pooled = [case["table"][i - 1]["study"] for i in case["rows"]]

    def found(res):
        return any(e["measure"] == "PLO" and e["method"] == "REML" and e["test"] == "z" and e["studies"] == pooled
                   for e in res.reproducing)

    rows = []
    c, w, _, res = timed(lambda: audit(table, *printed), args.repeat, warmup=False)
    rows.append(("all models, one table (k = 16, incl. GLMM)", f"{res.evaluated:,}", "0", w, c))
    c, w, _, res = timed(lambda: audit(table, *printed, subsets=True, glmm=False, max_list=10 ** 6), args.repeat, warmup=False)
    assert found(res), "k = 16 subset search did not find the generating subset"
    rows.append(("subsets, k = 16 (65,535 subsets), pruning bound", f"{res.evaluated:,}", f"{res.pruned:,}", w, c))
    n_rep = res.n_reproducing
    saved = audit_mod._PRUNE_MIN_ROWS
    audit_mod._PRUNE_MIN_ROWS = 10 ** 9
    try:
        c, w, _, full = timed(lambda: audit(table, *printed, subsets=True, glmm=False, max_list=10 ** 6), 1, warmup=False)
    finally:
        audit_mod._PRUNE_MIN_ROWS = saved
    assert found(full) and full.n_reproducing == n_rep, "pruned and exhaustive searches disagree"
    rows.append(("subsets, k = 16, exhaustive (no bound; 1 run)", f"{full.evaluated:,}", "0", w, c))

    isr = {"study": ["He2020", "He2016"], "events": [9, 5], "total": [29, 40]}
    c, w, _, res = timed(lambda: audit(isr, "0.331", missing=True, max_n=1000, missing_detail=None), args.repeat, warmup=False)
    crude = [m for m in res.missing["models"] if (m["measure"], m["method"], m["vtype"]) == ("PR", "FE", "AV")
             and "none" in [m["cc"]] + m["cc_equivalent"]][0]
    got = {(n, x) for n, lo, hi in crude["by_total"] for x in range(lo, hi + 1)}
    want = {(n, x) for n in range(1, 1001) for x in range(n + 1) if abs((14 + x) / (69 + n) - 0.331) <= 0.0005}
    assert got == want, "crude-proportion solutions differ from the closed form"
    rows.append(("missing study, ISR 33.1 %, n <= 1000 (500,500 remainders)", f"{res.missing['evaluated']:,}",
                 f"{res.missing['pruned']:,}", w, c))

    mc = cases["missing_SMCR_FE_z"]
    mpr = mc["printed"]["3"]
    mtab = {k: [r[k] for r in mc["table"]] for k in mc["table"][0]}
    c, w, _, res = timed(lambda: audit(mtab, mpr["estimate"], (mpr["ci_lb"], mpr["ci_ub"]), missing=True,
                                    missing_detail=None), args.repeat, warmup=False)
    m = [m for m in res.missing["models"] if (m["measure"], m["method"], m["test"]) == ("SMCR", "FE", "z")][0]
    assert m["n_equivalent_min"] - 1 <= mc["hidden"]["n"] <= m["n_equivalent_max"] + 1, m["summary"]
    rows.append(("missing study, pre/post (SMCR, SMCC, MC), region in (effect, SE)",
                 f"{res.missing['evaluated']:,}", f"{res.missing['pruned']:,}", w, c))

    head = ("| search | model x configuration combinations evaluated | excluded by the bound | "
            "median wall (s) | median CPU (s) |\n|---|---:|---:|---:|---:|\n")
    tab = head + "".join(f"| {a} | {e} | {p} | {w:.2f} | {c:.2f} |\n" for a, e, p, w, c in rows)
    print(tab)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    env = (f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
           f"{os.cpu_count()} CPUs (shared; load average {load:.1f} at the end), median of {args.repeat} runs")
    text = ("# metapool audit: timings\n\n"
            "Produced by `python benchmarks/bench_audit.py` (the k = 16 table and printed numbers are the\n"
            "`prop16_sub_PLO_REML_z` case of tests/audit_cases.json, made with R metafor; every run checks\n"
            "its answer).  Wall-clock time depends on the machine's load; CPU time less so.\n\n"
            f"{tab}\n{env}.\n")
    if args.out:
        out = Path(args.out)
        tmp = out.with_suffix(".md.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
        print(f"written {out}")


if __name__ == "__main__":
    main()
