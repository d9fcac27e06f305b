"""Small-study-effect tests against R metafor 3.8-1 (regtest, ranktest, trimfill).

Reference cases: tests/metafor_cases_bias.json (tests/make_bias_cases.R) and the ``bias`` cases of
tests/metafor_cases.json.  Closed-form quantities are compared at 1e-8, quantities that involve an
iterative tau² estimate (REML meta-regressions and fits) at 1e-6.
"""
import numpy as np
import pytest

from conftest import TESTS, assert_close, cases_where
from metapool import bias

BIAS_FILE = TESTS / "metafor_cases_bias.json"
NEW = cases_where(lambda c: c["method"] == "bias", BIAS_FILE)
OLD = cases_where(lambda c: c["method"] == "bias")

REG_TESTS = {  # key -> (predictor, model, method)
    "egger_lm": ("sei", "lm", "FE"), "egger_rma_FE": ("sei", "rma", "FE"),
    "egger_rma_REML": ("sei", "rma", "REML"), "peters_lm": ("ninv", "lm", "FE"),
    "peters_rma_FE": ("ninv", "rma", "FE"), "peters_rma_REML": ("ninv", "rma", "REML"),
}


def _rel(method):
    return 1e-8 if method in ("FE", "WLS") else 1e-6


# every (case, test) pair metafor computed (Peters' test needs sample sizes, which GEN cases lack)
REG_PAIRS = [pytest.param(c.values[0], key, id=f"{c.id}-{key}") for c in NEW for key in sorted(REG_TESTS)
             if key in c.values[0]["expected"]]


@pytest.mark.parametrize("case, key", REG_PAIRS)
def test_regression_tests(case, key):
    e = case["expected"]
    pred, model, method = REG_TESTS[key]
    if pred == "sei":
        r = bias.egger_test(e["yi"], e["vi"], model=model, method=method)
    else:
        r = bias.peters_test(e["yi"], e["vi"], e["ni"], model=model, method=method)
    x = e[key]
    rel = _rel(method)
    for ours, theirs in [("stat", "stat"), ("pval", "pval"), ("estimate", "estimate"), ("ci_lb", "ci_lb"),
                         ("ci_ub", "ci_ub"), ("slope", "slope"), ("slope_se", "slope_se")]:
        assert_close(getattr(r, ours), x.get(theirs), rel=rel, what=f"{key} {ours}")
    if model == "lm":
        assert r.df == x["df"] == len(e["yi"]) - 2
    else:
        assert_close(r.tau2, x["tau2"], rel=1e-6, abs_=1e-10, what=f"{key} tau2")
    assert (r.power_note is not None) == (len(e["yi"]) < 10)


@pytest.mark.parametrize("case", NEW)
def test_begg(case):
    e = case["expected"]
    r = bias.begg_test(e["yi"], e["vi"])
    assert_close(r.tau, e["begg"]["tau"], rel=1e-8, what="tau")
    assert_close(r.pval, e["begg"]["pval"], rel=1e-8, what="pval")
    # tied variances (ties_demo, PFT with equal n): R falls back to the normal approximation
    assert r.exact == (np.unique(e["vi"]).size == len(e["vi"]))


def _trimfill_params():
    out = []
    for p in NEW:
        case = p.values[0]
        for t in case["expected"]["trimfill"]:
            tid = f"{case['case']}-{t['fit']}-{t['estimator']}-{t['side_arg'] or 'auto'}"
            out.append(pytest.param(case, t, id=tid))
    return out


@pytest.mark.parametrize("case,t", _trimfill_params())
def test_trim_and_fill(case, t):
    e = case["expected"]
    r = bias.trim_and_fill(e["yi"], e["vi"], estimator=t["estimator"], side=t["side_arg"],
                           method=t["fit"], measure=case["measure"], ni=e.get("ni"))
    assert r.side == t["side"]
    assert r.side_chosen == ("auto" if t["side_arg"] is None else "given")
    assert r.k0 == t["k0"]
    assert r.fit.k == t["k"] == len(e["yi"]) + r.k0
    assert list(r.filled) == t["fill"]
    rel = _rel(t["fit"])
    assert_close(r.yi, t["yi"], rel=rel, what="filled yi")
    assert_close(r.vi, t["vi"], rel=1e-12, what="filled vi")
    for key in ("estimate", "se", "stat", "pval", "ci_lb", "ci_ub"):
        assert_close(getattr(r.fit, key), t[key], rel=rel, what=key)
    if t["fit"] != "FE":
        assert_close(r.fit.tau2, t["tau2"], rel=1e-6, abs_=1e-10, what="tau2")
    assert_close(r.se_k0, t["se_k0"], rel=1e-8, what="se_k0")
    assert_close(r.p_k0, t["p_k0"], rel=1e-12, what="p_k0")
    d = r.to_dict()
    assert d["k0"] == r.k0 and d["fit"]["k"] == r.fit.k and sum(d["filled"]) == r.k0


@pytest.mark.parametrize("case", OLD)
def test_shared_reference_bias_cases(case):
    """The bias cases of tests/metafor_cases.json (egger_lm, begg, trimfill_FE)."""
    from metapool.effects import escalc
    from conftest import rows_frame

    es = escalc(case["measure"], rows_frame(case))
    e = case["expected"]
    eg = bias.egger_test(es.yi, es.vi, model="lm")
    assert_close(eg.estimate, e["egger_lm"]["intercept"], rel=1e-8, what="egger intercept")
    assert_close(eg.stat, e["egger_lm"]["stat"], rel=1e-8, what="egger t")
    assert_close(eg.pval, e["egger_lm"]["pval"], rel=1e-8, what="egger p")
    assert eg.df == e["egger_lm"]["df"]
    bg = bias.begg_test(es.yi, es.vi)
    assert_close(bg.tau, e["begg"]["tau"], rel=1e-8, what="begg tau")
    assert_close(bg.pval, e["begg"]["pval"], rel=1e-8, what="begg p")
    tf = bias.trim_and_fill(es.yi, es.vi, method="FE")
    x = e["trimfill_FE"]
    assert (tf.k0, tf.side) == (x["k0"], x["side"])
    for key in ("estimate", "ci_lb", "ci_ub"):
        assert_close(getattr(tf.fit, key), x[key], rel=1e-8, what=f"trimfill {key}")


def test_kendall_exact_distribution_small_n():
    """P(T <= q) against enumeration of all permutations of 5 elements."""
    from itertools import permutations

    n = 5
    inv = [sum(p[i] > p[j] for i in range(n) for j in range(i + 1, n)) for p in permutations(range(n))]
    counts = np.bincount(inv) / len(inv)
    for q in range(n * (n - 1) // 2 + 1):
        assert bias.kendall_exact_cdf(q, n) == pytest.approx(counts[: q + 1].sum(), rel=1e-12)


def test_power_note_and_errors():
    y = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    v = np.array([0.01, 0.04, 0.02, 0.09, 0.05])
    assert bias.egger_test(y, v).power_note == bias.POWER_NOTE
    assert "Sterne et al. 2011" in bias.begg_test(y, v).power_note
    assert bias.trim_and_fill(y, v).to_dict()["power_note"] == bias.POWER_NOTE
    with pytest.raises(ValueError, match="sample size"):
        bias.regression_test(y, v, predictor="ninv")
    with pytest.raises(ValueError, match="at least 3"):
        bias.begg_test(y[:2], v[:2])
    with pytest.raises(ValueError, match="same in every study"):
        bias.egger_test(y, np.full(5, 0.04))
    with pytest.raises(ValueError, match="estimator"):
        bias.trim_and_fill(y, v, estimator="Q1")


def test_trim_and_fill_mirrors_around_the_trimmed_estimate():
    """Filled studies are reflections of the most extreme ones; k0 = 0 leaves the fit unchanged."""
    rng = np.random.default_rng(1)
    v = rng.uniform(0.01, 0.2, 15)
    y = 0.3 + np.sqrt(v) * 1.5 + rng.normal(0, 0.05, 15)    # strong small-study effect
    tf = bias.trim_and_fill(y, v)
    assert tf.side == "left" and tf.k0 > 0
    filled = tf.yi[tf.filled]
    assert (filled < np.sort(y)[-tf.k0:].min()).all()
    assert tf.fit.estimate < bias.models.fit(y, v, method="FE").estimate
    # a funnel that is symmetric by construction needs at most a rounding-level fill
    tf0 = bias.trim_and_fill(np.r_[y, 2 * 0.3 - y], np.r_[v, v])
    assert tf0.k0 <= 1 and tf0.fit.k == 30 + tf0.k0
