"""Mantel-Haenszel and Peto pooling of 2x2 tables (fixed/common-effect models).

Both methods pool the tables directly rather than the per-study effect sizes; the
per-study ``yi``/``vi`` (with a continuity correction for zero cells) are only used for
Cochran's Q, I², H² and for display, exactly as in R metafor.

Validated against
-----------------
R metafor 3.8-1 ``rma.mh(measure = "OR" | "RR" | "RD")`` and ``rma.peto()`` with their
default arguments (``add = 1/2, to = "only0", drop00 = TRUE`` for the per-study values, no
correction of the tables themselves); see ``tests/test_counts.py`` and the ``*_MH`` /
``*_PETO`` cases of ``tests/metafor_cases.json``.

References
----------
Mantel N, Haenszel W (1959). J Natl Cancer Inst 22:719-748.
Robins J, Breslow N, Greenland S (1986). Biometrics 42:311-323 (variance of the MH log OR).
Greenland S, Robins JM (1985). Biometrics 41:55-68 (variances of the MH log RR and RD).
Yusuf S, Peto R, Lewis J, Collins R, Sleight P (1985). Prog Cardiovasc Dis 27:335-371.
"""
from __future__ import annotations

import math

import numpy as np

from . import dist

from .effects import escalc
from .results import MetaResult
from .rows import as_records, numbers

__all__ = ["mantel_haenszel", "peto", "MH_MEASURES", "COUNT_COLUMNS"]

#: Measures that :func:`mantel_haenszel` pools.
MH_MEASURES = ("OR", "RR", "RD")
#: Input columns (besides ``study``) of a two-arm count table.
COUNT_COLUMNS = ("events_treat", "total_treat", "events_ctrl", "total_ctrl")


def _tables(data, measure: str, add: float, to: str, drop00: bool):
    """Validated 2x2 tables and metafor's per-study yi/vi (NaN where escalc drops the study).

    Returns ``study, a, b, c, d, yi, vi, notes``; validation and the continuity-corrected
    per-study values come from :func:`metapool.effects.escalc` (messages name study and column).
    """
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__") and not hasattr(data, "to_dict"):
        raise TypeError(f"data must be records or a table, not {type(data).__name__}")
    data = as_records(data)
    if len(data) == 0:
        raise ValueError("no studies to pool (the table has no rows)")
    missing = [c for c in ("study",) + COUNT_COLUMNS if not any(c in r for r in data)]
    if missing:
        raise ValueError("two-arm count data need the columns study, " + ", ".join(COUNT_COLUMNS)
                         + "; missing: " + ", ".join(missing))
    data = [{c: r.get(c) for c in ("study",) + COUNT_COLUMNS} for r in data]
    es = escalc(measure, data, add=add, to=to, drop00=drop00, kind="binary")
    study = tuple(str(r["study"]) for r in data)
    a, n1, c, n2 = (numbers(data, col) for col in COUNT_COLUMNS)
    index = {s: i for i, s in enumerate(study)}
    pos = np.array([index[s] for s in es.study], dtype=int)
    yi = np.full(len(study), np.nan)
    vi = np.full(len(study), np.nan)
    yi[pos], vi[pos] = es.yi, es.vi
    notes = tuple(es.notes) + tuple(f"{s}: no study effect size, not in Q ({why})" for s, why in es.dropped)
    return study, a, n1 - a, c, n2 - c, yi, vi, notes


def _heterogeneity(Q: float, k_yi: int) -> dict:
    """Q test, I² = 100 (Q - df)/Q and H² = Q/df as metafor's rma.mh/rma.peto report them."""
    if k_yi > 1:
        df = k_yi - 1
        return {"Q": Q, "Q_df": float(df), "Q_pval": float(dist.chi2_sf(Q, df)),
                "I2": max(0.0, 100 * (Q - df) / Q) if Q > 0 else 0.0, "H2": Q / df}
    return {"Q": 0.0, "Q_df": 0.0, "Q_pval": 1.0, "I2": 0.0, "H2": 1.0}


def _inference(beta: float, se: float, level: float) -> dict:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}")
    z = dist.norm_ppf(0.5 + level / 2)
    stat = beta / se if se > 0 else math.nan
    return {"estimate": beta, "se": se, "stat": stat, "pval": float(2 * dist.norm_sf(abs(stat))),
            "ci_lb": beta - z * se, "ci_ub": beta + z * se}


def _mh_estimate(measure, a, b, c, d):
    """Pooled MH estimate (analysis scale), its SE and the per-table weights."""
    n1, n2 = a + b, c + d
    n = n1 + n2
    if measure == "OR":
        P, Qc = (a + d) / n, (b + c) / n
        Ri, Si = a * d / n, b * c / n
        R, S = Ri.sum(), Si.sum()
        w = Si
        if R == 0 or S == 0:
            return math.nan, math.nan, w
        var = 0.5 * ((P * Ri).sum() / R**2 + (P * Si + Qc * Ri).sum() / (R * S) + (Qc * Si).sum() / S**2)
        return math.log(R / S), math.sqrt(var), w
    if measure == "RR":
        R, S = (a * n2 / n).sum(), (c * n1 / n).sum()
        w = c * n1 / n
        if a.sum() == 0 or c.sum() == 0:
            return math.nan, math.nan, w
        var = (n1 / n * n2 / n * (a + c) - a * c / n).sum() / (R * S)
        return math.log(R / S), math.sqrt(var), w
    w = n1 * n2 / n
    W = w.sum()
    beta = (a * n2 / n - c * n1 / n).sum() / W
    num = beta * (c * (n1 / n) ** 2 - a * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2).sum() \
        + (a * (n2 - c) / n + c * (n1 - a) / n).sum() / 2
    return beta, math.sqrt(num / W**2), w


def _percent(w: np.ndarray) -> np.ndarray:
    total = w.sum()
    return 100 * w / total if total > 0 else np.full(w.shape, math.nan)


def mantel_haenszel(data, measure: str, *, level: float = 0.95, add: float = 0.5,
                    to: str = "only0", drop00: bool = True) -> MetaResult:
    """Mantel-Haenszel common-effect pooling of 2x2 tables (OR, RR or RD).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study with columns ``study, events_treat, total_treat, events_ctrl,
        total_ctrl`` (further columns are ignored).
    measure : {"OR", "RR", "RD"}
        Odds ratio, risk ratio (both pooled on the log scale) or risk difference.
    level : float
        Confidence level of the interval.
    add, to, drop00
        Continuity correction of the *per-study* effect sizes used for Q, I² and display
        (metafor's ``escalc`` arguments; defaults as in ``rma.mh``).  The pooled estimate uses
        the uncorrected tables (metafor's default ``to[2] = "none"``).

    Returns
    -------
    MetaResult
        ``method="MH"``, ``test="z"``, analysis scale log OR / log RR / RD.  ``k`` counts
        all tables; ``yi``/``vi`` are NaN for double-zero studies dropped by ``drop00``.
        ``weights`` are metafor's MH weights in percent (``weights(rma.mh(...))``).
        I² = 100 (Q - (k - 1))/Q with Q computed from the inverse-variance weights and the
        MH estimate; tau², its CI and the prediction interval are NaN.  The estimate is NaN
        when there are no events (OR, RR) or no non-events (OR) in one arm of every table.

    Notes
    -----
    Variance of the log OR by Robins, Breslow and Greenland (1986); of the log RR and the RD by
    Greenland and Robins (1985).  Validated against R metafor 3.8-1 ``rma.mh``.
    """
    measure = str(measure).upper()
    if measure not in MH_MEASURES:
        raise ValueError(f"Mantel-Haenszel pools OR, RR or RD; got measure {measure!r}")
    study, a, b, c, d, yi, vi, notes = _tables(data, measure, add, to, drop00)
    beta, se, w = _mh_estimate(measure, a, b, c, d)
    ok = np.isfinite(yi) & np.isfinite(vi)
    Q = max(0.0, float(((yi[ok] - beta) ** 2 / vi[ok]).sum())) if ok.any() else 0.0
    het = _heterogeneity(Q, int(ok.sum()))
    if not np.isfinite(beta) and ok.any():
        # Q needs the pooled estimate; with no study effect size at all (every table double-zero)
        # metafor's rma.mh reports Q = 0, p = 1 as for a single study, and so does this
        het.update(Q=math.nan, Q_pval=math.nan, I2=math.nan, H2=math.nan)
    notes += ("per-study effect sizes (continuity-corrected) are used for Q and display only; the "
              "MH estimate pools the uncorrected tables",)
    if measure == "RD" and np.isnan(yi).any():
        notes += ("tables without a study effect size still count in the MH risk difference "
                  "(as in metafor)",)
    if not np.isfinite(beta):
        notes += ("MH estimate undefined: no events (or no non-events) in one arm of every table",)
    return MetaResult(measure=measure, method="MH", test="z", level=level, study=study, yi=yi, vi=vi,
                      weights=_percent(w), k=len(study), ni=a + b + c + d, notes=notes,
                      **_inference(beta, se, level), **het)


def peto(data, *, level: float = 0.95, add: float = 0.5, to: str = "only0",
         drop00: bool = True) -> MetaResult:
    """Peto's one-step pooled odds ratio of 2x2 tables.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study with columns ``study, events_treat, total_treat, events_ctrl,
        total_ctrl`` (further columns are ignored).
    level : float
        Confidence level of the interval.
    add, to, drop00
        Continuity correction of the per-study Peto log odds ratios (display only), as in
        metafor's ``rma.peto``; the pooled estimate and Q use the uncorrected tables.

    Returns
    -------
    MetaResult
        ``measure="PETO"``, ``method="PETO"``, analysis scale log OR.  The estimate is
        sum(O - E) / sum(V) with hypergeometric E and V, its SE 1/sqrt(sum V).  Q is
        sum((O - E)²/V) - (sum(O - E))²/sum(V) over tables with V > 0, with k - 1 df (k after
        dropping double-zero studies); I² = 100 (Q - df)/Q.  Weights are V in percent.

    Raises
    ------
    ValueError
        When no table has both outcomes (every V is 0), as metafor does.

    Notes
    -----
    Yusuf et al. (1985).  Validated against R metafor 3.8-1 ``rma.peto``.
    """
    study, a, b, c, d, yi, vi, notes = _tables(data, "PETO", add, to, drop00)
    n1, n2 = a + b, c + d
    n = n1 + n2
    xt, yt = a + c, b + d
    E = xt * n1 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        V = np.where(n > 1, xt * yt * (n1 / n) * (n2 / n) / (n - 1), 0.0)
    if V.sum() == 0:
        raise ValueError("Peto's method needs at least one table in which both outcomes occur "
                         "(every table has no events, or only events)")
    beta = float((a - E).sum() / V.sum())
    se = math.sqrt(1 / V.sum())
    pos = V > 0
    Q = max(0.0, float(((a - E)[pos] ** 2 / V[pos]).sum() - (a - E).sum() ** 2 / V[pos].sum()))
    k_yi = int((np.isfinite(yi) & np.isfinite(vi)).sum())
    het = _heterogeneity(Q, k_yi)
    if pos.sum() <= 1:  # metafor: Q is still reported, but its p-value is 1, I2 = 0, H2 = 1
        het.update(Q=Q, Q_df=float(max(k_yi - 1, 0)), Q_pval=1.0, I2=0.0, H2=1.0)
    return MetaResult(measure="PETO", method="PETO", test="z", level=level, study=study, yi=yi, vi=vi,
                      weights=_percent(V), k=len(study), ni=n, notes=notes,
                      **_inference(beta, se, level), **het)
