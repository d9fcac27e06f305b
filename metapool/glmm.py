"""Binomial-normal random-effects model for single-arm proportions (GLMM, logit link).

The model (Hamza, van Houwelingen & Stijnen 2008; Stijnen, Hamza & Ozdemir 2010) is

    x_i ~ Binomial(n_i, expit(mu + tau u_i)),    u_i ~ N(0, 1),

fitted by maximum likelihood.  It uses the exact binomial likelihood of each study, so it needs
no continuity correction for studies with 0 or n_i events.  The marginal likelihood of a study,
``int Bin(x_i | n_i, expit(mu + tau u)) phi(u) du``, is approximated by adaptive Gauss-Hermite
quadrature centred at the conditional mode of ``u_i`` (``nagq = 1`` is the Laplace approximation),
exactly as ``lme4::glmer(cbind(x, n - x) ~ 1 + (1 | study), family = binomial, nAGQ = nagq)``,
which is what R metafor's ``rma.glmm(measure = "PLO")`` calls (with ``nAGQ = 7`` by default).
The standard error of ``mu`` comes from the observed information of (tau, mu), as lme4's
``vcov()`` does (Hessian of the deviance; ``2 H^-1``).

Everything is vectorised over studies: the conditional modes are found by a Newton iteration on
all studies at once, and the quadrature is an array operation (studies x nodes).

Validated against R metafor 3.8-1 ``rma.glmm(measure = "PLO", xi, ni)`` (lme4 1.1-31) in
``tests/metafor_cases_bias.json`` (cases with ``method == "GLMM"``) and ``pritz1997_PLO_GLMM`` in
``tests/metafor_cases.json``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from . import dist

from .results import MetaResult

__all__ = ["GLMMError", "glmm_proportion", "glmm_loglik"]


class GLMMError(RuntimeError):
    """The binomial-normal model cannot be fitted; the message says why."""


def _gh_rule(nagq: int):
    """Gauss-Hermite nodes and weights for the standard normal density (weights sum to 1)."""
    if nagq == 1:
        return np.zeros(1), np.ones(1)
    z, w = np.polynomial.hermite_e.hermegauss(nagq)
    return z, w / math.sqrt(2 * math.pi)


def _binom_logpmf(x, n, eta):
    """log Bin(x | n, expit(eta)) for arrays (stable for large |eta|)."""
    return (special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
            + x * eta - n * np.logaddexp(0.0, eta))


def _conditional_modes(x, n, mu, tau, maxiter=100):
    """Mode of ``log Bin(x | n, expit(mu + tau u)) - u^2/2`` for every study (Newton, vectorised).

    The target is strictly concave in u, so Newton's method with step halving converges from 0.
    Returns the modes and the curvature ``n p (1 - p) tau^2 + 1`` at the mode.
    """
    u = np.zeros_like(x, dtype=float)

    def g(u):
        eta = mu + tau * u
        return x * eta - n * np.logaddexp(0.0, eta) - 0.5 * u * u

    gu = g(u)
    for _ in range(maxiter):
        p = special.expit(mu + tau * u)
        grad = tau * (x - n * p) - u
        curv = n * p * (1 - p) * tau * tau + 1.0
        step = grad / curv
        new = u + step
        gnew = g(new)
        # step halving where the objective did not increase (rarely needed: strictly concave)
        for _ in range(30):
            bad = gnew < gu - 1e-12 * (1 + np.abs(gu))
            if not bad.any():
                break
            step = np.where(bad, step / 2, step)
            new = u + step
            gnew = g(new)
        u, gu = new, gnew
        if np.all(np.abs(step) <= 1e-13 * (1 + np.abs(u))):
            break
    p = special.expit(mu + tau * u)
    return u, n * p * (1 - p) * tau * tau + 1.0


def glmm_loglik(mu, tau, events, total, nagq=7):
    """Marginal log-likelihood of the binomial-normal model by adaptive Gauss-Hermite quadrature.

    Parameters
    ----------
    mu, tau : float
        Mean logit and between-study standard deviation (the likelihood is even in ``tau``).
    events, total : array_like
        Events and totals per study.
    nagq : int
        Number of quadrature points (1 = Laplace approximation).

    Returns
    -------
    float
        The log-likelihood including the binomial coefficients (metafor's ``logLik``).
    """
    x = np.asarray(events, dtype=float)
    n = np.asarray(total, dtype=float)
    z, w = _gh_rule(nagq)
    u, curv = _conditional_modes(x, n, mu, tau)
    sd = 1.0 / np.sqrt(curv)
    uu = u[:, None] + sd[:, None] * z[None, :]
    # integrand f(x|u) phi(u), divided by the standard normal density phi(z) of the rule
    log_terms = (_binom_logpmf(x[:, None], n[:, None], mu + tau * uu) - 0.5 * uu * uu
                 + 0.5 * z[None, :] ** 2 + np.log(w)[None, :])
    return float(np.sum(np.log(sd) + special.logsumexp(log_terms, axis=1)))


def _check_inputs(events, total):
    x = np.asarray(events, dtype=float)
    n = np.asarray(total, dtype=float)
    if x.ndim != 1 or x.shape != n.shape:
        raise GLMMError("events and total must be 1-d sequences of the same length")
    if not (np.isfinite(x).all() and np.isfinite(n).all()):
        raise GLMMError("events and total must be finite numbers")
    if (x < 0).any() or (n <= 0).any() or (x > n).any():
        raise GLMMError("need 0 <= events <= total and total > 0 in every study")
    if not (np.allclose(x, np.round(x)) and np.allclose(n, np.round(n))):
        raise GLMMError("events and total must be whole numbers (counts)")
    k = x.size
    if k < 2:
        raise GLMMError(f"k = {k}: the binomial-normal model needs at least 2 studies")
    if (x == 0).all():
        raise GLMMError("no study has any event: the maximum-likelihood logit is -infinity")
    if (x == n).all():
        raise GLMMError("every participant had the event in every study: "
                        "the maximum-likelihood logit is +infinity")
    return np.round(x), np.round(n)


def _fd_hessian(f, theta, h=1e-4):
    """Central finite-difference Hessian (step ``h`` as lme4's ``deriv12``)."""
    m = theta.size
    H = np.empty((m, m))
    f0 = f(theta)
    for i in range(m):
        ei = np.zeros(m)
        ei[i] = h
        H[i, i] = (f(theta + ei) - 2 * f0 + f(theta - ei)) / h**2
        for j in range(i):
            ej = np.zeros(m)
            ej[j] = h
            H[i, j] = H[j, i] = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej)
                                 + f(theta - ei - ej)) / (4 * h * h)
    return H


def _maximise(x, n, nagq, tol):
    """ML estimates (tau >= 0, mu) and the negative log-likelihood function."""

    def nll(theta):
        return -glmm_loglik(theta[1], theta[0], x, n, nagq)

    p0 = (x.sum() + 0.5) / (n.sum() + 1.0)
    start = np.array([0.5, math.log(p0 / (1 - p0))])
    # the likelihood is even in tau, so tau is optimised unconstrained and reported as |tau|;
    # BFGS gets close, Nelder-Mead is the fallback, a Newton polish below gives full precision
    from scipy import optimize          # imported here: a job without a GLMM fit does not pay for it

    best = optimize.minimize(nll, start, method="BFGS", options={"gtol": 1e-7, "maxiter": 500})
    if not (best.success and np.isfinite(best.fun)):
        nm = optimize.minimize(nll, best.x if np.all(np.isfinite(best.x)) else start,
                               method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12,
                                                              "maxiter": 4000})
        if np.isfinite(nm.fun) and not nm.fun > best.fun:
            best = nm
    if not (np.isfinite(best.fun) and np.all(np.isfinite(best.x))):
        raise GLMMError("the likelihood maximisation failed (non-finite likelihood)")
    theta = np.array([abs(best.x[0]), best.x[1]])
    # Newton polish on the smooth likelihood: finite-difference gradient and Hessian
    converged = False
    for _ in range(50):
        H = _fd_hessian(nll, theta)
        g = np.array([(nll(theta + e) - nll(theta - e)) / 2e-6 for e in np.eye(2) * 1e-6])
        if theta[0] < 1e-6:
            # at the boundary tau = 0 the likelihood is flat in tau to first order: only mu moves
            g[0] = 0.0
            step = np.array([0.0, g[1] / H[1, 1]]) if H[1, 1] > 0 else np.zeros(2)
        else:
            try:
                step = np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.linalg.eigvalsh(H) > 0):
                break
        new = theta - step
        if nll(np.array([abs(new[0]), new[1]])) > nll(theta) + 1e-12:
            break
        theta = np.array([abs(new[0]), new[1]])
        if np.all(np.abs(step) < tol * (1 + np.abs(theta))):
            converged = True
            break
    grad = np.array([(nll(theta + e) - nll(theta - e)) / 2e-6 for e in np.eye(2) * 1e-6])
    if theta[0] < 1e-6:
        grad[0] = 0.0      # even in tau: the tau-derivative vanishes at the boundary
    grad_norm = float(np.max(np.abs(grad)))
    if not converged and grad_norm > 1e-5:
        raise GLMMError(f"the likelihood maximisation did not converge (gradient {grad_norm:.2g})")
    if abs(theta[1]) > 30:
        raise GLMMError(f"the estimated logit {theta[1]:.3g} diverges: the events are too close "
                        "to 0 or to the totals for a finite maximum-likelihood estimate")
    return theta, nll


def _plo_effects(x, n):
    """Per-study logits and variances as metafor's escalc(PLO, add = 1/2, to = "only0")."""
    from .effects import escalc

    es = escalc("PLO", dict({"study": [str(i + 1) for i in range(x.size)],
                                     "events": x, "total": n}))
    return np.asarray(es.yi, float), np.asarray(es.vi, float)


def _lrt_heterogeneity(x, n):
    """Likelihood-ratio test of the fixed-effect (common p) against the saturated binomial model."""
    p_fe = x.sum() / n.sum()
    ll_fe = np.sum(dist.binom_logpmf(x, n, p_fe))
    ll_sat = np.sum(dist.binom_logpmf(x, n, x / n))
    q = max(0.0, float(-2 * (ll_fe - ll_sat)))
    df = x.size - 1
    return q, float(df), float(dist.chi2_sf(q, df)), float(ll_sat)


def glmm_proportion(events, total, *, level=0.95, nagq=7, study=None, tol=1e-10) -> MetaResult:
    """Fit the binomial-normal random-effects model for proportions (logit link, ML).

    Parameters
    ----------
    events, total : array_like
        Number of events and participants per study (counts; 0 and ``total`` are allowed).
    level : float
        Confidence level of the Wald CI of the pooled logit.
    nagq : int
        Adaptive Gauss-Hermite quadrature points; 7 is metafor's default (``rma.glmm(nAGQ = 7)``),
        1 is the Laplace approximation (``glmer``'s default).
    study : sequence of str, optional
        Study labels.
    tol : float
        Relative convergence tolerance on (tau, mu).

    Returns
    -------
    MetaResult
        ``method="GLMM"``, ``measure="PLO"``; ``estimate``/``se``/``ci`` of the mean logit
        (normal inference), ``tau2`` the ML between-study variance of the logits, ``I2``/``H2``
        with metafor's typical within-study variance, ``Q`` the likelihood-ratio test against
        the saturated model (metafor's ``QE.LRT``).  ``yi``/``vi`` are the escalc logits (with
        the 0.5 correction only for display; the fit itself uses the exact counts); ``weights``
        are NaN (the model has no inverse-variance weights).

    Raises
    ------
    GLMMError
        When the model cannot be fitted (k < 2, all studies with 0 events or all with
        ``total`` events, invalid counts, non-convergence).

    Notes
    -----
    Validated against R metafor 3.8-1 ``rma.glmm(measure = "PLO", xi, ni, nAGQ)`` with lme4
    1.1-31 (``tests/test_glmm.py``): estimate, se, CI, tau², I², QE.LRT, logLik.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if int(nagq) != nagq or nagq < 1:
        raise ValueError(f"nagq must be a positive integer, got {nagq}")
    x, n = _check_inputs(events, total)
    k = x.size
    study = tuple(str(s) for s in study) if study is not None else tuple(str(i + 1) for i in range(k))
    if len(study) != k:
        raise GLMMError(f"{len(study)} study labels for {k} studies")
    theta, nll = _maximise(x, n, int(nagq), tol)
    tau, mu = float(theta[0]), float(theta[1])
    approx = ("Laplace approximation" if nagq == 1
              else f"adaptive Gauss-Hermite quadrature, {nagq} points")
    notes = [f"binomial-normal model (logit link), maximum likelihood; {approx}"]
    H = _fd_hessian(nll, theta)
    if tau < 1e-4 or not np.all(np.linalg.eigvalsh(H) > 0):
        # the tau-mu cross derivative vanishes at tau = 0 (the likelihood is even in tau)
        var_mu = 1.0 / H[1, 1]
        if tau < 1e-4:
            notes.append("tau2 estimated at the boundary 0")
    else:
        var_mu = float(np.linalg.inv(H)[1, 1])
    if not (np.isfinite(var_mu) and var_mu > 0):
        raise GLMMError("the information matrix is not positive definite; no standard error")
    se = math.sqrt(var_mu)
    zcrit = dist.norm_ppf(0.5 + level / 2)
    zval = mu / se
    yi, vi = _plo_effects(x, n)
    w = 1.0 / vi
    s2 = (k - 1) / (w.sum() - (w**2).sum() / w.sum())
    tau2 = tau * tau
    q, qdf, qp, _ = _lrt_heterogeneity(x, n)
    notes.append("heterogeneity test: likelihood ratio against the saturated model (metafor QE.LRT)")
    return MetaResult(
        measure="PLO", method="GLMM", test="z", level=level, study=study, yi=yi, vi=vi,
        weights=np.full(k, math.nan), k=k, estimate=mu, se=se, stat=zval,
        pval=float(2 * dist.norm_sf(abs(zval))), ci_lb=mu - zcrit * se, ci_ub=mu + zcrit * se,
        pi_lb=mu - zcrit * math.sqrt(var_mu + tau2), pi_ub=mu + zcrit * math.sqrt(var_mu + tau2),
        tau2=tau2, I2=100 * tau2 / (s2 + tau2), H2=tau2 / s2 + 1, Q=q, Q_df=qdf, Q_pval=qp,
        ni=n, notes=tuple(notes))
