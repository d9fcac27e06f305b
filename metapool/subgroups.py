"""Subgroup analysis: a pooled estimate per subgroup and the test for subgroup differences.

Three conventions, as metafor users compute them (Borenstein et al. 2009, ch. 19; Cochrane
Handbook version 6.4, section 10.11):

* ``method="FE"``: fixed-effect fits per subgroup; ``Q_between = Q_total - sum Q_within``, which
  equals the omnibus test of the fixed-effects meta-regression on the grouping factor.
* random effects, ``tau2="separate"``: a random-effects model per subgroup with its own tau²;
  ``Q_between`` is Cochran's Q of the subgroup estimates with weights ``1/se_g²`` (metafor:
  ``rma(estimates, sei = se, mods = ~ group, method = "FE")``), chi²(G - 1).
* random effects, ``tau2="common"``: one mixed-effects meta-regression on the grouping factor,
  so all subgroups share one tau²; ``Q_between`` is its omnibus test QM (chi²(G-1) under
  ``test="z"``; under ``test="knha"`` the F statistic with (G-1, k-G) df, as metafor).

Validated against R metafor 3.8-1 in ``tests/test_subgroups.py``
(``tests/metafor_cases_analyses.json``, ``analysis == "subgroup"``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import dist
from .metareg import design_matrix, meta_regression
from .models import fit
from .results import EffectSizes, MetaResult, NotRun, Record

TAU2_MODES = ("separate", "common")


@dataclass(frozen=True)
class SubgroupFit(Record):
    """One subgroup: its name, its studies and the model fitted to them."""

    name: str
    study: tuple
    fit: MetaResult


@dataclass(frozen=True)
class SubgroupTest(Record):
    """The test for subgroup differences.

    ``Q_between`` on ``df`` (and ``df2`` for the F test under knha with a common tau²), ``pval``;
    ``tau2``: ``separate`` or ``common``; ``model``: ``fixed`` or ``random``; ``dist``: ``chi2`` or
    ``F``; ``tau2_common`` the shared tau² (common); ``Q_within*`` the residual heterogeneity (FE)."""

    Q_between: float
    df: float
    pval: float
    tau2: str
    model: str
    dist: str
    df2: float = math.nan
    tau2_common: float = math.nan
    Q_within: float = math.nan
    Q_within_df: float = math.nan
    Q_within_pval: float = math.nan


@dataclass(frozen=True)
class SubgroupAnalysis(Record):
    """Pooled estimate per subgroup and the test for subgroup differences.

    ``by`` names the grouping column; ``levels`` counts studies per value (set by the outcome
    analysis); ``common_tau2`` holds the same analysis with one tau² for all subgroups (random
    effects only)."""

    by: str
    method: str
    ci_test: str
    level: float
    groups: tuple[SubgroupFit, ...]
    test: SubgroupTest
    notes: tuple = ()
    levels: dict | None = None
    common_tau2: SubgroupAnalysis | NotRun | None = None

    def group(self, name: str) -> SubgroupFit | None:
        """The subgroup called ``name`` (case-insensitive), or None."""
        return next((g for g in self.groups if g.name.strip().lower() == name.strip().lower()), None)


def _inputs(effects_or_yi, vi, study, measure, ni):
    if isinstance(effects_or_yi, EffectSizes):
        es = effects_or_yi
        return (np.asarray(es.yi, float), np.asarray(es.vi, float), tuple(es.study),
                measure or es.measure, es.ni if ni is None else ni)
    if vi is None:
        raise ValueError("give an EffectSizes, or yi and vi")
    y = np.asarray(effects_or_yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError(f"yi and vi differ in length: {y.size} vs {v.size}")
    study = tuple(str(s) for s in study) if study is not None else tuple(str(i + 1) for i in range(y.size))
    return y, v, study, measure or "GEN", ni


def _group_labels(groups, k, by):
    g = list(groups.tolist() if hasattr(groups, "tolist") else groups)
    if len(g) != k:
        raise ValueError(f"{len(g)} subgroup labels for {k} studies")
    missing = [i for i, x in enumerate(g)
               if x is None or (isinstance(x, float) and math.isnan(x)) or str(x).strip() == ""]
    if missing:
        raise ValueError(f"subgroup column {by!r} is empty for study rows {missing}; "
                         "fill it in or leave those studies out")
    g = np.array([str(x) for x in g], dtype=object)
    levels = sorted(set(g.tolist()))
    if len(levels) < 2:
        raise ValueError(f"subgroup column {by!r} has a single value ({levels[0]!r}): nothing to compare")
    return g, levels


def _q_between_separate(est, se):
    """Cochran's Q of the subgroup estimates (fixed-effect model of the G estimates)."""
    w = 1.0 / se**2
    mu = np.sum(w * est) / w.sum()
    q = float(np.sum(w * (est - mu) ** 2))
    df = est.size - 1
    return q, df, float(dist.chi2_sf(q, df))


def _common_group_fit(name, idx, y, v, study, measure, ni, reg, j, method, test, level):
    """MetaResult of subgroup j from the no-intercept mixed model (common tau²)."""
    tau2 = reg.tau2
    yg, vg = y[idx], v[idx]
    k = yg.size
    w = 1.0 / (vg + tau2)
    w0 = 1.0 / vg
    mu0 = np.sum(w0 * yg) / w0.sum()
    Q = float(np.sum(w0 * (yg - mu0) ** 2))
    if k > 1:
        s2 = (k - 1) / (w0.sum() - np.sum(w0**2) / w0.sum())
        I2, H2 = 100 * tau2 / (s2 + tau2), tau2 / s2 + 1
        Qp = float(dist.chi2_sf(Q, k - 1))
    else:
        I2, H2, Qp = 0.0, 1.0, 1.0
    est, se = float(reg.estimate[j]), float(reg.se[j])
    crit = float(dist.t_ppf(0.5 + level / 2, reg.df) if test == "knha" else dist.norm_ppf(0.5 + level / 2))
    half = crit * math.sqrt(se**2 + tau2)
    return MetaResult(
        measure=measure, method=method, test=test, level=level, study=tuple(study[i] for i in idx),
        yi=yg, vi=vg, weights=100 * w / w.sum(), k=k, estimate=est, se=se, stat=float(reg.stat[j]),
        pval=float(reg.pval[j]), ci_lb=float(reg.ci_lb[j]), ci_ub=float(reg.ci_ub[j]),
        pi_lb=est - half, pi_ub=est + half, df=reg.df, tau2=tau2, I2=I2, H2=H2, Q=Q, Q_df=float(k - 1),
        Q_pval=Qp, ni=None if ni is None else np.asarray(ni, float)[idx],
        notes=(f"tau2 = {tau2:.6g} common to all subgroups ({method} from the mixed-effects model "
               "with the subgroup factor)",))


def subgroup_analysis(effects_or_yi, vi=None, groups=None, *, method="REML", test="z", tau2="separate",
                      level=0.95, study=None, by="group", measure=None, ni=None) -> SubgroupAnalysis:
    """Pooled estimate per subgroup and the test for subgroup differences.

    Parameters
    ----------
    effects_or_yi : EffectSizes or array_like
        Per-study effect sizes (analysis scale).
    vi : array_like, optional
        Sampling variances (with plain ``yi``).
    groups : sequence
        Subgroup label of each study (e.g. the ``dose_regimen`` column of the study table).
    method : str
        ``FE`` or a tau² estimator (REML, DL, ML, PM, HE, SJ, EB, HS).
    test : {"z", "knha"}
    tau2 : {"separate", "common"}
        Random effects only: a tau² per subgroup, or one tau² shared by all subgroups.
    level : float
    study, measure, ni
        Labels, effect measure (for back-transformation) and sample sizes, taken from the
        EffectSizes when given.
    by : str
        Name of the grouping column (recorded in the output).

    Returns
    -------
    SubgroupAnalysis

    Notes
    -----
    Validated against R metafor 3.8-1: separate fits ``rma(..., subset = group == g)``, the
    fixed-effects test ``rma(yi, vi, mods = ~ group, method = "FE")$QM``, the separate-tau²
    test ``rma(b, sei = se, mods = ~ group, method = "FE")$QM`` and the common-tau² test and
    subgroup estimates ``rma(yi, vi, mods = ~ group [- 1], method, test)``.
    """
    if tau2 not in TAU2_MODES:
        raise ValueError(f"tau2 must be one of {TAU2_MODES}, not {tau2!r}")
    if groups is None:
        raise ValueError("give the subgroup label of each study (groups=...)")
    y, v, study, measure, ni = _inputs(effects_or_yi, vi, study, measure, ni)
    g, levels = _group_labels(groups, y.size, by)
    method = str(method).upper()
    fixed = method in ("FE", "EE", "CE")
    method = "FE" if fixed else method
    index = [np.flatnonzero(g == lev) for lev in levels]
    notes = []

    if fixed or tau2 == "separate":
        fits = []
        for lev, idx in zip(levels, index):
            t = test
            if test == "knha" and idx.size == 1:
                t = "z"
                notes.append(f"subgroup {lev!r} has one study: normal inference (Knapp-Hartung needs k >= 2)")
            with np.errstate(invalid="ignore", divide="ignore"):    # k = 1: tau2 = 0 by definition
                fits.append(fit(y[idx], v[idx], method=method, test=t, level=level, measure=measure,
                                study=[study[i] for i in idx],
                                ni=None if ni is None else np.asarray(ni)[idx]))
        est = np.array([f.estimate for f in fits])
        se = np.array([f.se for f in fits])
        if not (se > 0).all():
            raise ValueError("a subgroup estimate has zero standard error; cannot test subgroup differences")
        q, df, p = _q_between_separate(est, se)
        res_test = {"Q_between": q, "df": df, "pval": p, "tau2": "separate" if not fixed else tau2,
                    "model": "fixed" if fixed else "random", "dist": "chi2"}
        if fixed:
            X, _ = design_matrix({by: g})
            reg = meta_regression(y, v, X=X, method="FE")
            res_test.update(Q_within=reg.QE, Q_within_df=reg.QE_df, Q_within_pval=reg.QE_pval)
    else:
        X0, names0 = design_matrix({by: g}, intercept=False)
        reg0 = meta_regression(y, v, X=X0, coef_names=names0, method=method, test=test, level=level)
        X1, names1 = design_matrix({by: g})
        reg1 = meta_regression(y, v, X=X1, coef_names=names1, method=method, test=test, level=level)
        fits = [_common_group_fit(lev, idx, y, v, study, measure, ni, reg0, j, method, test, level)
                for j, (lev, idx) in enumerate(zip(levels, index))]
        res_test = {"Q_between": reg1.QM, "df": int(reg1.QM_df), "pval": reg1.QM_pval, "tau2": "common",
                    "model": "random", "dist": "F" if test == "knha" else "chi2", "tau2_common": reg1.tau2}
        if test == "knha":
            res_test["df2"] = int(reg1.QM_df2)
        notes.extend(reg1.notes)
    if any(idx.size == 1 for idx in index) and not fixed and tau2 == "separate":
        notes.append("subgroups with one study have tau2 = 0 and contribute their own estimate")
    return SubgroupAnalysis(
        by=by, method=method, ci_test=test, level=level,
        groups=tuple(SubgroupFit(name=lev, study=tuple(study[i] for i in idx), fit=f)
                     for lev, idx, f in zip(levels, index, fits)),
        test=SubgroupTest(**res_test), notes=tuple(notes))
