"""Speed and memory of the statistical engine, side by side with PyMARE, statsmodels and R metafor.

    python benchmarks/bench_engine.py [--quick] [--no-r] [--repeat N] [--src DIR] [--out FILE]

Measures (CPU seconds of this process and wall-clock seconds, median of ``--repeat`` calls;
the machine's other load shows up in the wall times, so both are reported):

1. one large meta-analysis: ``models.fit(method="REML")`` (estimate, CIs, prediction interval,
   Q-profile CI of tau², the check for a higher likelihood maximum, percentage weights and
   study labels) and ``models.fit_batch`` with B = 1 for k = 10,000 / 100,000 / 1,000,000, the
   ratio fit / fit_batch, and the peak memory of each call (a fresh subprocess per size:
   peak RSS (VmHWM) before and after the call, and the ``tracemalloc`` peak of the call);
2. many small meta-analyses: 10,000 fits of k = 10 with ``fit_batch`` (REML, DL, PM, FE) and a
   Python loop of ``fit`` (timed on a subset, scaled; marked);
3. PyMARE (``pip install pymare``; ``pip install -e ".[bench]"``): its batched
   ``DerSimonianLaird`` and ``VarianceBasedLikelihoodEstimator(method="REML")`` against
   ``fit_batch`` on the same 10,000 x 10 data, computing the same outputs (estimate, standard
   error, tau²; PyMARE with ``small_sample_correction="wald"``, i.e. the z-test standard error
   that ``fit_batch(test="z")`` gives);
4. statsmodels ``combine_effects`` (DL, PM) and R metafor ``rma`` (REML; timed inside R with
   ``system.time``) on the same data, with agreement checks.

``--src DIR`` imports ``metapool`` from DIR instead of this checkout (e.g. an export of an older
commit, to measure before/after on the same machine). Everything printed is also written to
``--out`` (default benchmarks/results_engine.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
from timing import timed  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]

SEED = 20240601
AGREE_REL = 1e-6   # relative agreement required of estimates and tau² between implementations
#: statsmodels' Paule-Mandel (``iterated``) runs with its defaults (atol=1e-5, maxiter=50): with a
#: tighter atol its iteration often fails and silently returns tau2 = 0 (counted in the checks).
SM_TOL = 1e-4      # agreement expected with statsmodels PM given its atol=1e-5


def simulate(k: int, b: int = 1, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """B meta-analyses of k studies: true effect 0.3, tau² 0.09, vi ~ U(0.01, 0.2)."""
    rng = np.random.default_rng(seed + 7919 * k + b)
    vi = rng.uniform(0.01, 0.2, (b, k))
    yi = 0.3 + rng.normal(0, 0.3, (b, k)) + rng.normal(0, np.sqrt(vi))
    return yi, vi


def rel_diff(a, b) -> float:
    """Max relative difference of a from b (absolute where |b| < 1e-3, e.g. tau² near 0)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3)))


def agree(*diffs: float, tol: float = AGREE_REL) -> str:
    d = max(diffs)
    return f"{'yes' if d < tol else 'NO'} ({d:.1e})"


def fmt_s(x: float) -> str:
    if not np.isfinite(x):
        return "-"
    return f"{x:.4f}" if x < 10 else f"{x:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if np.isfinite(a) and np.isfinite(b) and b > 0 else "-"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- memory
MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    def peak_kb():  # VmHWM: peak RSS of this program (ru_maxrss would include a forked parent's)
        try:
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    from metapool.models import fit, fit_batch
    k, what = int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(int(sys.argv[4]) + 7919 * k + 1)
    vi = rng.uniform(0.01, 0.2, (1, k))
    yi = 0.3 + rng.normal(0, 0.3, (1, k)) + rng.normal(0, np.sqrt(vi))
    call = (lambda: fit(yi[0], vi[0], method="REML")) if what == "fit" else \\
           (lambda: fit_batch(yi, vi, method="REML"))
    fit(yi[0, :50], vi[0, :50]); fit_batch(yi[:, :50], vi[:, :50])  # import-time work done
    before = peak_kb()
    r = call()
    after = peak_kb()
    del r
    tracemalloc.start()
    r = call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"before_kb": before, "after_kb": after, "traced_peak": peak}))
""")


def memory(src: Path, k: int, what: str) -> dict:
    """Peak memory of one call in a fresh interpreter (kB: VmHWM on Linux, else ru_maxrss)."""
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(src), str(k), what, str(SEED)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mb(kb: float) -> str:
    return f"{kb / 1024:.0f}"


# ----------------------------------------------------------------------------- R metafor
R_SCRIPT = r"""
suppressMessages(library(metafor))
ctrl <- list(threshold = 1e-10, maxiter = 1000)
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
out <- NULL
for (f in list.files(dir, pattern = "^big_[0-9]+[.]csv$")) {
  d <- read.csv(file.path(dir, f))
  tm <- system.time(r <- rma(d$yi, d$vi, method = "REML", control = ctrl))[["elapsed"]]
  out <- rbind(out, data.frame(what = "big", k = nrow(d), seconds = tm,
                               estimate = as.numeric(r$beta), tau2 = r$tau2))
}
s <- read.csv(file.path(dir, "small.csv"))
ids <- unique(s$id)
est <- tau <- numeric(length(ids))
tm <- system.time(for (j in seq_along(ids)) {
  r <- rma(s$yi[s$id == ids[j]], s$vi[s$id == ids[j]], method = "REML", control = ctrl)
  est[j] <- as.numeric(r$beta); tau[j] <- r$tau2
})[["elapsed"]]
out <- rbind(out, data.frame(what = paste0("small_", ids), k = 10, seconds = tm, estimate = est, tau2 = tau))
write.csv(out, file.path(dir, "metafor.csv"), row.names = FALSE)
cat(as.character(packageVersion("metafor")), "\n")
"""


def run_metafor(big_ks, small_b, workdir: Path) -> dict | None:
    """Time metafor in R on the same simulated data; None when R/metafor is unavailable."""
    import pandas as pd

    if shutil.which("Rscript") is None:
        return None
    for k in big_ks:
        y, v = simulate(k)
        pd.DataFrame({"yi": y[0], "vi": v[0]}).to_csv(workdir / f"big_{k}.csv", index=False)
    Y, V = simulate(10, 10_000)
    pd.DataFrame({"id": np.repeat(np.arange(small_b), 10), "yi": Y[:small_b].ravel(),
                  "vi": V[:small_b].ravel()}).to_csv(workdir / "small.csv", index=False)
    script = workdir / "bench.R"
    script.write_text(R_SCRIPT)
    proc = subprocess.run(["Rscript", str(script), str(workdir)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"(R metafor not run: {proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    res = pd.read_csv(workdir / "metafor.csv")
    return {"version": proc.stdout.strip(), "big": res[res["what"] == "big"],
            "small": res[res["what"].str.startswith("small_")]}


# ----------------------------------------------------------------------------- benchmark parts
def large(ks, repeat, src, metafor) -> tuple[str, list[str]]:
    """Table 1: one meta-analysis of k studies (REML): time, memory, fit / fit_batch."""
    from metapool.models import fit, fit_batch

    rows, checks = [], []
    mem = {k: (memory(src, k, "fit"), memory(src, k, "batch")) for k in ks}  # before this process grows
    for k in ks:
        y, v = simulate(k)
        c_fit, w_fit, _, res = timed(lambda: fit(y[0], v[0], method="REML"), repeat)
        c_b1, w_b1, _, b1 = timed(lambda: fit_batch(y, v, method="REML"), repeat)
        m_fit, m_b1 = mem[k]
        d_b1 = max(rel_diff(b1.estimate[0], res.estimate), rel_diff(b1.tau2[0], res.tau2))
        rows.append([f"{k:,}", fmt_s(c_fit), fmt_s(w_fit), fmt_s(c_b1), fmt_s(w_b1),
                     ratio(c_fit, c_b1), ratio(w_fit, w_b1),
                     mb(m_fit["after_kb"]), mb(m_fit["after_kb"] - m_fit["before_kb"]),
                     mb(m_fit["traced_peak"] / 1024),
                     mb(m_b1["after_kb"]), mb(m_b1["after_kb"] - m_b1["before_kb"]),
                     mb(m_b1["traced_peak"] / 1024), f"{res.estimate:.6f}", f"{res.tau2:.6f}"])
        checks.append(f"k = {k:,}: fit_batch(B=1) agrees with fit: {agree(d_b1)}")
        if k == 100_000:
            checks.append(f"one REML fit at k = 100,000: {c_fit:.3f} s CPU, {w_fit:.3f} s wall "
                          f"(median of {repeat})")
        if k == max(ks):
            checks.append(f"k = {k:,}: fit / fit_batch = {ratio(c_fit, c_b1)} (CPU), {ratio(w_fit, w_b1)} "
                          f"(wall); peak RSS of fit {mb(m_fit['after_kb'])} MB")
    big = max(ks)
    y, v = simulate(big)
    labels = tuple(map(str, range(1, big + 1)))
    c_lab, w_lab, _, _ = timed(lambda: fit(y[0], v[0], method="REML", study=labels), repeat)
    note = (f"At k = {big:,}, `fit` with the study labels passed in (so that `fit` does not make "
            f"the labels '1'..'{big}') takes {fmt_s(c_lab)} s CPU, {fmt_s(w_lab)} s wall: the rest of "
            "the difference is making one Python string per study (and `MetaResult` converting them "
            "again), which `fit_batch` does not do.")
    header = ["k", "fit CPU (s)", "fit wall (s)", "fit_batch CPU (s)", "fit_batch wall (s)",
              "fit / fit_batch CPU", "fit / fit_batch wall", "fit peak RSS (MB)", "fit RSS increase (MB)",
              "fit traced peak (MB)", "fit_batch peak RSS (MB)", "fit_batch RSS increase (MB)",
              "fit_batch traced peak (MB)", "estimate", "tau2"]
    text = md_table(header, rows) + "\n\n" + note
    if metafor is not None:
        mrows = []
        for r in metafor["big"].sort_values("k").itertuples():
            k = int(r.k)
            yk, vk = simulate(k)
            c, w, _, res = timed(lambda: fit(yk[0], vk[0], method="REML"), repeat)
            mrows.append([f"{k:,}", fmt_s(float(r.seconds)), fmt_s(c), fmt_s(w), ratio(float(r.seconds), w),
                          agree(rel_diff(res.estimate, r.estimate), rel_diff(res.tau2, r.tau2))])
        text += ("\n\nR metafor `rma(method = \"REML\")` (k x k matrices, so only up to k = 2,000; timed "
                 "inside R with `system.time`) on the same data:\n\n"
                 + md_table(["k", "metafor (s)", "fit CPU (s)", "fit wall (s)", "metafor / fit wall",
                             "agrees (max rel diff)"], mrows))
    return text, checks


def small(b, loop_n, repeat, metafor) -> tuple[str, list[str]]:
    """Table 2: B fits of k = 10."""
    from metapool.models import fit, fit_batch

    Y, V = simulate(10, b)
    rows, checks = [], []
    res = {}
    for method in ("REML", "DL", "PM", "FE"):
        c, w, _, bf = timed(lambda: fit_batch(Y, V, method=method), repeat)
        res[method] = (c, w, bf)
        rows.append([f"fit_batch {method} ({b:,} at once)", fmt_s(c), fmt_s(w), f"{1e3 * c / b:.4f}", "-"])
    n = min(loop_n, b)
    c0, w0 = time.process_time(), time.perf_counter()
    loop = [fit(Y[i], V[i], method="REML") for i in range(n)]
    c_loop, w_loop = (time.process_time() - c0) * b / n, (time.perf_counter() - w0) * b / n
    bf = res["REML"][2]
    d_loop = max(rel_diff([r.estimate for r in loop], bf.estimate[:n]),
                 rel_diff([r.tau2 for r in loop], bf.tau2[:n]))
    rows.append([f"loop of fit REML (timed {n:,}, x{b / n:g})", fmt_s(c_loop), fmt_s(w_loop),
                 f"{1e3 * c_loop / b:.3f}", f"fit_batch: {agree(d_loop)}"])
    checks.append(f"{b:,} REML fits of k = 10 with fit_batch: {res['REML'][0]:.3f} s CPU, "
                  f"{res['REML'][1]:.3f} s wall; a loop of fit: {1e3 * c_loop / b:.3f} ms CPU per fit")
    if metafor is not None:
        s = metafor["small"]
        m = len(s)
        t_r = float(s["seconds"].iloc[0]) * b / m
        d = max(rel_diff(bf.estimate[:m], s["estimate"]), rel_diff(bf.tau2[:m], s["tau2"]))
        rows.append([f"metafor rma REML loop in R (timed {m:,}, x{b / m:g}; wall)", "-", fmt_s(t_r),
                     f"{1e3 * t_r / b:.3f}", f"fit_batch: {agree(d)}"])
    header = ["implementation", f"CPU for {b:,} fits (s)", "wall (s)", "CPU per fit (ms)",
              "agrees (max rel diff of estimate, tau2)"]
    return md_table(header, rows), checks


def versus_pymare(b, repeat) -> tuple[str, list[str]]:
    """Table 3: PyMARE's batched estimators against fit_batch on the same data and outputs."""
    try:
        import pymare
        from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator
    except ImportError:
        return "PyMARE is not installed (`pip install pymare`, or `pip install -e \".[bench]\"`).", []
    from metapool.models import fit_batch

    Y, V = simulate(10, b, seed=SEED + 1)
    Yt, Vt = np.ascontiguousarray(Y.T), np.ascontiguousarray(V.T)  # PyMARE: (studies, datasets)
    X = np.ones((Y.shape[1], 1))

    def ours(method):
        r = fit_batch(Y, V, method=method, test="z")
        return r.estimate, r.se, r.tau2

    def theirs(est):
        p = est.fit(Yt, Vt, X).params_
        return p["fe_params"][0], np.sqrt(p["inv_cov"][0, 0]), np.asarray(p["tau2"]).ravel()

    rows, checks = [], []
    pairs = (("DL", lambda: DerSimonianLaird(small_sample_correction="wald")),
             ("REML", lambda: VarianceBasedLikelihoodEstimator(method="REML", small_sample_correction="wald")))
    for method, make in pairs:
        c_o, w_o, _, o = timed(lambda: ours(method), repeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c_p, w_p, _, p = timed(lambda: theirs(make()), repeat)
        d = [rel_diff(p[i], o[i]) for i in range(3)]
        rows.append([method, fmt_s(1e3 * c_o), fmt_s(1e3 * w_o), fmt_s(1e3 * c_p), fmt_s(1e3 * w_p),
                     ratio(c_p, c_o), ratio(w_p, w_o), f"{d[0]:.1e}", f"{d[1]:.1e}", f"{d[2]:.1e}"])
        checks.append(f"{method}, {b:,} meta-analyses of k = 10: PyMARE / fit_batch = {ratio(c_p, c_o)} (CPU), "
                      f"{ratio(w_p, w_o)} (wall); > 1x means fit_batch is faster")
    header = ["method", "fit_batch CPU (ms)", "fit_batch wall (ms)", "PyMARE CPU (ms)", "PyMARE wall (ms)",
              "PyMARE / fit_batch CPU", "PyMARE / fit_batch wall", "rel diff estimate", "rel diff SE",
              "rel diff tau2"]
    note = (f"PyMARE {pymare.__version__}: `DerSimonianLaird` and `VarianceBasedLikelihoodEstimator("
            "method=\"REML\")`, both with `small_sample_correction=\"wald\"`, `fit(y, v, X)` with y, v of "
            "shape (10, B) (its layout: studies x data sets; C-contiguous copies made before timing) and "
            "X a column of ones; timed: the fit and `sqrt` of its covariance (estimate, SE, tau²). "
            "metapool: `fit_batch(Y, V, method=..., test=\"z\")` on (B, 10) arrays, reading `estimate`, "
            "`se`, `tau2` (it also computes the CI, prediction interval, Q, I², H²; p-values are computed "
            "on first access, not here). PyMARE's REML is a bounded scalar minimisation with its default "
            "tolerance, hence the larger differences; metapool's REML is metafor's Fisher scoring to 1e-12.")
    return md_table(header, rows) + "\n\n" + note, checks


def versus_statsmodels(ks, repeat) -> tuple[str, list[str]]:
    """Table 4: one large meta-analysis, DL and PM, metapool vs statsmodels."""
    from statsmodels.stats.meta_analysis import combine_effects

    from metapool.models import fit, fit_batch

    rows = []
    for method, sm_method in (("DL", "chi2"), ("PM", "iterated")):
        for k in ks:
            y, v = simulate(k)
            c_mp, w_mp, _, res = timed(lambda: fit(y[0], v[0], method=method), repeat)
            c_b1, w_b1, _, _ = timed(lambda: fit_batch(y, v, method=method), repeat)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                c_sm, w_sm, _, sm = timed(lambda: combine_effects(y[0], v[0], method_re=sm_method), repeat)
            rows.append([method, f"{k:,}", fmt_s(c_mp), fmt_s(c_b1), fmt_s(c_sm), ratio(c_sm, c_mp),
                         ratio(c_sm, c_b1), f"{rel_diff(res.estimate, sm.mean_effect_re):.1e}",
                         f"{rel_diff(res.tau2, sm.tau2):.1e}"])
    header = ["method", "k", "fit CPU (s)", "fit_batch B=1 CPU (s)", "statsmodels CPU (s)", "statsmodels / fit",
              "statsmodels / fit_batch", "rel diff estimate", "rel diff tau2"]
    note = ("statsmodels `combine_effects` has DL (`chi2`) and PM (`iterated`, default atol=1e-5) "
            "but no REML; `fit` also computes the Q-profile CI of tau² and the percentage weights, "
            "which statsmodels does not.")
    return md_table(header, rows) + "\n\n" + note, []


def environment(metafor) -> str:
    import numpy
    import scipy

    r = f"R metafor {metafor['version']}" if metafor else "R metafor: not run"
    try:
        import statsmodels
        sm = f"statsmodels {statsmodels.__version__}"
    except ImportError:
        sm = "statsmodels: not installed"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"Python {platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}, "
            f"{sm}, {r}; {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"{time.strftime('%Y-%m-%d')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-r", action="store_true", help="skip the R metafor timings")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test, seconds)")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per measurement (median reported)")
    ap.add_argument("--src", default=str(ROOT), help="directory to import metapool from (default: this checkout)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results_engine.md"),
                    help="Markdown file for the tables ('' to skip writing)")
    args = ap.parse_args(argv)
    src = Path(args.src).resolve()
    sys.path.insert(0, str(src))

    if args.quick:
        ks, r_ks, b, loop_n, r_small, sm_ks = (10_000, 100_000), (200, 500), 2_000, 100, 50, (10_000,)
    else:
        ks, r_ks, b, loop_n, r_small, sm_ks = ((10_000, 100_000, 1_000_000), (500, 1_000, 2_000), 10_000, 500,
                                               200, (10_000, 100_000))
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    metafor = None
    if not args.no_r:
        print("running R metafor (system.time inside R) ...", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            metafor = run_metafor(r_ks, r_small, Path(tmp))
    print("timing metapool, PyMARE and statsmodels ...", file=sys.stderr)
    t1, c1 = large(ks, args.repeat, src, metafor)
    t2, c2 = small(b, loop_n, args.repeat, metafor)
    t3, c3 = versus_pymare(b, args.repeat)
    t4, c4 = versus_statsmodels(sm_ks, args.repeat)
    total = time.perf_counter() - t_start
    load1 = os.getloadavg()
    import metapool

    cmd = "python benchmarks/bench_engine.py" + (" --quick" if args.quick else "") + \
        (" --no-r" if args.no_r else "") + (f" --repeat {args.repeat}" if args.repeat != 5 else "")
    text = "\n".join([
        "# Engine benchmark", "",
        f"`{cmd}` - {environment(metafor)}; metapool imported from "
        f"`{Path(metapool.__file__).parent.relative_to(src.parent) if src != ROOT else 'metapool/'}`; "
        f"total {total:.0f} s; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end "
        "(other processes on the machine inflate the wall times).", "",
        f"CPU = CPU seconds of this process (user + system), wall = elapsed seconds; medians of "
        f"{args.repeat} calls after a warm-up call. `fit` is the full single fit (estimate, CIs, "
        "prediction interval, Q-profile CI of tau², check for a higher likelihood maximum, percentage "
        "weights, study labels); `fit_batch` fits many meta-analyses in one vectorised call and returns "
        "arrays without the tau² CI. Ratios > 1x mean the second-named implementation is slower. "
        f"'Agrees' = max relative difference of estimate and tau² < {AGREE_REL:g} (absolute where the "
        "value is below 1e-3). Memory: a fresh interpreter per size and call; 'peak RSS' is "
        "the peak resident memory (VmHWM) after the call (the interpreter, numpy, scipy, pandas and the data included), "
        "'RSS increase' its growth during the call, 'traced peak' the `tracemalloc` peak of the call "
        "(numpy arrays included).", "",
        "## 1. One meta-analysis of k studies (REML)", "", t1, "",
        "## 2. Many small meta-analyses (k = 10)", "", t2, "",
        "## 3. PyMARE's batched estimators (10,000 meta-analyses of k = 10)" if not args.quick else
        f"## 3. PyMARE's batched estimators ({b:,} meta-analyses of k = 10)", "", t3, "",
        "## 4. statsmodels `combine_effects` on the same data (DL, PM)", "", t4, "",
        "## Checks", "", *[f"- {c}" for c in c1 + c2 + c3 + c4], "",
    ])
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"(written to {args.out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
