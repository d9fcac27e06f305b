"""Binomial-normal GLMM for proportions against R metafor 3.8-1 rma.glmm (lme4 1.1-31).

Reference cases: tests/metafor_cases_bias.json (method GLMM, made by tests/make_bias_cases.R) and
``pritz1997_PLO_GLMM`` in tests/metafor_cases.json.  Tolerances:

* ``*_tight`` cases (glmer run with bobyqa, rhoend 1e-12): 1e-6 relative, as for the other
  iterative estimators.
* cases with metafor's default settings: glmer's default Nelder-Mead stage stops ~1e-5 (relative)
  short of the maximum, so they are compared at 5e-5 and we check that our estimate has the
  higher likelihood.
* the Laplace (nAGQ = 1) standard error at 1e-3: lme4 differentiates its own stage-2 Laplace
  deviance function, which agrees with the Laplace approximation at the optimum (estimates match
  to 1e-7) but not exactly away from it.
"""
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from conftest import TESTS, assert_close, cases_where, load_cases
from metapool.glmm import GLMMError, glmm_loglik, glmm_proportion

BIAS_FILE = TESTS / "metafor_cases_bias.json"
CASES = cases_where(lambda c: c["method"] == "GLMM", BIAS_FILE)


def _counts(case):
    return ([r["events"] for r in case["rows"]], [r["total"] for r in case["rows"]],
            [r["study"] for r in case["rows"]])


@pytest.mark.parametrize("case", CASES)
def test_glmm_against_metafor(case):
    e = case["expected"]
    x, n, study = _counts(case)
    r = glmm_proportion(x, n, nagq=e["nAGQ"], study=study)
    tight = e["settings"] == "tight"
    rel = 1e-6 if tight else 5e-5
    assert r.k == e["k"] and r.method == "GLMM" and r.measure == "PLO"
    rel_se = rel if e["nAGQ"] > 1 else 1e-3      # se and everything built on it
    assert_close(r.estimate, e["estimate"], rel=rel, what="estimate")
    for key in ("se", "ci_lb", "ci_ub"):
        assert_close(getattr(r, key), e[key], rel=rel_se, what=key)
    assert_close(r.tau2, e["tau2"], rel=rel if tight else 5e-5, abs_=1e-10, what="tau2")
    assert_close(r.I2, e["I2"], rel=rel, abs_=1e-8, what="I2")
    assert_close(r.Q, e["QE_LRT"], rel=1e-8, what="QE.LRT")
    assert_close(r.Q_pval, e["QEp_LRT"], rel=1e-8, what="QEp.LRT")
    back = r.reporting()
    for key in ("estimate", "ci_lb", "ci_ub"):
        assert_close(back[key], e["back"][key], rel=rel if key == "estimate" else rel_se,
                     what=f"back {key}")
    if not tight:
        at_ref = glmm_loglik(e["estimate"], math.sqrt(e["tau2"]), x, n, e["nAGQ"])
        ours = glmm_loglik(r.estimate, math.sqrt(r.tau2), x, n, e["nAGQ"])
        assert ours >= at_ref - 1e-12


def test_shared_reference_case():
    """pritz1997_PLO_GLMM of tests/metafor_cases.json (metafor defaults: nAGQ = 7)."""
    case = next(c for c in load_cases() if c["case"] == "pritz1997_PLO_GLMM")
    e = case["expected"]
    x, n, _ = _counts(case)
    r = glmm_proportion(x, n)
    assert r.k == e["k"]
    for key in ("estimate", "se", "ci_lb", "ci_ub", "tau2"):
        assert_close(getattr(r, key), e[key], rel=5e-5, what=key)
    for key, val in e["back"].items():
        assert_close(r.reporting()[key], val, rel=5e-5, what=f"back {key}")


def test_tau2_zero_boundary():
    case = next(c.values[0] for c in CASES if c.values[0]["case"].startswith("homog_demo"))
    x, n, _ = _counts(case)
    r = glmm_proportion(x, n)
    assert r.tau2 < 1e-12 and r.I2 < 1e-9
    assert any("boundary" in s for s in r.notes)
    # at tau2 = 0 the model is the common-proportion logistic model: se = 1/sqrt(sum n p (1-p))
    p = special.expit(r.estimate)
    assert r.se == pytest.approx(1 / math.sqrt(np.sum(np.asarray(n) * p * (1 - p))), rel=1e-6)
    assert r.estimate == pytest.approx(special.logit(sum(x) / sum(n)), rel=1e-8)


def test_quadrature_converges_to_the_integral():
    """AGQ with many nodes equals the marginal likelihood computed by numerical integration."""
    x, n = np.array([3, 0, 12, 7]), np.array([20, 15, 30, 9])
    mu, tau = -0.4, 0.9

    def study(xi, ni):
        f = lambda u: stats.binom.pmf(xi, ni, special.expit(mu + tau * u)) * stats.norm.pdf(u)
        return integrate.quad(f, -12, 12, epsabs=0, epsrel=1e-12)[0]

    exact = sum(math.log(study(a, b)) for a, b in zip(x, n))
    assert glmm_loglik(mu, tau, x, n, nagq=25) == pytest.approx(exact, rel=1e-10)
    assert abs(glmm_loglik(mu, tau, x, n, nagq=1) - exact) < 0.05       # Laplace: close, not exact
    assert glmm_loglik(mu, tau, x, n, 7) == pytest.approx(glmm_loglik(mu, -tau, x, n, 7), rel=1e-14)


@pytest.mark.parametrize("x,n,msg", [
    ([3], [10], "at least 2"),
    ([0, 0, 0], [10, 12, 9], "no study has any event"),
    ([10, 12], [10, 12], "every participant"),
    ([11, 2], [10, 12], "0 <= events <= total"),
    ([1.5, 2], [10, 12], "whole numbers"),
])
def test_glmm_errors_say_why(x, n, msg):
    with pytest.raises(GLMMError, match=msg):
        glmm_proportion(x, n)


def test_zero_event_studies_need_no_correction():
    """Studies with 0 events enter with their exact likelihood; the fit is finite and sensible."""
    r = glmm_proportion([0, 1, 0, 3, 2], [20, 25, 18, 30, 22])
    assert np.isfinite([r.estimate, r.se, r.tau2]).all()
    assert 0 < r.reporting()["estimate"] < 0.1
    assert np.isnan(r.weights).all()
    assert r.to_dict()["method"] == "GLMM"
