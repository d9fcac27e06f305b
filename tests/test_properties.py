"""Property-based tests (hypothesis) of the statistical invariants of metapool.

Each test states a property that must hold for *every* valid input, not a number copied from
our own output: invariance to study order, tau² >= 0, I² in [0, 100], estimates inside their
intervals, random effects = fixed effect when tau² = 0, monotone back-transforms, ``fit_batch``
= ``fit``, robustness to a near-zero-variance study, and clean ``ValueError`` messages from
``escalc`` on invalid tables.  See docs/reliability.md for the list and how to run it.

The Q-profile CI (Viechtbauer 2007) is built from the generalised Q statistic, so it contains
the Paule-Mandel (and the identical empirical Bayes) estimate by construction, but not
necessarily the DL/REML/ML/... estimates (metafor documents the same); that containment is
therefore asserted for PM and EB only.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metapool.effects import escalc
from metapool.models import fit, fit_batch
from metapool.transforms import back_transform

METHODS = ("DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")
TESTS = ("z", "knha")
# METAPOOL_PROPERTY_EXAMPLES=500 pytest tests/test_properties.py  for a thorough run
N_EXAMPLES = int(os.environ.get("METAPOOL_PROPERTY_EXAMPLES", "40"))
SETTINGS = settings(max_examples=N_EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ARRAY_FIELDS = ("yi", "vi", "weights")

# --------------------------------------------------------------------------- strategies
effect = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
# sampling variances over four orders of magnitude (log-uniform-ish)
variance = st.floats(-3.0, 1.0).map(lambda e: float(10.0 ** e))


@st.composite
def meta_data(draw, min_k=2, max_k=12):
    """(yi, vi) of one meta-analysis with k studies."""
    k = draw(st.integers(min_k, max_k))
    yi = np.array(draw(st.lists(effect, min_size=k, max_size=k)))
    vi = np.array(draw(st.lists(variance, min_size=k, max_size=k)))
    return yi, vi


def _close(a, b, rel=1e-7, abs_=1e-9):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _assert_same_result(r1, r2, perm, what):
    """r2 was fitted to the studies of r1 reordered by ``perm``: every field must agree."""
    for f in dataclasses.fields(r1):
        a, b = getattr(r1, f.name), getattr(r2, f.name)
        if f.name in ARRAY_FIELDS:
            np.testing.assert_allclose(np.asarray(a)[perm], b, rtol=1e-7, atol=1e-9,
                                       err_msg=f"{what}: {f.name}")
        elif f.name == "study":
            assert tuple(np.asarray(a)[perm]) == b, what
        elif f.name == "ni":
            assert a is None and b is None, what
        elif f.name == "notes":
            assert sorted(a) == sorted(b), f"{what}: notes {a} vs {b}"
        elif isinstance(a, float):
            assert _close(a, b), f"{what}: {f.name} {a!r} vs {b!r}"
        else:
            assert a == b, f"{what}: {f.name} {a!r} vs {b!r}"


# --------------------------------------------------------------------------- order invariance
@SETTINGS
@given(data=meta_data(), seed=st.integers(0, 2 ** 32 - 1))
def test_study_order_does_not_change_any_result(data, seed):
    yi, vi = data
    perm = np.random.default_rng(seed).permutation(yi.size)
    study = tuple(f"s{i}" for i in range(yi.size))
    for method in ("FE",) + METHODS:
        for test in TESTS:
            r1 = fit(yi, vi, method=method, test=test, study=study)
            r2 = fit(yi[perm], vi[perm], method=method, test=test,
                     study=tuple(np.asarray(study)[perm]))
            _assert_same_result(r1, r2, perm, f"{method}/{test}")


# --------------------------------------------------------------------------- ranges and intervals
def _assert_ranges(r, what):
    assert r.tau2 >= 0, what
    assert 0 <= r.I2 <= 100, f"{what}: I2 = {r.I2}"
    assert r.Q >= 0 and 0 <= r.Q_pval <= 1, what
    assert 0 <= r.pval <= 1 or (r.se == 0 and math.isnan(r.pval)), f"{what}: pval {r.pval}"
    assert np.isclose(r.weights.sum(), 100.0) and np.all(r.weights >= 0), what
    if r.is_random:
        assert r.H2 >= 1 - 1e-12, f"{what}: H2 = {r.H2}"
    if not math.isnan(r.I2_ci_lb):
        assert 0 <= r.I2_ci_lb <= r.I2_ci_ub <= 100, what


def _assert_contains(r, what):
    assert r.ci_lb <= r.estimate <= r.ci_ub, f"{what}: CI {r.ci_lb}, {r.estimate}, {r.ci_ub}"
    if r.is_random:
        assert r.pi_lb <= r.ci_lb and r.ci_ub <= r.pi_ub, f"{what}: PI narrower than CI"
        assert r.pi_lb <= r.estimate <= r.pi_ub, what
    if not math.isnan(r.tau2_ci_lb):
        assert 0 <= r.tau2_ci_lb <= r.tau2_ci_ub, f"{what}: tau2 CI {r.tau2_ci_lb}, {r.tau2_ci_ub}"
        if r.method in ("PM", "EB"):   # the Q-profile CI is built around the PM estimate
            tol = 1e-6 * max(1.0, r.tau2)
            assert r.tau2_ci_lb - tol <= r.tau2 <= r.tau2_ci_ub + tol, \
                f"{what}: tau2 {r.tau2} outside [{r.tau2_ci_lb}, {r.tau2_ci_ub}]"


@SETTINGS
@given(data=meta_data(min_k=1))
def test_ranges_and_every_interval_contains_its_estimate(data):
    yi, vi = data
    for method in ("FE",) + METHODS:
        for test in TESTS:
            r = fit(yi, vi, method=method, test=test)
            what = f"{method}/{test} k={yi.size}"
            _assert_ranges(r, what)
            if yi.size > 1 or test == "z":     # k = 1 under knha has no t inference (NaN)
                _assert_contains(r, what)
            for pi_method in ("higgins",):
                if r.is_random and yi.size >= 3:
                    h = fit(yi, vi, method=method, test=test, pi_method=pi_method)
                    assert h.pi_lb <= h.estimate <= h.pi_ub, what
                    assert h.pi_ub - h.pi_lb >= r.ci_ub - r.ci_lb - 1e-12, what


@SETTINGS
@given(data=meta_data(min_k=2), level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_pvalue_agrees_with_the_ci_and_higher_levels_nest(data, level):
    """p < 1 - level exactly when the level-CI excludes 0; a 99% CI contains the level-CI."""
    yi, vi = data
    for method in ("FE",) + METHODS:
        for test in TESTS:
            r = fit(yi, vi, method=method, test=test, level=level)
            wide = fit(yi, vi, method=method, test=test, level=0.999)
            what = f"{method}/{test} level={level}"
            assert wide.ci_lb <= r.ci_lb and r.ci_ub <= wide.ci_ub, what
            if r.is_random:
                assert wide.pi_lb <= r.pi_lb and r.pi_ub <= wide.pi_ub, what
            if r.se > 0 and abs(r.pval - (1 - level)) > 1e-9:
                excludes = r.ci_lb > 0 or r.ci_ub < 0
                assert (r.pval < 1 - level) == excludes, f"{what}: p {r.pval}, CI {r.ci_lb}, {r.ci_ub}"


# --------------------------------------------------------------------------- RE = FE at tau2 = 0
@SETTINGS
@given(data=meta_data())
def test_random_effects_equal_fixed_effect_when_tau2_is_zero(data):
    yi, vi = data
    for test in TESTS:
        fe = fit(yi, vi, method="FE", test=test)
        for method in METHODS:
            r = fit(yi, vi, method=method, test=test)
            if r.tau2 == 0:
                assert _close(r.estimate, fe.estimate, 1e-12, 1e-14), method
                assert _close(r.se, fe.se, 1e-12, 1e-14), method
                assert _close(r.ci_lb, fe.ci_lb, 1e-12, 1e-14), method
                np.testing.assert_allclose(r.weights, fe.weights, rtol=1e-12)


@SETTINGS
@given(y=effect, vi=st.lists(variance, min_size=2, max_size=12))
def test_homogeneous_studies_give_tau2_zero_and_the_fixed_effect(y, vi):
    """Identical effects: Q = 0, every estimator gives tau² = 0 and the FE result."""
    yi = np.full(len(vi), y)
    fe = fit(yi, vi, method="FE")
    assert fe.Q == pytest.approx(0, abs=1e-12) and fe.estimate == pytest.approx(y, abs=1e-12)
    for method in METHODS:
        r = fit(yi, vi, method=method)
        assert r.tau2 == pytest.approx(0, abs=1e-12), method
        assert r.estimate == pytest.approx(fe.estimate, abs=1e-12), method
        assert r.se == pytest.approx(fe.se, rel=1e-8), method


# --------------------------------------------------------------------------- back-transforms
_x = st.lists(st.floats(-30, 30, allow_nan=False), min_size=2, max_size=30)


@SETTINGS
@given(x=_x, measure=st.sampled_from(["PLO", "PAS", "RR", "OR", "PETO", "PR", "MD", "SMD"]))
def test_back_transforms_are_monotone(x, measure):
    xs = np.sort(np.asarray(x))
    b = back_transform(measure, xs)
    assert np.all(np.diff(b) >= 0), f"{measure}: not monotone on {xs} -> {b}"
    if measure in ("PLO", "PAS"):
        assert np.all((b >= 0) & (b <= 1))
    if measure in ("RR", "OR", "PETO"):
        assert np.all(b >= 0)


@SETTINGS
@given(x=st.lists(st.floats(-0.5, 2.5, allow_nan=False), min_size=2, max_size=30),
       ni=st.lists(st.integers(1, 5000), min_size=1, max_size=20))
def test_pft_back_transform_is_monotone_for_fixed_n(x, ni):
    xs = np.sort(np.asarray(x))
    b = back_transform("PFT", xs, ni=np.asarray(ni, float))
    assert np.all((b >= 0) & (b <= 1)), b
    assert np.all(np.diff(b) >= -1e-12), f"PFT not monotone (n = {ni}): {xs} -> {b}"


# --------------------------------------------------------------------------- fit_batch = fit
@SETTINGS
@given(data=st.lists(meta_data(min_k=1, max_k=8), min_size=1, max_size=6),
       method=st.sampled_from(("FE",) + METHODS), test=st.sampled_from(TESTS),
       pi_method=st.sampled_from(("metafor", "higgins")))
def test_fit_batch_equals_fit(data, method, test, pi_method):
    kmax = max(y.size for y, _ in data)
    Y = np.zeros((len(data), kmax))
    V = np.ones((len(data), kmax))
    M = np.zeros((len(data), kmax), dtype=bool)
    for b, (y, v) in enumerate(data):
        Y[b, :y.size], V[b, :y.size], M[b, :y.size] = y, v, True
    bf = fit_batch(Y, V, M, method=method, test=test, pi_method=pi_method)
    for b, (y, v) in enumerate(data):
        r = fit(y, v, method=method, test=test, pi_method=pi_method)
        assert bf.k[b] == r.k
        for name in ("estimate", "se", "stat", "pval", "ci_lb", "ci_ub", "pi_lb", "pi_ub",
                     "tau2", "Q", "Q_pval", "I2", "H2", "df"):
            assert _close(getattr(bf, name)[b], getattr(r, name)), \
                f"{method}/{test} row {b}: {name} batch {getattr(bf, name)[b]} fit {getattr(r, name)}"


# --------------------------------------------------------------------------- a precise study at mu
@SETTINGS
@given(data=meta_data(min_k=2, max_k=10), exponent=st.integers(2, 14),
       method=st.sampled_from(("FE",) + METHODS), test=st.sampled_from(TESTS))
def test_adding_a_precise_study_at_the_pooled_estimate(data, exponent, method, test):
    """A study equal to the pooled estimate with variance 10^-e x min(vi) is handled."""
    yi, vi = data
    r0 = fit(yi, vi, method=method, test=test)
    v_new = float(vi.min()) * 10.0 ** -exponent
    r1 = fit(np.append(yi, r0.estimate), np.append(vi, v_new), method=method, test=test)
    assert r1.k == r0.k + 1
    for name in ("estimate", "se", "ci_lb", "ci_ub", "tau2", "I2", "Q"):
        assert math.isfinite(getattr(r1, name)), f"{name} = {getattr(r1, name)}"
    _assert_ranges(r1, f"{method}/{test}")
    assert r1.ci_lb <= r1.estimate <= r1.ci_ub
    assert min(yi.min(), r0.estimate) - 1e-9 <= r1.estimate <= max(yi.max(), r0.estimate) + 1e-9
    if method == "FE":
        # the weighted mean of studies at the FE estimate is unchanged, and so is Q
        assert r1.estimate == pytest.approx(r0.estimate, rel=1e-9, abs=1e-12)
        assert r1.Q == pytest.approx(r0.Q, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("method", ("FE", "DL", "REML"))
def test_a_study_with_exactly_zero_variance_gives_a_clear_error(method):
    yi, vi = np.array([0.1, 0.4, -0.2]), np.array([0.05, 0.1, 0.08])
    with pytest.raises(ValueError, match=r"vi"):
        fit(np.append(yi, 0.1), np.append(vi, 0.0), method=method)


# --------------------------------------------------------------------------- escalc, valid tables
@st.composite
def proportion_table(draw):
    k = draw(st.integers(1, 8))
    total = draw(st.lists(st.integers(1, 500), min_size=k, max_size=k))
    events = [draw(st.integers(0, n)) for n in total]
    return pd.DataFrame({"study": [f"S{i}" for i in range(k)], "events": events, "total": total})


@st.composite
def binary_table(draw):
    k = draw(st.integers(1, 8))
    n1 = draw(st.lists(st.integers(1, 300), min_size=k, max_size=k))
    n2 = draw(st.lists(st.integers(1, 300), min_size=k, max_size=k))
    return pd.DataFrame({"study": [f"S{i}" for i in range(k)],
                         "events_treat": [draw(st.integers(0, n)) for n in n1], "total_treat": n1,
                         "events_ctrl": [draw(st.integers(0, n)) for n in n2], "total_ctrl": n2})


mean = st.floats(-100, 100, allow_nan=False)
sd = st.floats(0.01, 50, allow_nan=False)


@st.composite
def continuous_table(draw):
    k = draw(st.integers(1, 8))
    col = lambda s: draw(st.lists(s, min_size=k, max_size=k))  # noqa: E731
    return pd.DataFrame({"study": [f"S{i}" for i in range(k)],
                         "mean_treat": col(mean), "sd_treat": col(sd), "n_treat": col(st.integers(2, 500)),
                         "mean_ctrl": col(mean), "sd_ctrl": col(sd), "n_ctrl": col(st.integers(2, 500))})


@st.composite
def prepost_table(draw):
    """Pre/post rows with n >= 3: at n = 2 Hedges' correction c(n - 1) is undefined (metafor: NA)."""
    k = draw(st.integers(1, 8))
    col = lambda s: draw(st.lists(s, min_size=k, max_size=k))  # noqa: E731
    df = pd.DataFrame({"study": [f"S{i}" for i in range(k)], "mean_pre": col(mean), "sd_pre": col(sd),
                       "mean_post": col(mean), "sd_post": col(sd), "n": col(st.integers(3, 500))})
    if draw(st.booleans()):
        df["r"] = col(st.floats(-0.99, 0.99))
    return df


@st.composite
def generic_table(draw):
    k = draw(st.integers(1, 8))
    col = lambda s: draw(st.lists(s, min_size=k, max_size=k))  # noqa: E731
    df = pd.DataFrame({"study": [f"S{i}" for i in range(k)], "yi": col(st.floats(-5, 5))})
    form = draw(st.sampled_from(["vi", "sei", "ci"]))
    if form == "ci":
        half = np.asarray(col(st.floats(0.01, 3)))
        df["ci_lb"], df["ci_ub"] = df["yi"] - half, df["yi"] + half
    else:
        df[form] = col(st.floats(1e-4, 4))
    return df


VALID = [("proportion", proportion_table(), ("PR", "PLO", "PAS", "PFT")),
         ("binary", binary_table(), ("RR", "OR", "RD", "PETO")),
         ("continuous", continuous_table(), ("MD", "SMD")),
         ("prepost", prepost_table(), ("SMCR", "SMCC", "MC")),
         ("generic", generic_table(), ("GEN",))]


@pytest.mark.parametrize("kind, table, measures", VALID, ids=[v[0] for v in VALID])
def test_escalc_on_valid_tables_gives_finite_effects(kind, table, measures):
    @settings(max_examples=max(N_EXAMPLES // 2, 10), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(df=table, measure=st.sampled_from(measures))
    def check(df, measure):
        es = escalc(measure, df)
        assert es.kind == kind
        assert es.dropped == (), es.dropped
        assert es.study == tuple(df["study"])
        assert np.all(np.isfinite(es.yi)), (measure, es.yi)
        assert np.all(np.isfinite(es.vi) & (es.vi > 0)), (measure, es.vi)

    check()


# --------------------------------------------------------------------------- escalc, invalid tables
# (table strategy, column to spoil, bad values, measure)
_NEG = st.integers(-1000, -1)
INVALID = [
    ("proportion", proportion_table(), "events", _NEG, "PLO"),
    ("proportion", proportion_table(), "total", st.integers(-100, 0), "PR"),
    ("binary", binary_table(), "events_ctrl", _NEG, "OR"),
    ("binary", binary_table(), "total_treat", _NEG, "RR"),
    ("continuous", continuous_table(), "sd_treat", st.floats(-10, 0), "SMD"),
    ("continuous", continuous_table(), "n_ctrl", st.integers(-5, 1), "MD"),
    ("prepost", prepost_table(), "n", st.integers(-5, 1), "SMCR"),
    ("prepost", prepost_table(), "sd_pre", st.floats(-10, 0), "SMCC"),
    ("prepost", prepost_table(), "r", st.one_of(st.floats(1.0001, 50), st.floats(-50, -1.0001)), "SMCR"),
    ("generic", generic_table(), "yi", st.just(float("nan")), "GEN"),
    ("continuous", continuous_table(), "mean_ctrl", st.just(float("nan")), "MD"),
    ("proportion", proportion_table(), "events", st.sampled_from(["abc", "1,5", "n/a?", "--"]), "PR"),
]


@pytest.mark.parametrize("kind, table, column, bad, measure", INVALID,
                         ids=[f"{v[0]}-{v[2]}-{v[4]}" for v in INVALID])
def test_escalc_on_invalid_tables_names_study_and_column(kind, table, column, bad, measure):
    @settings(max_examples=max(N_EXAMPLES // 3, 10), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(df=table, value=bad, data=st.data())
    def check(df, value, data):
        df = df.copy()
        if column not in df.columns:
            df[column] = 0.5
        i = data.draw(st.integers(0, len(df) - 1))
        df[column] = df[column].astype(object)
        df.loc[i, column] = value
        study = df.loc[i, "study"]
        with pytest.raises(ValueError) as exc:
            escalc(measure, df)
        msg = str(exc.value)
        assert column in msg, msg
        if df[column].notna().any():
            assert repr(study) in msg, msg
        else:   # the whole column is empty: the kind cannot be read, the message lists the columns
            assert "cannot tell the kind" in msg, msg

    check()


@SETTINGS
@given(df=proportion_table(), data=st.data())
def test_escalc_events_above_total_names_both_columns(df, data):
    i = data.draw(st.integers(0, len(df) - 1))
    df.loc[i, "events"] = df.loc[i, "total"] + data.draw(st.integers(1, 50))
    with pytest.raises(ValueError, match=rf"{df.loc[i, 'study']}.*events.*total"):
        escalc("PLO", df)


@SETTINGS
@given(df=binary_table(), data=st.data())
def test_escalc_binary_events_above_total(df, data):
    i = data.draw(st.integers(0, len(df) - 1))
    df.loc[i, "events_treat"] = df.loc[i, "total_treat"] + 1
    with pytest.raises(ValueError, match=rf"{df.loc[i, 'study']}.*events_treat.*total_treat"):
        escalc("OR", df)


def test_prepost_n2_drop_reason_names_n():
    df = pd.DataFrame({"study": ["A", "B"], "mean_pre": [1.0, 2.0], "sd_pre": [1.0, 1.0],
                       "mean_post": [1.5, 2.5], "sd_post": [1.0, 1.2], "n": [2, 10]})
    es = escalc("SMCR", df)
    assert es.study == ("B",)
    (study, reason), = es.dropped
    assert study == "A" and "zero cell" not in reason and "n" in reason
