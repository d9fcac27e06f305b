"""Sensitivity analyses of one meta-analysis: leave-one-out, cumulative, influence, Baujat, GOSH.

Every analysis refits many small models; all of them go through one vectorised call of
:func:`metapool.models.fit_batch` (a (B, k) array of studies with a mask of which are in each
fit), never a Python loop of fits.  Definitions follow R metafor 3.8-1 (``leave1out``,
``cumul``, ``influence``, ``baujat``, ``gosh`` for ``rma.uni`` models without moderators) and are
validated against it in ``tests/test_sensitivity.py`` (``tests/metafor_cases_analyses.json``).

Each function takes either a fitted :class:`~metapool.results.MetaResult` (its studies, method,
test and level are reused) or plain ``yi, vi`` arrays with ``method``/``test``/``level``, and
returns a frozen record (:class:`LeaveOneOut`, :class:`Cumulative`, :class:`Influence`,
:class:`GoshResult`) whose columns are arrays aligned with ``study``; ``rec["estimate"]`` reads a
column, ``to_dict()``/``from_dict()`` store it in ``results/pooled/{outcome}.json``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import chdtr

from .models import fit_batch
from .results import MetaResult, Record, array_field

#: GOSH: all 2^k - 1 subsets are fitted up to this many studies, a random sample above it.
GOSH_EXACT_MAX_K = 16
GOSH_DEFAULT_SUBSETS = 100_000

_FIT_COLUMNS = ("k", "estimate", "se", "stat", "pval", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2",
                "Q", "Q_pval", "I2", "H2")


class _Columns:
    """Column access for records whose arrays are aligned with ``study``: ``rec["estimate"]``."""

    def __getitem__(self, name):
        if name == "study":
            return list(self.study)
        return getattr(self, name)

    def columns(self) -> list:
        return [f for f in self.__dataclass_fields__ if isinstance(getattr(self, f), np.ndarray)]

    def to_frame(self):
        """The table as a pandas DataFrame (``study`` first); needs pandas."""
        import pandas as pd

        cols = {"study": list(self.study)}
        cols.update({c: getattr(self, c) for c in self.columns()})
        return pd.DataFrame(cols)


@dataclass(frozen=True)
class FitTable(_Columns, Record):
    """One refitted model per row (leave-one-out, cumulative): metafor's ``leave1out``/``cumul``
    columns ``k, estimate, se, stat, pval, ci_lb, ci_ub, pi_lb, pi_ub, tau2, Q, Q_pval, I2, H2, df``
    (analysis scale); ``study`` is the study left out (leave-one-out) or added (cumulative)."""

    method: str
    test: str
    level: float
    study: tuple
    k: np.ndarray = array_field(int)
    estimate: np.ndarray = array_field()
    se: np.ndarray = array_field()
    stat: np.ndarray = array_field()
    pval: np.ndarray = array_field()
    ci_lb: np.ndarray = array_field()
    ci_ub: np.ndarray = array_field()
    pi_lb: np.ndarray = array_field()
    pi_ub: np.ndarray = array_field()
    tau2: np.ndarray = array_field()
    Q: np.ndarray = array_field()
    Q_pval: np.ndarray = array_field()
    I2: np.ndarray = array_field()
    H2: np.ndarray = array_field()
    df: np.ndarray = array_field()

    @property
    def n_fits(self) -> int:
        return len(self.study)


@dataclass(frozen=True)
class LeaveOneOut(FitTable):
    """Leave-one-out refits (metafor ``leave1out``); row i omits ``study[i]``."""


@dataclass(frozen=True)
class Cumulative(FitTable):
    """Cumulative meta-analysis (metafor ``cumul``): row i pools the first i studies in order.

    ``order`` holds each added study's sort key as text (None where the study had none: added
    last), ``order_by`` the column and ``decreasing`` the direction; ``notes`` say what was done
    with missing keys."""

    order_by: str = ""
    decreasing: bool = False
    order: tuple = ()
    notes: tuple = ()


def _unpack(fit_or_yi, vi, method, test, level, study):
    """(yi, vi, study, method, test, level) from a MetaResult or from arrays."""
    if isinstance(fit_or_yi, MetaResult):
        f = fit_or_yi
        if f.method in ("MH", "PETO", "GLMM"):
            raise ValueError(f"sensitivity analyses refit inverse-variance models; a {f.method} fit "
                             "cannot be refitted from yi/vi (use FE or a tau2 estimator)")
        return (np.asarray(f.yi, float), np.asarray(f.vi, float), tuple(f.study),
                method or f.method, test or f.test, level or f.level)
    if vi is None:
        raise ValueError("give a MetaResult, or yi and vi")
    y = np.asarray(fit_or_yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError(f"yi and vi differ in length: {y.size} vs {v.size}")
    if not (np.isfinite(y).all() and np.isfinite(v).all() and (v > 0).all()):
        raise ValueError("yi must be finite and vi finite and positive")
    study = tuple(str(s) for s in study) if study is not None else tuple(str(i + 1) for i in range(y.size))
    if len(study) != y.size:
        raise ValueError(f"{len(study)} study labels for {y.size} effect sizes")
    return y, v, study, method or "REML", test or "z", level or 0.95


def _batch(Y, V, mask, method, test, level) -> dict:
    """fit_batch as a dict of columns; single-study fits use the normal test under knha (as
    metafor, whose Knapp-Hartung factor is undefined for k = 1)."""
    with np.errstate(invalid="ignore", divide="ignore"):     # single-study rows: tau2 = 0 anyway
        b = fit_batch(Y, V, mask, method=method, test=test, level=level)
    out = {c: np.array(getattr(b, c), dtype=float) for c in _FIT_COLUMNS}
    out["df"] = np.array(b.df, dtype=float)
    if test == "knha":
        one = out["k"] == 1
        if one.any():
            bz = fit_batch(Y[one], V[one], mask[one], method=method, test="z", level=level)
            for c in _FIT_COLUMNS:
                out[c][one] = np.asarray(getattr(bz, c))
            out["df"][one] = math.nan
    out["k"] = out["k"].astype(int)
    return out


# ---------------------------------------------------------------------------------------------
def leave_one_out(fit_or_yi, vi=None, *, method=None, test=None, level=None, study=None) -> LeaveOneOut:
    """Refit the model k times, each time without one study.

    Returns
    -------
    LeaveOneOut
        One row per omitted study: ``study`` (the study left out), ``k, estimate, se, stat, pval,
        ci_lb, ci_ub, pi_lb, pi_ub, tau2, Q, Q_pval, I2, H2, df``.

    Notes
    -----
    Validated against metafor 3.8-1 ``leave1out(rma(...))`` (FE, DL, REML; z and knha).
    """
    y, v, study, method, test, level = _unpack(fit_or_yi, vi, method, test, level, study)
    k = y.size
    if k < 2:
        raise ValueError("leave-one-out needs at least 2 studies")
    mask = ~np.eye(k, dtype=bool)
    out = _batch(np.broadcast_to(y, (k, k)), np.broadcast_to(v, (k, k)), mask, method, test, level)
    return LeaveOneOut(method=method, test=test, level=level, study=tuple(study), **out)


def cumulative(fit_or_yi, vi=None, *, order=None, decreasing=False, method=None, test=None, level=None,
               study=None, order_by: str = "", notes=()) -> Cumulative:
    """Cumulative meta-analysis: add the studies one at a time in the given order.

    Parameters
    ----------
    order : array_like, optional
        Sort key per study (e.g. publication year), same length as the studies; ties keep the
        input order (stable sort, as R's ``order()``).  Default: the input order.
    decreasing : bool
        Sort the key in decreasing order.

    Returns
    -------
    Cumulative
        Row i is the fit of the first i studies: ``study`` (the study added), ``order`` (its key),
        ``k, estimate, se, stat, pval, ci_lb, ci_ub, pi_lb, pi_ub, tau2, Q, Q_pval, I2, H2, df``.

    Notes
    -----
    Validated against metafor 3.8-1 ``cumul(rma(...), order = year)``.
    """
    y, v, study, method, test, level = _unpack(fit_or_yi, vi, method, test, level, study)
    k = y.size
    key = np.arange(k) if order is None else np.asarray(order)
    if key.shape != (k,):
        raise ValueError(f"order has {key.size} values for {k} studies")
    if key.dtype.kind == "f" and np.isnan(key).any() or any(x is None for x in key.tolist()):
        raise ValueError("order has missing values; give every study a sort key")
    rank = np.unique(key, return_inverse=True)[1].ravel()     # works for numbers, dates and text
    idx = np.argsort(-rank if decreasing else rank, kind="stable")   # ties keep the input order
    mask = np.tril(np.ones((k, k), dtype=bool))
    out = _batch(np.broadcast_to(y[idx], (k, k)), np.broadcast_to(v[idx], (k, k)), mask, method, test,
                 level)
    keys = [None if (isinstance(x, float) and math.isinf(x)) else x for x in key[idx].tolist()]
    return Cumulative(method=method, test=test, level=level, study=tuple(study[i] for i in idx),
                      order_by=order_by, decreasing=bool(decreasing), order=tuple(keys),
                      notes=tuple(notes), **out)


# ---------------------------------------------------------------------------------------------
def _full_and_deleted(y, v, method, test, level):
    """The full fit (B = 1) and the k leave-one-out fits, in one batched call."""
    k = y.size
    mask = np.vstack([np.ones((1, k), bool), ~np.eye(k, dtype=bool)])
    fits = _batch(np.broadcast_to(y, (k + 1, k)), np.broadcast_to(v, (k + 1, k)), mask, method, test, level)
    return {c: float(x[0]) for c, x in fits.items()}, {c: x[1:] for c, x in fits.items()}


@dataclass(frozen=True)
class Influence(_Columns, Record):
    """Case-deletion diagnostics (metafor ``influence``) and Baujat coordinates (``baujat``).

    Columns aligned with ``study``: ``rstudent, dffits, cook_d, cov_r, tau2_del, QE_del, hat,
    weight, dfbetas, inf`` (flagged influential) and ``baujat_x`` (contribution to heterogeneity),
    ``baujat_y`` (influence on the pooled result); ``tau2`` and ``Q`` of the full model."""

    method: str
    test: str
    level: float
    study: tuple
    tau2: float
    Q: float
    rstudent: np.ndarray = array_field()
    dffits: np.ndarray = array_field()
    cook_d: np.ndarray = array_field()
    cov_r: np.ndarray = array_field()
    tau2_del: np.ndarray = array_field()
    QE_del: np.ndarray = array_field()
    hat: np.ndarray = array_field()
    weight: np.ndarray = array_field()
    dfbetas: np.ndarray = array_field()
    inf: np.ndarray = array_field(bool)
    baujat_x: np.ndarray = array_field()
    baujat_y: np.ndarray = array_field()

    @property
    def influential(self) -> list:
        """The studies flagged by metafor's cut-offs."""
        return [s for s, f in zip(self.study, self.inf) if f]

    @property
    def x(self) -> np.ndarray:
        return self.baujat_x

    @property
    def y(self) -> np.ndarray:
        return self.baujat_y


def influence(fit_or_yi, vi=None, *, method=None, test=None, level=None, study=None) -> Influence:
    """Case-deletion influence diagnostics of a model without moderators.

    Columns (metafor ``influence.rma.uni`` definitions, p = 1):

    ``rstudent``
        externally standardised residual ``(y_i - mu_(-i)) / sqrt(s2w_(-i) (v_i + tau2_(-i)) + se_(-i)^2)``;
    ``dffits``
        ``(mu - mu_(-i)) / sqrt(s2w_(-i) h_i (tau2_(-i) + v_i))``;
    ``cook_d``
        ``(mu - mu_(-i))^2 / se^2``; ``cov_r``: ``se_(-i)^2 / se^2``;
    ``tau2_del``, ``QE_del``
        tau² and Cochran's Q without study i;
    ``hat``, ``weight``
        hat value ``w_i / sum w`` and weight in percent of the full model;
    ``dfbetas``
        ``(mu - mu_(-i)) / sqrt(s2w_(-i) / sum_j 1/(v_j + tau2_(-i)))``;
    ``inf``
        flagged as influential when ``|dffits| > 3 sqrt(p/(k-p))``, or
        ``P(chi2_1 <= cook_d) > 0.5``, or ``hat > 3p/k``, or ``|dfbetas| > 1``.

    ``s2w`` is the Knapp-Hartung factor of the deleted fit (1 under ``test="z"``).

    Notes
    -----
    Validated against metafor 3.8-1 ``influence(rma(...))`` (FE, DL, REML; z and knha).
    """
    y, v, study, method, test, level = _unpack(fit_or_yi, vi, method, test, level, study)
    k = y.size
    if k < 2:
        raise ValueError("influence diagnostics need at least 2 studies")
    full, dele = _full_and_deleted(y, v, method, test, level)
    mu, vb = full["estimate"], full["se"] ** 2
    w = 1.0 / (v + full["tau2"])
    hat = w / w.sum()
    mu_d, vb_d, t2_d = (dele[c] for c in ("estimate", "se", "tau2"))
    vb_d = vb_d**2
    # sum over all k studies of 1/(v_j + tau2_(-i)), and over the k-1 remaining ones
    W_all = (1.0 / (v[None, :] + t2_d[:, None])).sum(axis=1)
    W_del = W_all - 1.0 / (v + t2_d)
    s2w = vb_d * W_del if test == "knha" else np.ones(k)
    s2w = np.where(dele["k"] == 1, 1.0, s2w) if test == "knha" else s2w
    diff = mu - mu_d
    resid = y - mu_d
    resid = np.where(np.abs(resid) < 100 * np.finfo(float).eps, 0.0, resid)
    with np.errstate(divide="ignore", invalid="ignore"):
        rstudent = resid / np.sqrt(v * s2w + vb_d + t2_d * s2w)
        dffits = diff / np.sqrt(s2w * hat * (t2_d + v))
        dfbetas = diff / np.sqrt(s2w / W_all)
        cook = diff**2 / vb
        cov_r = vb_d / vb
    p = 1
    with np.errstate(invalid="ignore"):
        inf = ((np.abs(dffits) > 3 * math.sqrt(p / (k - p))) | (chdtr(p, cook) > 0.5)
               | (hat > 3 * p / k) | (np.abs(dfbetas) > 1))
    bx, by = _baujat(y, v, full, dele)
    return Influence(method=method, test=test, level=level, study=tuple(study), tau2=full["tau2"],
                     Q=full["Q"], rstudent=rstudent, dffits=dffits, cook_d=cook, cov_r=cov_r,
                     tau2_del=t2_d, QE_del=dele["Q"], hat=hat, weight=100 * hat, dfbetas=dfbetas,
                     inf=inf, baujat_x=bx, baujat_y=by)


def _baujat(y, v, full, dele):
    x = (y - full["estimate"]) ** 2 / (v + full["tau2"])
    yy = (dele["estimate"] - full["estimate"]) ** 2 / dele["se"] ** 2
    return x, yy


def baujat(fit_or_yi, vi=None, *, method=None, test=None, level=None, study=None) -> Influence:
    """Baujat et al. (2002) coordinates.

    ``x`` (``baujat_x``): contribution to heterogeneity, the squared Pearson residual
    ``(y_i - mu)^2 / (v_i + tau2)`` (Cochran's Q contribution for a fixed-effect model); ``y``
    (``baujat_y``): influence on the pooled result, ``(mu_(-i) - mu)^2 / se_(-i)^2``.  Computed with
    the influence diagnostics (one batched refit), so this returns the same :class:`Influence`.

    Notes
    -----
    Validated against metafor 3.8-1 ``baujat(rma(...))``.
    """
    y, v, study, method, test, level = _unpack(fit_or_yi, vi, method, test, level, study)
    if y.size < 2:
        raise ValueError("a Baujat plot needs at least 2 studies")
    return influence(y, v, method=method, test=test, level=level, study=study)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoshResult(Record):
    """Fits of a model to subsets of the studies (Olkin, Dahabreh & Trikalinos 2012).

    Attributes
    ----------
    method : str
    study : tuple of str
    exact : bool
        True when all 2^k - 1 non-empty subsets were fitted; False for a random sample.
    seed : int or None
        Seed of the random sample (None when exact).
    codes : ndarray of int
        Subset membership, bit j set when study j is in the subset (k <= 62; empty above).
    k, estimate, I2 : ndarray, shape (n,)
        Per-subset size, pooled estimate (analysis scale) and I² (%).
    H2, Q, tau2 : ndarray, shape (n,)
        Per-subset H², Q and tau² (not stored in the JSON, which keeps ``k, estimate, I2`` and
        the membership codes: what the GOSH plot and the per-study summary need).
    """

    method: str
    study: tuple
    exact: bool
    seed: int | None
    codes: np.ndarray = array_field(np.int64)
    k: np.ndarray = array_field(int)
    estimate: np.ndarray = array_field()
    I2: np.ndarray = array_field()
    H2: np.ndarray | None = array_field(default=None, compare=False)
    Q: np.ndarray | None = array_field(default=None, compare=False)
    tau2: np.ndarray | None = array_field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "study", tuple(self.study))
        self._freeze_arrays()

    @property
    def n_subsets(self) -> int:
        return int(self.k.shape[0])

    @property
    def incl(self) -> np.ndarray:
        """Membership matrix (n, k) of bool, from the codes."""
        kk = len(self.study)
        return ((self.codes[:, None] >> np.arange(kk, dtype=np.int64)) & 1).astype(bool)

    def subset_ids(self) -> np.ndarray:
        """Integer code of each subset: bit j set when study j (0-based) is included (k <= 62)."""
        if len(self.study) > 62:
            raise ValueError("subset codes need k <= 62")
        return self.codes

    def study_effects(self) -> dict:
        """Per study: mean estimate and I² of the subsets with vs without it (a GOSH summary that
        points at the studies driving clusters); columns aligned with ``study``."""
        if len(self.study) > 62:
            return {"study": list(self.study)}
        inc = self.incl
        n_in = inc.sum(axis=0)
        n_out = inc.shape[0] - n_in
        with np.errstate(invalid="ignore", divide="ignore"):
            est_in = (inc * self.estimate[:, None]).sum(axis=0) / n_in
            est_out = ((~inc) * self.estimate[:, None]).sum(axis=0) / n_out
            i2_in = (inc * self.I2[:, None]).sum(axis=0) / n_in
            i2_out = ((~inc) * self.I2[:, None]).sum(axis=0) / n_out
        return {"study": list(self.study), "mean_estimate_with": est_in, "mean_estimate_without": est_out,
                "mean_I2_with": i2_in, "mean_I2_without": i2_out}

    def quantiles(self, q=(0.0, 0.025, 0.25, 0.5, 0.75, 0.975, 1.0)) -> dict:
        return {"q": list(q), "estimate": np.nanquantile(self.estimate, q).tolist(),
                "I2": np.nanquantile(self.I2, q).tolist()}

    def to_dict(self) -> dict:
        """The per-subset ``k, estimate, I2`` (7 significant digits) and membership codes."""
        d = {"method": self.method, "study": list(self.study), "exact": self.exact, "seed": self.seed,
             "codes": self.codes.tolist(), "k": self.k.tolist(),
             "estimate": [None if not math.isfinite(x) else float(f"{x:.7g}") for x in self.estimate.tolist()],
             "I2": [None if not math.isfinite(x) else float(f"{x:.7g}") for x in self.I2.tolist()]}
        return d


def gosh_subsets(k: int, *, subsets: int | None = None, seed: int = 1, max_exact_k: int = GOSH_EXACT_MAX_K):
    """Inclusion matrix of the GOSH subsets: all 2^k - 1 non-empty subsets when ``k <= max_exact_k``
    (and ``subsets`` is not smaller than that), else ``subsets`` random subsets drawn as metafor
    does (size from Binomial(k, 1/2) restricted to >= 1, then the members uniformly).

    Returns
    -------
    incl : ndarray of bool, shape (n, k)
    exact : bool
    """
    if k < 2:
        raise ValueError("GOSH needs at least 2 studies")
    n_all = 2.0**k - 1
    n_random = GOSH_DEFAULT_SUBSETS if subsets is None else int(subsets)
    if n_random < 2:
        raise ValueError("subsets must be >= 2")
    if k <= max_exact_k and (subsets is None or subsets >= n_all):
        codes = np.arange(1, 2**k, dtype=np.int64)
        return ((codes[:, None] >> np.arange(k, dtype=np.int64)) & 1).astype(bool), True
    if subsets is not None and subsets >= n_all:
        raise ValueError(f"{int(n_all)} subsets would all be fitted; use k <= {max_exact_k} or fewer subsets")
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, k + 1)
    prob = np.array([math.comb(k, int(s)) for s in sizes], dtype=float)
    m = rng.choice(sizes, size=n_random, p=prob / prob.sum())
    # a random subset of size m per row: the m smallest of k uniform keys
    keys = rng.random((n_random, k))
    ranks = keys.argsort(axis=1).argsort(axis=1)
    return ranks < m[:, None], False


def gosh(fit_or_yi, vi=None, *, method=None, subsets: int | None = None, seed: int = 1,
         study=None, max_exact_k: int = GOSH_EXACT_MAX_K) -> GoshResult:
    """GOSH analysis: fit the model to all (k <= 16) or a random sample of subsets of the studies.

    Parameters
    ----------
    subsets : int, optional
        Number of random subsets when not all are fitted (default 100,000).
    seed : int
        Seed of the random sample (numpy ``default_rng``), so the analysis is reproducible.

    Returns
    -------
    GoshResult

    Notes
    -----
    One call of :func:`metapool.models.fit_batch` over all subsets.  Validated against
    metafor 3.8-1 ``gosh(rma(...))`` (all subsets of k = 6 and k = 8; FE and DL): estimate, I²,
    H², Q, tau² per subset.  One documented difference: for DL subsets where tau² is truncated
    at 0, metafor's ``gosh()`` (its fast path) reports H² = Q/(k-1), while ``rma()`` and this
    function report H² = 1 + tau²/s² = 1.
    """
    y, v, study, method, _, _ = _unpack(fit_or_yi, vi, method, "z", 0.95, study)
    incl, exact = gosh_subsets(y.size, subsets=subsets, seed=seed, max_exact_k=max_exact_k)
    n = incl.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):     # single-study subsets: tau2 = 0 anyway
        b = fit_batch(np.broadcast_to(y, (n, y.size)), np.broadcast_to(v, (n, y.size)), incl,
                      method=method, test="z")
    kk = y.size
    codes = ((incl.astype(np.int64) << np.arange(kk, dtype=np.int64)).sum(axis=1) if kk <= 62
             else np.zeros(0, dtype=np.int64))
    return GoshResult(method=b.method, study=study, exact=exact, seed=None if exact else seed, codes=codes,
                      k=np.asarray(b.k, dtype=int), estimate=b.estimate, I2=b.I2, H2=b.H2, Q=b.Q, tau2=b.tau2)
