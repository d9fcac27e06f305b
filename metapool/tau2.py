"""Between-study variance (tau²) estimators and the Q-profile confidence interval.

Every estimator follows the definitions of R metafor's ``rma.uni`` (Viechtbauer 2010,
metafor 3.8-1) for the intercept-only random-effects model ``y_i ~ N(mu, v_i + tau²)``,
and is validated against metafor output in ``tests/test_metafor_conformance.py`` and
``tests/test_tau2.py``.  All computations are vectorised over B meta-analyses stored as
``(B, k)`` arrays with a boolean mask for ragged k; nothing builds a k x k matrix, so the
cost is linear in k.  With weights ``w_i`` and the weighted mean ``ybar_w`` the projection
quantities metafor computes with matrices reduce to sums:

* ``y'Py = sum w_i (y_i - ybar_w)^2`` (the generalised Q statistic),
* ``tr(P) = sum w - sum w^2 / sum w``,
* ``y'PPy = sum (w_i (y_i - ybar_w))^2`` and
  ``tr(PP) = sum w^2 - 2 sum w^3 / sum w + (sum w^2)^2 / (sum w)^2``.

Estimators (``method``):

``DL``   DerSimonian-Laird (1986) moment estimator.
``HE``   Hedges (1983) / Hedges-Olkin unweighted moment estimator.
``HS``   Hunter-Schmidt (1990): ``(Q - k) / sum w``.
``SJ``   Sidik-Jonkman (2005) with metafor's starting value ``var(y) (k-1)/k``.
``PM``   Paule-Mandel (1982): the root of ``Q(tau²) = k - 1``.
``EB``   Empirical Bayes (Morris 1983; Berkey et al. 1995); metafor's iteration
         ``tau² += (Q(tau²) k/(k-1) - k) / sum w`` has the PM root as its fixed point (0
         when ``Q(0) < k - 1``), which is what is computed.
``ML``   maximum likelihood, ``REML`` restricted maximum likelihood (Fisher scoring as
         metafor, with metafor's check against tau² = 0; a bounded scalar search by
         :func:`scipy.optimize.brentq` on the score when Fisher scoring fails).

All estimates are truncated at 0.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, special

METHODS = ("DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")
FISHER_MAXITER = 100  # metafor's default maxiter for Fisher scoring

# status codes per meta-analysis, turned into notes by estimate_tau2
_OK, _FALLBACK, _TRUNC_LL0 = 0, 1, 2


# ----------------------------------------------------------------------------- inputs
def _as_batch(Y, V, mask=None):
    """Validate and return float (B, k) arrays Y, V (V = 1 where masked) and a bool mask."""
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    V = np.atleast_2d(np.asarray(V, dtype=float))
    if Y.shape != V.shape:
        raise ValueError(f"effect sizes and variances differ in shape: {Y.shape} vs {V.shape}")
    if Y.ndim != 2:
        raise ValueError(f"expected (B, k) arrays, got shape {Y.shape}")
    if mask is None:
        mask = np.ones(Y.shape, dtype=bool)
    else:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), Y.shape)
    if not np.all(np.isfinite(Y[mask])):
        raise ValueError("effect sizes (yi) must be finite; found NaN or infinite values")
    vin = V[mask]
    if not np.all(np.isfinite(vin)) or np.any(vin <= 0):
        bad = vin[~(np.isfinite(vin) & (vin > 0))][:3]
        raise ValueError(f"sampling variances (vi) must be finite and > 0; found {bad.tolist()}")
    if np.any(mask.sum(axis=1) < 1):
        raise ValueError("every meta-analysis needs at least one study (a mask row is all False)")
    Y = np.where(mask, Y, 0.0)
    V = np.where(mask, V, 1.0)
    return Y, V, mask


def _check_method(method):
    m = str(method).upper()
    if m not in METHODS:
        raise ValueError(f"unknown tau2 method {method!r}; choose one of {', '.join(METHODS)}")
    return m


# ----------------------------------------------------------------------------- sums
def _wsums(Y, V, mask, tau2):
    """Weights, their sum, weighted mean and residuals for tau2 of shape (B,).

    Needs arrays as :func:`_as_batch` returns them (``Y = 0`` and ``V = 1`` where masked):
    the weights are then exactly 0 at masked entries (``mask / (V + tau2)``), so every sum
    below that multiplies by ``w`` ignores them without masking the residuals again.
    """
    w = mask / (V + tau2[:, None])
    sw = w.sum(axis=1)
    mu = (w * Y).sum(axis=1) / sw
    e = Y - mu[:, None]
    return w, sw, mu, e


def generalized_q(Y, V, mask, tau2):
    """Generalised Q ``sum w_i (y_i - ybar_w)^2`` with ``w_i = 1/(v_i + tau2)``, shape (B,).

    ``Y``, ``V``: (B, k) arrays; entries where ``mask`` is False are ignored.
    """
    mask = np.asarray(mask, dtype=bool)
    Y = np.where(mask, Y, 0.0)
    V = np.where(mask, V, 1.0)
    w, _, _, e = _wsums(Y, V, mask, np.asarray(tau2, dtype=float))
    return (w * e * e).sum(axis=1)


def _q_and_slope(Y, V, mask, tau2):
    w, _, _, e = _wsums(Y, V, mask, tau2)
    we = w * e
    return (we * e).sum(axis=1), -(we * we).sum(axis=1)


def _loglik(Y, V, mask, tau2, reml):
    """metafor's (restricted) log-likelihood of the intercept-only model, shape (B,)."""
    w, sw, _, e = _wsums(Y, V, mask, tau2)
    k = mask.sum(axis=1)
    logdet = np.where(mask, np.log(V + tau2[:, None]), 0.0).sum(axis=1)
    rss = (w * e * e).sum(axis=1)
    if reml:
        return -0.5 * ((k - 1) * math.log(2 * math.pi) + logdet + np.log(sw) + rss)
    return -0.5 * (k * math.log(2 * math.pi) + logdet + rss)


def _score_step(Y, V, mask, tau2, method):
    """Fisher-scoring step of metafor's rma.uni for ML or REML, shape (B,).

    Rows need k >= 2 (:func:`_fisher` does not iterate single-study rows, whose step is
    0/0).  With sampling variances spanning ~1e8 the sum for ``tr(PP)`` can cancel to 0;
    the step is then infinite or NaN, which :func:`_fisher` treats as no step.
    """
    w, sw, _, e = _wsums(Y, V, mask, tau2)
    we = w * e
    yppy = (we * we).sum(axis=1)
    sw2 = (w * w).sum(axis=1)
    if method == "ML":
        return (yppy - sw) / sw2
    trp = sw - sw2 / sw
    trpp = sw2 - 2.0 * (w ** 3).sum(axis=1) / sw + (sw2 / sw) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):  # cancelled tr(PP), see above
        return (yppy - trp) / trpp


# ----------------------------------------------------------------------------- closed forms
def _dl(Y, V, mask):
    k = mask.sum(axis=1)
    q = generalized_q(Y, V, mask, np.zeros(Y.shape[0]))
    w = np.where(mask, 1.0 / V, 0.0)
    sw = w.sum(axis=1)
    trp = sw - (w * w).sum(axis=1) / sw
    with np.errstate(invalid="ignore", divide="ignore"):
        return (q - (k - 1)) / trp


def _he(Y, V, mask):
    k = mask.sum(axis=1)
    mean = (Y * mask).sum(axis=1) / k
    rss = np.where(mask, (Y - mean[:, None]) ** 2, 0.0).sum(axis=1)
    trpv = (V * mask).sum(axis=1) * (k - 1) / k
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rss - trpv) / (k - 1)


def _hs(Y, V, mask):
    k = mask.sum(axis=1)
    q = generalized_q(Y, V, mask, np.zeros(Y.shape[0]))
    return (q - k) / np.where(mask, 1.0 / V, 0.0).sum(axis=1)


def _sj(Y, V, mask):
    k = mask.sum(axis=1)
    mean = (Y * mask).sum(axis=1) / k
    tau0 = np.where(mask, (Y - mean[:, None]) ** 2, 0.0).sum(axis=1) / k  # var(y) (k-1)/k
    q = generalized_q(Y, V, mask, tau0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tau0 * q / (k - 1)


# ----------------------------------------------------------------------------- root of Q
def q_root(Y, V, mask, target, *, tol=1e-12, maxiter=200):
    """Solve ``Q(tau2) = target`` for each row (0 where ``Q(0) <= target``).

    ``Q(tau2)`` (:func:`generalized_q`) is decreasing and convex in tau2 (its derivative is
    ``-y'PPy`` and its second derivative ``2 y'PPPy >= 0``), so Newton's method started at
    0 increases monotonically to the root; rows that do not converge within ``maxiter``
    are finished by :func:`scipy.optimize.brentq`.  Used for Paule-Mandel, EB and the
    Q-profile CI (Viechtbauer 2007).  ``Y, V, mask`` as returned by :func:`_as_batch`.

    Returns
    -------
    tau2 : ndarray (B,)
    converged_by_newton : ndarray of bool (B,)
    """
    B = Y.shape[0]
    target = np.broadcast_to(np.asarray(target, dtype=float), (B,)).copy()
    tau2 = np.zeros(B)
    q0, _ = _q_and_slope(Y, V, mask, tau2)
    active = q0 > target
    done = ~active
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero slope gives a non-finite step
        for _ in range(maxiter):
            if active.all():  # no fancy indexing while every row iterates
                idx = slice(None)
                q, dq = _q_and_slope(Y, V, mask, tau2)
            else:
                idx = np.flatnonzero(active)
                if idx.size == 0:
                    break
                q, dq = _q_and_slope(Y[idx], V[idx], mask[idx], tau2[idx])
            step = -(q - target[idx]) / dq
            step = np.where(np.isfinite(step), np.maximum(step, 0.0), 0.0)
            tau2[idx] += step
            conv = step <= tol * np.maximum(1.0, tau2[idx])
            if isinstance(idx, slice):
                done |= conv
                active = ~conv
            else:
                done[idx[conv]] = True
                active[idx[conv]] = False
    newton_ok = done.copy()
    for i in np.flatnonzero(~done):
        tau2[i] = _q_root_scalar(Y[i], V[i], mask[i], target[i], tau2[i])
    return tau2, newton_ok


def _q_root_scalar(y, v, m, target, lo):
    y, v = y[m], v[m]

    def f(t):
        return float(generalized_q(y[None], v[None], np.ones((1, y.size), bool), np.array([t]))[0]) - target

    hi = max(2.0 * lo, float(np.var(y)) + float(v.max()), 1e-8)
    while f(hi) > 0:
        hi *= 4.0
    return optimize.brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=1000)


# ----------------------------------------------------------------------------- ML / REML / EB
def _halve_into_range(t, adj):
    """metafor's step halving ``while (tau2 + adj < 0) adj <- adj / 2``, without the loop.

    Returns ``adj / 2^n`` for the smallest ``n >= 0`` with ``t + adj / 2^n >= 0`` (t >= 0).
    At ``t = 0`` a negative step halves until it underflows to ``-0.0`` (about 1075 halvings
    in R); that end point is set directly.  Otherwise the first ``n0 <= n`` halvings (from the
    binary exponents of ``adj`` and ``t``) are done at once by :func:`numpy.ldexp`, exact as
    long as the result stays a normal number (``n0`` is capped so that it does), and the rest
    one by one, so the result is bit for bit that of the loop.
    """
    neg = t + adj < 0
    if not neg.any():
        return adj
    adj = adj.copy()
    at0 = neg & (t <= 0)
    adj[at0] = -0.0
    rest = neg & ~at0
    if rest.any():
        ea = np.frexp(adj[rest])[1]
        n0 = np.minimum(ea - np.frexp(t[rest])[1] - 2, ea + 1021)  # 2**-1022: smallest normal
        adj[rest] = np.ldexp(adj[rest], -np.maximum(n0, 0))
        neg = t + adj < 0
        while neg.any():
            adj[neg] /= 2.0
            neg = t + adj < 0
    return adj


def _fisher(Y, V, mask, method, tol, maxiter):
    """metafor's Fisher scoring from the truncated HE start; returns tau2 and a convergence flag.

    Single-study rows are not iterated (tau2 = 0 by definition; their score step is 0/0).
    """
    tau2 = np.maximum(_he(Y, V, mask), 0.0)
    tau2 = np.where(np.isfinite(tau2), tau2, 0.0)
    active = mask.sum(axis=1) > 1
    for _ in range(maxiter):
        if active.all():  # every row iterates: no fancy indexing (the usual single-fit case)
            idx = slice(None)
            t = tau2
            Ya, Va, Ma = Y, V, mask
        else:
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            t = tau2[idx]
            Ya, Va, Ma = Y[idx], V[idx], mask[idx]
        adj = _score_step(Ya, Va, Ma, t, method)
        adj = np.where(np.isfinite(adj), adj, 0.0)
        adj = _halve_into_range(t, adj)  # keeps tau2 >= 0 as metafor
        new = t + adj
        tau2[idx] = new
        conv = np.abs(adj) <= tol * np.maximum(1.0, new)
        if isinstance(idx, slice):
            active = ~conv
        else:
            active[idx[conv]] = False
    done = ~active
    return tau2, done


def _score_and_slope(Y, V, mask, tau2, reml):
    """Score of the (restricted) log-likelihood (times 2) and its derivative, shapes (B,).

    ML: ``y'PPy - sum w`` and ``-2 y'PPPy + sum w^2``; REML: ``y'PPy - tr P`` and
    ``-2 y'PPPy + tr PP``, with ``Py = w e`` and ``y'PPPy = sum w r^2 - (sum w r)^2 / sum w``
    for ``r = w e``.
    """
    w, sw, _, e = _wsums(Y, V, mask, tau2)
    r = w * e
    yppy = (r * e * w).sum(axis=1)
    ypppy = (w * r * r).sum(axis=1) - (w * r).sum(axis=1) ** 2 / sw
    sw2 = (w * w).sum(axis=1)
    if reml:
        trp = sw - sw2 / sw
        trpp = sw2 - 2.0 * (w ** 3).sum(axis=1) / sw + (sw2 / sw) ** 2
        return yppy - trp, -2.0 * ypppy + trpp
    return yppy - sw, -2.0 * ypppy + sw2


def _loglik_grid(Y, V, mask, T2, reml):
    """:func:`_loglik` at every tau2 of ``T2`` (B, G) in one vectorised call, shape (B, G)."""
    M = mask[:, None, :]
    VT = V[:, None, :] + T2[:, :, None]
    w = np.where(M, 1.0 / VT, 0.0)
    sw = w.sum(axis=2)
    mu = (w * Y[:, None, :]).sum(axis=2) / sw
    e = np.where(M, Y[:, None, :] - mu[:, :, None], 0.0)
    k = mask.sum(axis=1)[:, None]
    logdet = np.where(M, np.log(VT), 0.0).sum(axis=2)
    rss = (w * e * e).sum(axis=2)
    if reml:
        return -0.5 * ((k - 1) * math.log(2 * math.pi) + logdet + np.log(sw) + rss)
    return -0.5 * (k * math.log(2 * math.pi) + logdet + rss)


def _ll_upper(Y, V, mask, reml):
    """An upper end of the search per row: the score is negative there (the maximum is below)."""
    k = mask.sum(axis=1)
    mean = (Y * mask).sum(axis=1) / k
    var = np.where(mask, (Y - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(k - 1, 1)
    hi = 10.0 * var + np.where(mask, V, 0.0).max(axis=1)
    for _ in range(200):
        up = _score_and_slope(Y, V, mask, hi, reml)[0] > 0
        if not up.any():
            break
        hi = np.where(up, hi * 4.0, hi)
    return hi


@functools.lru_cache(maxsize=8)
def _rel_grid(n_grid):
    """``{0} U geomspace(1e-10, 1, n_grid)`` (read-only; cached: geomspace costs ~50 us a call)."""
    rel = np.concatenate([[0.0], np.geomspace(1e-10, 1.0, n_grid)])
    rel.setflags(write=False)
    return rel


def _ll_grid_best(Y, V, mask, reml, n_grid):
    """Best point of a log-spaced grid ``{0} U geomspace(1e-10, 1, n_grid) * hi`` per row.

    Returns the relative grid, the upper end ``hi``, the index of the best grid point (the
    first one on ties; NaN likelihoods never win) and its log-likelihood, all per row.
    """
    hi = _ll_upper(Y, V, mask, reml)
    rel = _rel_grid(n_grid)
    ll = _loglik_grid(Y, V, mask, hi[:, None] * rel[None, :], reml)
    ll = np.where(np.isnan(ll), -np.inf, ll)
    best_j = np.argmax(ll, axis=1)
    best_ll = ll[np.arange(Y.shape[0]), best_j]
    return rel, hi, best_j, best_ll


def _ll_refine(Y, V, mask, reml, tol, maxiter, rel, hi, best_j):
    """Polish the best grid point by a bracketed Newton iteration on the score, per row.

    The bracket is the two grid neighbours of the best point; Newton steps that leave it are
    replaced by bisection.  Rows still unconverged are finished by
    :func:`scipy.optimize.brentq` on the score.
    """
    B = Y.shape[0]
    n_grid = rel.size - 1
    lo = rel[np.maximum(best_j - 1, 0)] * hi
    up_b = rel[np.minimum(best_j + 1, n_grid)] * hi
    x = rel[best_j] * hi
    s0 = _score_and_slope(Y, V, mask, np.zeros(B), reml)[0]
    at_zero = (best_j == 0) & (s0 <= 0)
    x = np.where(at_zero, 0.0, x)
    active = ~at_zero
    for _ in range(maxiter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        xi = x[idx]
        sc, sl = _score_and_slope(Y[idx], V[idx], mask[idx], xi, reml)
        lo[idx] = np.where(sc > 0, xi, lo[idx])
        up_b[idx] = np.where(sc > 0, up_b[idx], xi)
        with np.errstate(invalid="ignore", divide="ignore"):
            newton = xi - sc / sl
        ok = (sl < 0) & (newton > lo[idx]) & (newton < up_b[idx])
        nxt = np.where(ok, newton, 0.5 * (lo[idx] + up_b[idx]))
        x[idx] = nxt
        scale = tol * np.maximum(1.0, nxt)
        conv = (np.abs(nxt - xi) <= scale) | (up_b[idx] - lo[idx] <= scale) | (sc == 0)
        active[idx[conv]] = False
    for i in np.flatnonzero(active):  # pragma: no cover - safeguard, not reached in tests
        m = mask[i]

        def score(t, i=i, m=m):
            return float(_score_and_slope(Y[i, m][None], V[i, m][None], np.ones((1, m.sum()), bool),
                                          np.array([t]), reml)[0][0])

        if score(lo[i]) > 0 > score(up_b[i]):
            x[i] = optimize.brentq(score, lo[i], up_b[i], xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.maximum(x, 0.0)


def _ll_search(Y, V, mask, reml, tol, maxiter, n_grid=200):
    """Global maximiser of the (restricted) likelihood on [0, inf) for every row.

    A log-spaced grid (evaluated in one vectorised call) locates the best point; a bracketed
    Newton iteration on the score (bisection whenever Newton leaves the bracket) then polishes
    it, vectorised over rows (:func:`_ll_refine`).
    """
    rel, hi, best_j, _ = _ll_grid_best(Y, V, mask, reml, n_grid)
    return _ll_refine(Y, V, mask, reml, tol, maxiter, rel, hi, best_j)


def _tau2_core(Y, V, mask, method, tol=1e-12, maxiter=1000):
    """tau2 (B,) and a status code per row (see _OK, _FALLBACK, _TRUNC_LL0)."""
    B = Y.shape[0]
    k = mask.sum(axis=1)
    status = np.full(B, _OK)
    if method == "DL":
        tau2 = _dl(Y, V, mask)
    elif method == "HE":
        tau2 = _he(Y, V, mask)
    elif method == "HS":
        tau2 = _hs(Y, V, mask)
    elif method == "SJ":
        tau2 = _sj(Y, V, mask)
    elif method in ("PM", "EB"):
        tau2, ok = q_root(Y, V, mask, k - 1.0, tol=tol, maxiter=maxiter)
        status[~ok] = _FALLBACK
    else:  # ML, REML
        tau2, ok = _fisher(Y, V, mask, method, tol, min(maxiter, FISHER_MAXITER))
        reml = method == "REML"
        bad = np.flatnonzero(~ok & (k > 1))
        if bad.size:
            tau2[bad] = _ll_search(Y[bad], V[bad], mask[bad], reml, tol, maxiter)
            status[bad] = _FALLBACK
        # metafor's ll0check: a stationary point below the likelihood at tau2 = 0 is discarded
        sel = (tau2 > 0) & (k > 1)
        if sel.any():
            idx = np.flatnonzero(sel)
            n = idx.size
            both = np.concatenate([idx, idx])  # ll at tau2 and at 0 in one call
            ll_both = _loglik(Y[both], V[both], mask[both], np.concatenate([tau2[idx], np.zeros(n)]), reml)
            ll, ll0 = ll_both[:n], ll_both[n:]
            worse = ll0 - ll > 1e-12 * np.maximum(1.0, np.abs(ll))
            tau2[idx[worse]] = 0.0
            # only worth a note when the discarded value is not numerically zero
            status[idx[worse & (ll0 - ll > 1e-8)]] = _TRUNC_LL0
    tau2 = np.where(k <= 1, 0.0, tau2)
    tau2 = np.where(np.isfinite(tau2), np.maximum(tau2, 0.0), 0.0)
    return tau2, status


def _higher_maximum(Y, V, mask, tau2, reml, tol, maxiter, n_grid=50):
    """A tau2 with a higher (restricted) likelihood than the Fisher-scoring ``tau2`` (one row).

    The likelihood is evaluated on the grid of :func:`_ll_grid_best` in one vectorised call.
    When no grid point beats ``tau2`` and the best grid point's bracket (its two neighbours)
    contains ``tau2``, the grid agrees with Fisher scoring and ``None`` is returned without
    further work; otherwise the best grid point is polished (:func:`_ll_refine`) and returned
    if its likelihood exceeds that at ``tau2`` by more than ``1e-9 max(1, |ll|)``.
    """
    ll_here = _loglik(Y, V, mask, tau2, reml)[0]
    thr = 1e-9 * max(1.0, abs(ll_here))
    rel, hi, best_j, best_ll = _ll_grid_best(Y, V, mask, reml, n_grid)
    j = int(best_j[0])
    lo, up = rel[max(j - 1, 0)] * hi[0], rel[min(j + 1, n_grid)] * hi[0]
    if best_ll[0] - ll_here <= thr and lo <= tau2[0] <= up:
        return None
    best = _ll_refine(Y, V, mask, reml, tol, maxiter, rel, hi, best_j)
    if _loglik(Y, V, mask, best, reml)[0] - ll_here > thr:
        return float(best[0])
    return None


# ----------------------------------------------------------------------------- public API
def estimate_tau2_batch(Y, V, mask=None, method="REML", *, tol=1e-12, maxiter=1000):
    """Estimate tau² for B meta-analyses at once.

    Parameters
    ----------
    Y, V : array_like, shape (B, k)
        Effect sizes and sampling variances; entries where ``mask`` is False are ignored
        (they may hold anything, e.g. zeros).
    mask : array_like of bool, shape (B, k), optional
        Which entries are studies (ragged k); all True by default.
    method : str
        One of ``DL, REML, ML, PM, HE, SJ, EB, HS`` (metafor ``rma.uni`` definitions).
    tol, maxiter : float, int
        Convergence tolerance (on the change of tau², relative to ``max(1, tau2)``) and the
        iteration limit of the iterative estimators.

    Returns
    -------
    ndarray, shape (B,)
        tau² estimates, truncated at 0 (0 where k = 1).

    Notes
    -----
    Validated against R metafor 3.8-1 ``rma.uni`` (tests/test_tau2.py). All rows iterate
    together with per-row convergence; rows where Fisher scoring fails fall back to a
    bounded scalar search (see :func:`estimate_tau2`).
    """
    Y, V, mask = _as_batch(Y, V, mask)
    return _tau2_core(Y, V, mask, _check_method(method), tol, maxiter)[0]


def estimate_tau2(yi, vi, method="REML", *, tol=1e-12, maxiter=1000):
    """Estimate the between-study variance tau² of one meta-analysis.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and their sampling variances (> 0).
    method : str
        ``DL``, ``REML``, ``ML``, ``PM``, ``HE``, ``SJ``, ``EB`` or ``HS`` as in R metafor
        ``rma.uni`` (see the module docstring for definitions and references).
    tol, maxiter : float, int
        Convergence criterion and iteration limit of the iterative estimators.

    Returns
    -------
    tau2 : float
        The estimate, truncated at 0.
    notes : tuple of str
        What happened, e.g. that Fisher scoring did not converge and the maximum was found
        by a bounded search, or that the estimate was truncated at 0.

    Notes
    -----
    Validated against R metafor 3.8-1 (``rma(yi, vi, method=...)``) to 1e-8 for the closed
    forms and 1e-6 for the iterative estimators (tests/test_metafor_conformance.py).
    """
    yi = np.asarray(yi, dtype=float).ravel()
    vi = np.asarray(vi, dtype=float).ravel()
    method = _check_method(method)
    Y, V, mask = _as_batch(yi[None], vi[None])
    return _estimate_one(Y, V, mask, method, tol, maxiter)


def _estimate_one(Y, V, mask, method, tol=1e-12, maxiter=1000):
    """:func:`estimate_tau2` for validated (1, k) arrays and a checked method name."""
    tau2, status = _tau2_core(Y, V, mask, method, tol, maxiter)
    notes = []
    k = Y.shape[1]
    if k == 1:
        notes.append("k = 1: tau2 set to 0")
    elif status[0] == _FALLBACK:
        if method in ("ML", "REML"):
            notes.append(f"{method}: Fisher scoring did not converge in "
                         f"{min(maxiter, FISHER_MAXITER)} iterations; maximum of the likelihood "
                         "found by a bounded search (grid + bracketed Newton on the score)")
        else:
            notes.append(f"{method}: Newton iteration did not converge; root of Q(tau2) = k - 1 "
                         "found by scipy brentq")
    elif status[0] == _TRUNC_LL0:
        notes.append(f"{method}: Fisher scoring stopped at a stationary point with lower likelihood "
                     "than tau2 = 0; tau2 set to 0 (as metafor)")
    if method in ("ML", "REML") and k > 1 and status[0] != _FALLBACK:
        better = _higher_maximum(Y, V, mask, tau2, method == "REML", tol, maxiter)
        if better is not None:
            notes.append(f"{method}: the likelihood has a higher maximum at tau2 = {better:.6g} "
                         f"than at the Fisher-scoring solution tau2 = {tau2[0]:.6g} returned here "
                         "(as metafor); check the profile likelihood")
    if k > 1 and tau2[0] == 0.0 and status[0] != _TRUNC_LL0:
        raw = {"DL": _dl, "HE": _he, "HS": _hs}.get(method)
        if raw is not None and raw(Y, V, mask)[0] < 0:
            notes.append(f"{method}: negative estimate truncated at tau2 = 0")
    return float(tau2[0]), tuple(notes)


def _chi2_quantiles(alpha, df):
    """``chi2.isf(alpha/2, df)`` and ``chi2.ppf(alpha/2, df)`` (the functions scipy.stats calls).

    Calling :mod:`scipy.special` directly gives the same numbers without the per-call
    overhead of the ``scipy.stats`` distribution machinery (about 0.1 ms each).
    """
    df = np.asarray(df, dtype=float)
    return special.chdtri(df, alpha / 2), 2.0 * special.gammaincinv(df / 2, alpha / 2)


def _qprofile_core(Y, V, mask, level, tol, maxiter):
    """Q-profile bounds (lb, ub) of validated (B, k) arrays; both bounds in one :func:`q_root`."""
    B = Y.shape[0]
    df = np.maximum(mask.sum(axis=1) - 1, 1)
    crit_u, crit_l = _chi2_quantiles(1.0 - level, df)  # lb solves Q = crit_u, ub solves Q = crit_l
    both, _ = q_root(np.concatenate([Y, Y]), np.concatenate([V, V]), np.concatenate([mask, mask]),
                     np.concatenate([crit_u, crit_l]), tol=tol, maxiter=maxiter)
    return both[:B], both[B:]


def qprofile_ci_batch(Y, V, mask=None, level=0.95, *, tau2_max=None, tol=1e-12, maxiter=200):
    """Q-profile confidence bounds for tau² of B meta-analyses, arrays (lb, ub) of shape (B,).

    See :func:`qprofile_ci`; ``tau2_max`` may be an array (B,); rows with k < 2 get NaN.
    """
    Y, V, mask = _as_batch(Y, V, mask)
    k = mask.sum(axis=1)
    lb, ub = _qprofile_core(Y, V, mask, level, tol, maxiter)
    if tau2_max is not None:  # metafor: a bound beyond tau2.max is reported as tau2.max
        lb = np.minimum(lb, tau2_max)
        ub = np.minimum(ub, tau2_max)
    lb = np.where(k >= 2, lb, np.nan)
    ub = np.where(k >= 2, ub, np.nan)
    return lb, ub


def metafor_tau2_max(tau2):
    """metafor's default search limit of ``confint.rma.uni``: ``max(100, 10 tau2)``."""
    return np.maximum(100.0, 10.0 * np.asarray(tau2, dtype=float))


def qprofile_ci(yi, vi, level=0.95, *, tau2_max=None, tol=1e-12, maxiter=200):
    """Q-profile confidence interval for tau² (Viechtbauer 2007).

    The bounds solve ``Q(tau2) = chi2_{1-alpha/2, k-1}`` (lower) and
    ``Q(tau2) = chi2_{alpha/2, k-1}`` (upper), where ``Q(tau2)`` is the generalised Q
    statistic with random-effects weights ``1/(v_i + tau2)``.  As in metafor's
    ``confint.rma.uni``: a bound whose equation has no non-negative root is set to 0, so
    when ``Q(0)`` is below the lower chi² quantile the whole interval is ``[0, 0]``.
    metafor searches only up to ``tau2.max = max(100, 10 tau2)`` and reports a bound beyond
    it as ``tau2.max``; pass ``tau2_max=metafor_tau2_max(tau2)`` for that convention (what
    :func:`metapool.models.fit` does); by default the search is not capped.

    Parameters
    ----------
    yi, vi : array_like, shape (k,) or (B, k)
        Effect sizes and sampling variances; 2-D input is treated as B meta-analyses.
    level : float
        Confidence level.
    tau2_max : float or array_like, optional
        Upper limit of the search (bounds beyond it are reported as ``tau2_max``).

    Returns
    -------
    (lb, ub) : floats, or ndarrays of shape (B,) for 2-D input; NaN when k < 2.

    Notes
    -----
    Validated against R metafor 3.8-1 ``confint(rma(...))`` (tests/test_tau2.py and the
    conformance suite).
    """
    yi = np.asarray(yi, dtype=float)
    if yi.ndim == 2:
        return qprofile_ci_batch(yi, vi, None, level, tau2_max=tau2_max, tol=tol, maxiter=maxiter)
    lb, ub = qprofile_ci_batch(yi[None], np.asarray(vi, dtype=float)[None], None, level,
                               tau2_max=tau2_max, tol=tol, maxiter=maxiter)
    return float(lb[0]), float(ub[0])
