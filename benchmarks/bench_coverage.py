"""Coverage of confidence and prediction intervals in simulated random-effects meta-analyses.

Set-up (after IntHout, Ioannidis & Borm 2014, BMC Med Res Methodol 14:25, and Partlett & Riley
2017, Stat Med 36:301):

* true mean effect ``mu = 0``; study effects ``theta_i ~ N(mu, tau²)``;
  ``y_i ~ N(theta_i, v_i)`` with the within-study variance ``v_i`` known;
* ``v_i = 4 / n_i``: a standardised mean difference from two arms of ``n_i / 2`` participants
  with unit SD; ``n_i`` drawn uniformly from 50..150 (``varied`` sizes) or, in IntHout's
  unequal-size scenario, the same but a quarter of the trials (at least one) 10 times larger
  (``25% large``);
* ``k`` = 3, 5, 10, 20 studies and ``tau²`` = 0, 0.01, 0.05, 0.1, 0.2 (for a trial of
  n = 100, v = 0.04, that is I² = 0, 20, 56, 71 and 83 %).

For each cell ``reps`` meta-analyses are fitted in one vectorised :func:`metapool.models.fit_batch`
call per method.  Reported:

* CI coverage of ``mu`` for FE-z, DL-z, REML-z, DL-HKSJ and REML-HKSJ (``test="knha"``);
* coverage of the 95% prediction interval for the true effect of a new study,
  ``theta_new ~ N(mu, tau²)``: metafor's convention (REML, normal quantile, and REML-HKSJ,
  t(k-1)) and Higgins, Thompson & Spiegelhalter (2009) (REML, t(k-2)).  For tau² > 0 the
  coverage of an interval is computed exactly as ``P(lb <= theta_new <= ub)`` and averaged
  (as Partlett & Riley 2017); for tau² = 0 it is whether the interval contains mu.

Run::

    python benchmarks/bench_coverage.py                 # 20,000 replicates per cell (~40 s)
    python benchmarks/bench_coverage.py --reps 2000     # quick look
    python benchmarks/bench_coverage.py --out benchmarks/results_coverage.md

Seeded: the same arguments give the same table.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

try:
    from metapool.models import fit_batch
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from metapool.models import fit_batch

KS = (3, 5, 10, 20)
TAU2S = (0.0, 0.01, 0.05, 0.1, 0.2)
SIZES = ("varied", "25% large")
CI_METHODS = {  # label: (tau2 method, test)
    "FE-z": ("FE", "z"),
    "DL-z": ("DL", "z"),
    "REML-z": ("REML", "z"),
    "DL-HKSJ": ("DL", "knha"),
    "HKSJ": ("REML", "knha"),
}
PI_METHODS = {  # label: (tau2 method, test, pi_method)
    "PI REML-z (metafor)": ("REML", "z", "metafor"),
    "PI HKSJ t(k-1) (metafor)": ("REML", "knha", "metafor"),
    "PI REML t(k-2) (Higgins)": ("REML", "z", "higgins"),
}
LEVEL = 0.95
TYPICAL_V = 4 / 100  # v of a trial with n = 100, used to express tau² as I²


def simulate(k, tau2, reps, rng, sizes="varied", mu=0.0):
    """Draw ``reps`` meta-analyses of ``k`` studies: arrays Y, V of shape (reps, k)."""
    n = rng.integers(50, 151, size=(reps, k)).astype(float)
    if sizes == "25% large":
        n_large = max(1, k // 4)
        n[:, :n_large] *= 10
    elif sizes != "varied":
        raise ValueError(f"sizes must be one of {SIZES}, got {sizes!r}")
    V = 4.0 / n
    theta = mu + np.sqrt(tau2) * rng.standard_normal((reps, k))
    Y = theta + np.sqrt(V) * rng.standard_normal((reps, k))
    return Y, V


def ci_coverage(Y, V, method, test, mu=0.0, level=LEVEL):
    """Share of the fits whose CI for the mean contains ``mu``."""
    f = fit_batch(Y, V, method=method, test=test, level=level)
    return float(np.mean((f.ci_lb <= mu) & (mu <= f.ci_ub)))


def pi_coverage(Y, V, method, test, pi_method, tau2, mu=0.0, level=LEVEL):
    """Mean probability that the prediction interval contains a new study's true effect."""
    f = fit_batch(Y, V, method=method, test=test, level=level, pi_method=pi_method)
    lb, ub = f.pi_lb, f.pi_ub
    if tau2 == 0:
        p = (lb <= mu) & (mu <= ub)
    else:
        sd = np.sqrt(tau2)
        p = stats.norm.cdf((ub - mu) / sd) - stats.norm.cdf((lb - mu) / sd)
    return float(np.mean(np.where(np.isnan(lb), 0.0, p)))


def run(reps=20_000, seed=20140218, ks=KS, tau2s=TAU2S, sizes=SIZES):
    """All cells; returns a list of dict rows (one per sizes x k x tau²)."""
    rows = []
    for s_i, size in enumerate(sizes):
        for k in ks:
            for tau2 in tau2s:
                rng = np.random.default_rng([seed, s_i, k, int(round(tau2 * 1e6))])
                Y, V = simulate(k, tau2, reps, rng, size)
                row = {"sizes": size, "k": k, "tau2": tau2,
                       "I2": 100 * tau2 / (tau2 + TYPICAL_V)}
                for label, (method, test) in CI_METHODS.items():
                    row[label] = ci_coverage(Y, V, method, test)
                for label, (method, test, pim) in PI_METHODS.items():
                    row[label] = pi_coverage(Y, V, method, test, pim, tau2)
                rows.append(row)
    return rows


def _table(rows, columns, size):
    head = "| k | tau² | I² (%) | " + " | ".join(columns) + " |"
    sep = "|" + "---|" * (3 + len(columns))
    lines = [head, sep]
    for r in rows:
        if r["sizes"] != size:
            continue
        cells = " | ".join(f"{100 * r[c]:.1f}" for c in columns)
        lines.append(f"| {r['k']} | {r['tau2']:g} | {r['I2']:.0f} | {cells} |")
    return "\n".join(lines)


def _span(rows, col, **where):
    vals = [100 * r[col] for r in rows
            if all((r[key] in v) if isinstance(v, tuple) else r[key] == v for key, v in where.items())]
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "n/a"


def literature(rows):
    """Comparison with the literature; the numbers are read from ``rows``."""
    het = tuple(t for t in TAU2S if t > 0)
    return "\n".join([
        "## Comparison with the literature", "",
        "* **DL-z under-covers with few studies and heterogeneity** (IntHout, Ioannidis & Borm 2014, "
        "BMC Med Res Methodol 14:25: DL error rates up to over 30% in their most unequal scenarios, "
        "HKSJ at most double the nominal 5%). Here, k = 3-5 with tau² > 0: DL-z coverage "
        f"{_span(rows, 'DL-z', k=(3, 5), tau2=het, sizes='varied')}% (similar sizes) and "
        f"{_span(rows, 'DL-z', k=(3, 5), tau2=het, sizes='25% large')}% (25% of trials 10x larger); "
        "REML-z is no better "
        f"({_span(rows, 'REML-z', k=(3, 5), tau2=het, sizes='25% large')}%). "
        "Under-coverage shrinks as k grows "
        f"(k = 20: {_span(rows, 'DL-z', k=20, tau2=het)}%).",
        "* **HKSJ is close to nominal** for trials of similar size at every k and tau² "
        f"({_span(rows, 'HKSJ', sizes='varied')}%) and degrades, far less than DL, when trial "
        f"sizes differ and there is heterogeneity ({_span(rows, 'HKSJ', sizes='25% large', tau2=het)}%, "
        "worst at k = 3-5): an error rate of at most about twice the nominal 5%, as IntHout et al. "
        "report; Partlett & Riley (2017, Stat Med 36:301) describe the same loss with varied sizes "
        "and low heterogeneity.",
        "* **Fixed effect** is nominal only without heterogeneity "
        f"(tau² = 0: {_span(rows, 'FE-z', tau2=0.0)}%; tau² = 0.2: "
        f"{_span(rows, 'FE-z', tau2=0.2)}%).",
        "* **Prediction intervals** (Partlett & Riley 2017: adequate only with large heterogeneity "
        "and similar study sizes, poor with low heterogeneity or varied sizes). Here the HKSJ-based "
        "metafor PI reaches "
        f"{_span(rows, 'PI HKSJ t(k-1) (metafor)', k=20, tau2=0.2)}% at k = 20, I² = 83%, but "
        f"{_span(rows, 'PI HKSJ t(k-1) (metafor)', tau2=0.01)}% at I² = 20% (tau² is often estimated "
        "as 0, and the PI collapses to the CI); the normal-quantile PI (metafor's default under z) "
        f"under-covers with few studies ({_span(rows, 'PI REML-z (metafor)', k=(3, 5), tau2=het)}% "
        "at k = 3-5), and Higgins' t(k-2) interval over-covers at k = 3 "
        f"({_span(rows, 'PI REML t(k-2) (Higgins)', k=3)}%: t with 1 df makes it very wide) and "
        "under-covers at small tau² with more studies "
        f"({_span(rows, 'PI REML t(k-2) (Higgins)', tau2=0.01, k=(10, 20))}%).",
        "",
        "Set-up differences: within-study variances are known here (normal-normal model), whereas "
        "IntHout et al. simulated trial data, and our '25% large' scenario is milder than their most "
        "extreme ones; absolute numbers therefore differ, the ordering of the methods does not.",
    ])


def markdown(rows, reps, seed, seconds):
    mcse = 100 * np.sqrt(LEVEL * (1 - LEVEL) / reps)
    out = [
        "# Coverage of 95% confidence and prediction intervals (simulation)",
        "",
        f"Generated by `python benchmarks/bench_coverage.py --reps {reps} --seed {seed}` "
        f"in {seconds:.0f} s (Python {platform.python_version()}, numpy {np.__version__}). "
        f"{reps:,} simulated meta-analyses per row; Monte Carlo SE of a coverage near 95% "
        f"is {mcse:.2f} percentage points. Set-up in the module docstring: mu = 0, "
        "theta_i ~ N(0, tau²), y_i ~ N(theta_i, v_i), v_i = 4/n_i with n_i uniform on 50..150; "
        "in the '25% large' scenario a quarter of the trials (at least one) are 10 times larger "
        "(IntHout et al. 2014). I² is for a trial of n = 100 (v = 0.04).",
        "",
    ]
    for size in SIZES:
        if not any(r["sizes"] == size for r in rows):
            continue
        out += [f"## CI coverage of the mean (%), trial sizes: {size}", "",
                _table(rows, list(CI_METHODS), size), ""]
    for size in SIZES:
        if not any(r["sizes"] == size for r in rows):
            continue
        out += [f"## Prediction-interval coverage of a new study's true effect (%), "
                f"trial sizes: {size}", "", _table(rows, list(PI_METHODS), size), ""]
    out.append(literature(rows))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20_000, help="meta-analyses per cell")
    ap.add_argument("--seed", type=int, default=20140218)
    ap.add_argument("--out", type=Path, default=None,
                    help="write the Markdown tables here (e.g. benchmarks/results_coverage.md)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.reps, args.seed)
    seconds = time.perf_counter() - t0
    md = markdown(rows, args.reps, args.seed, seconds)
    print(md)
    if args.out is not None:
        args.out.write_text(md + "\n", encoding="utf-8")
        print(f"\nwritten to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
