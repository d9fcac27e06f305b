"""Back-transforms and scale labels (metapool.transforms) against R metafor and Miller (1978)."""
import numpy as np
import pytest
from conftest import assert_close, cases_where

from metapool.transforms import (analysis_scale_label, back_transform, forward_transform,
                                 harmonic_mean_n, is_proportion, is_ratio, scale_label)

BACK_KEYS = ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub")


def _ni(case):
    return [r["total"] for r in case["rows"]] if case["type"] == "proportion" else None


@pytest.mark.parametrize("case", cases_where(lambda c: "back" in c["expected"]
                                             and c["measure"] in ("PLO", "PAS", "PFT", "RR", "OR")))
def test_back_transform_matches_metafor(case):
    """predict(res, transf=transf.ilogit / transf.iarcsin / transf.ipft.hm(ni) / exp) in metafor."""
    e = case["expected"]
    keys = [k for k in BACK_KEYS if k in e["back"] and e[k] not in ({}, None)]
    assert keys
    got = back_transform(case["measure"], [e[k] for k in keys], ni=_ni(case))
    assert_close(got, [e["back"][k] for k in keys], rel=1e-8, what=case["case"])


# R: x <- c(-0.1, 0, 0.05, 0.2, 0.7, 1.2, 1.5, 1.6, NA)
R_X = [-0.1, 0, 0.05, 0.2, 0.7, 1.2, 1.5, 1.6, np.nan]
# R: transf.ipft.hm(x, targs = list(ni = c(10, 20, 30)))
R_IPFT_HM = [0, 0, 0, 0.016699624342054353, 0.4099771179509204, 0.88980368618188854, 1, 1, np.nan]
# R: transf.iarcsin(x)
R_IARCSIN = [0, 0, 0.002497917360987117, 0.039469502998557456, 0.41501642854987947,
             0.86869685777062267, 0.99499624830022271, 1, np.nan]
# R: transf.ilogit(x)
R_ILOGIT = [0.47502081252105999, 0.5, 0.51249739648421033, 0.54983399731247795, 0.66818777216816616,
            0.76852478349901754, 0.81757447619364365, 0.83201838513392445, np.nan]


def test_pft_inverse_edges_and_nan_match_metafor():
    got = back_transform("PFT", R_X, ni=[10, 20, 30])
    assert_close(got, R_IPFT_HM, rel=1e-12)
    assert np.isnan(got[-1])


def test_pas_inverse_clipped_like_metafor():
    assert_close(back_transform("PAS", R_X), R_IARCSIN, rel=1e-12)


def test_plo_inverse_logit_matches_metafor():
    assert_close(back_transform("plo", R_X), R_ILOGIT, rel=1e-12)


def test_forward_pft_matches_metafor_transf_pft():
    # R: transf.pft(c(0, 0.1, 0.5, 1), 17)
    expected = [0.11897056241510413, 0.35503646269575184, 0.78539816339744828, 1.4518257643797923]
    assert_close(forward_transform("PFT", [0, 0.1, 0.5, 1], ni=17), expected, rel=1e-12)


def test_miller_1978_worked_example():
    """Miller (1978, Am Stat 32:138): x = 3, 6, 10, 1 of n = 11, 17, 21, 6 pool to 0.3595.

    Fixed-effect inverse-variance mean on metafor's (half-sum) Freeman-Tukey scale, back-transformed
    with the harmonic mean of n.
    """
    x = np.array([3, 6, 10, 1.0])
    n = np.array([11, 17, 21, 6.0])
    y = 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))
    w = 4 * n + 2
    mean = np.sum(w * y) / np.sum(w)
    assert round(float(back_transform("PFT", mean, ni=n)), 4) == 0.3595
    assert harmonic_mean_n(n) == pytest.approx(4 / np.sum(1 / n))


def test_miller_1978_through_escalc_and_fit():
    """The same example end to end: escalc(PFT) -> models.fit(FE) -> MetaResult.reporting()."""
    import pandas as pd

    from metapool.effects import escalc
    from metapool.models import fit

    es = escalc("PFT", pd.DataFrame({"study": list("abcd"), "events": [3, 6, 10, 1],
                                     "total": [11, 17, 21, 6]}))
    res = fit(es, method="FE")
    assert round(res.reporting()["estimate"], 4) == 0.3595


@pytest.mark.parametrize("measure", ["PLO", "PAS", "PFT", "RR", "OR", "PETO", "PR", "RD", "SMD", "GEN"])
def test_forward_then_back_is_identity(measure):
    p = np.array([0.03, 0.2, 0.5, 0.77, 0.96]) * (3 if is_ratio(measure) else 1)
    ni = [12, 40, 7]
    assert_close(back_transform(measure, forward_transform(measure, p, ni=ni), ni=ni), p.tolist(), rel=1e-12)


def test_identity_and_exp_pass_nan_and_keep_shape():
    x = np.array([[0.1, np.nan], [-2.0, 3.0]])
    out = back_transform("MD", x)
    assert out.shape == x.shape and np.isnan(out[0, 1]) and out[1, 0] == -2.0
    out[1, 0] = 99                                   # a copy, never a view of the input
    assert x[1, 0] == -2.0
    assert_close(back_transform("RR", [np.log(2.0), np.nan]), [2.0, np.nan])


def test_pft_needs_sample_sizes():
    with pytest.raises(ValueError, match="sample sizes"):
        back_transform("PFT", [0.5])
    with pytest.raises(ValueError, match="> 0"):
        back_transform("PFT", [0.5], ni=[10, 0])


def test_labels_and_predicates():
    assert scale_label("PFT") == "proportion"
    assert scale_label("RR") == "risk ratio"
    assert scale_label("OR") == "odds ratio"
    assert scale_label("RD") == "risk difference"
    assert scale_label("MD") == "mean difference"
    assert scale_label("SMD") == "standardised mean difference (Hedges' g)"
    assert "change" in scale_label("SMCR") and "pre" in scale_label("SMCR")
    assert analysis_scale_label("RR") == "log risk ratio"
    assert analysis_scale_label("MD") == "mean difference"
    assert is_ratio("or") and is_ratio("PETO") and not is_ratio("RD")
    assert is_proportion("PAS") and not is_proportion("RR")


@pytest.mark.parametrize("t", [1e-300, -1e-300, 1e-310, 5e-324, 0.0, -np.inf, np.inf])
def test_pft_inverse_far_outside_range_is_quiet(t):
    """sin(2t) -> 0 makes 1/sin(2t) overflow; such t lie outside the range and map to 0 or 1."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = back_transform("PFT", [t], ni=[10])
    assert got.tolist() == [1.0 if t > 1 else 0.0]
