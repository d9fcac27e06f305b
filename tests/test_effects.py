"""Effect sizes (metapool.effects.escalc) against R metafor 3.8-1 escalc().

Two sources of truth: every reference case of tests/metafor_cases.json that carries per-study
yi/vi, and small zero-cell / variance-type / pre-post examples run through R by hand.  The R
output is hard-coded below (NA written as nan) together with the R code that produced it:

    suppressMessages(library(metafor))
    p <- function(x) cat(deparse(as.numeric(x), control = "digits17"), "\\n")
    b <- data.frame(ai = c(0, 3, 0, 10, 5), n1i = c(10, 12, 15, 10, 20),
                    ci = c(2, 0, 0, 10, 4), n2i = c(11, 13, 14, 10, 19))
    pr <- data.frame(xi = c(0, 4, 12, 7), ni = c(10, 12, 12, 20))
    pp <- data.frame(m_pre = c(4.1, 5, 3.6), sd_pre = c(1.2, 1.8, 1.1), m_post = c(6.3, 7.9, 5.1),
                     sd_post = c(2.1, 2.6, 1.9), n = c(12, 40, 21), r = c(0.3, 0.6, 0.8))
    nd <- dat.normand1999[1:4, ]
    # "<M> <to> <drop00>":       e <- escalc(M, ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = b,
    #                                         to = to, drop00 = drop00)
    # "<M> <to>" (proportions):   e <- escalc(M, xi = xi, ni = ni, data = pr, to = to)
    # "PAS add0.5", "PFT add0.5": e <- escalc(M, xi = xi, ni = ni, data = pr, add = 0.5)
    # "PLO add0.25 all":          e <- escalc("PLO", xi = xi, ni = ni, data = pr, add = 0.25, to = "all")
    # "SMCC", "MC", "SMCC LS2":   e <- escalc(M, m1i = m_post, m2i = m_pre, sd1i = sd_post, sd2i = sd_pre,
    #                                         ni = n, ri = r, data = pp[, vtype = "LS2"])
    # "SMCR", "SMCR LS2":         e <- escalc("SMCR", m1i = m_post, m2i = m_pre, sd1i = sd_pre, ni = n,
    #                                         ri = r, data = pp[, vtype = "LS2"])
    # "SMD <vt>", "MD HO":        e <- escalc(M, m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i,
    #                                         n2i = n2i, data = nd, vtype = vt)
    # "RD <vt>":                  e <- escalc("RD", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = b,
    #                                         vtype = vt)
    # "PR <vt>", "PLO AV":        e <- escalc(M, xi = xi, ni = ni, data = pr, vtype = vt)
    p(e$yi); p(e$vi)
"""
import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, cases_where, rows_frame

from metapool.effects import KIND_COLUMNS, MEASURES, check_measure, detect_kind, escalc
from metapool.results import EffectSizes

nan = np.nan

R_OUT = {
    'RR only0 FALSE': (
        [-1.5224265354444704, 2.0200181212090351, -0.064538521137571081, 0, 0.17185025692665934],
        [2.2257575757575756, 2.1373626373626373, 3.8708333333333331, 0.0086580086580086424,
         0.3473684210526316]),
    'RR only0 TRUE': (
        [-1.5224265354444704, 2.0200181212090351, nan, nan, 0.17185025692665934],
        [2.2257575757575756, 2.1373626373626373, nan, nan, 0.3473684210526316]),
    'RR all FALSE': (
        [-1.5224265354444704, 2.0200181212090351, -0.064538521137571081, 0, 0.15188053129271917],
        [2.2257575757575756, 2.1373626373626373, 3.8708333333333331, 0.0086580086580086424,
         0.30642135642135643]),
    'RR all TRUE': (
        [-1.5224265354444704, 2.0200181212090351, nan, nan, 0.15188053129271917],
        [2.2257575757575756, 2.1373626373626373, nan, nan, 0.30642135642135643]),
    'RR if0all FALSE': (
        [-1.5224265354444704, 2.0200181212090351, -0.064538521137571081, 0, 0.15188053129271917],
        [2.2257575757575756, 2.1373626373626373, 3.8708333333333331, 0.0086580086580086424,
         0.30642135642135643]),
    'RR if0all TRUE': (
        [-1.5224265354444704, 2.0200181212090351, nan, nan, 0.15188053129271917],
        [2.2257575757575756, 2.1373626373626373, nan, nan, 0.30642135642135643]),
    'RR none FALSE': (
        [nan, nan, nan, 0, 0.17185025692665934],
        [nan, nan, nan, 0, 0.3473684210526316]),
    'RR none TRUE': (
        [nan, nan, nan, nan, 0.17185025692665934],
        [nan, nan, nan, nan, 0.3473684210526316]),
    'OR only0 FALSE': (
        [-1.709521370991083, 2.2973080358932019, -0.066691374498672129, 0, 0.22314355131420971],
        [2.600501253132832, 2.4650515176830967, 4.133481646273637, 4.1904761904761907,
         0.58333333333333326]),
    'OR only0 TRUE': (
        [-1.709521370991083, 2.2973080358932019, nan, nan, 0.22314355131420971],
        [2.600501253132832, 2.4650515176830967, nan, nan, 0.58333333333333326]),
    'OR all FALSE': (
        [-1.709521370991083, 2.2973080358932019, -0.066691374498672129, 0, 0.20067069546215111],
        [2.600501253132832, 2.4650515176830967, 4.133481646273637, 4.1904761904761907,
         0.53307266210492021]),
    'OR all TRUE': (
        [-1.709521370991083, 2.2973080358932019, nan, nan, 0.20067069546215111],
        [2.600501253132832, 2.4650515176830967, nan, nan, 0.53307266210492021]),
    'OR if0all FALSE': (
        [-1.709521370991083, 2.2973080358932019, -0.066691374498672129, 0, 0.20067069546215111],
        [2.600501253132832, 2.4650515176830967, 4.133481646273637, 4.1904761904761907,
         0.53307266210492021]),
    'OR if0all TRUE': (
        [-1.709521370991083, 2.2973080358932019, nan, nan, 0.20067069546215111],
        [2.600501253132832, 2.4650515176830967, nan, nan, 0.53307266210492021]),
    'OR none FALSE': (
        [nan, nan, nan, nan, 0.22314355131420971],
        [nan, nan, nan, nan, 0.58333333333333326]),
    'OR none TRUE': (
        [nan, nan, nan, nan, 0.22314355131420971],
        [nan, nan, nan, nan, 0.58333333333333326]),
    'RD only0 FALSE': (
        [-0.1628787878787879, 0.23351648351648352, -0.0020833333333333329, 0, 0.039473684210526327],
        [0.017688615667696247, 0.017594186546456805, 0.0040402379918981482, 0.0078888054094665601,
         0.01812263084997813]),
    'RD only0 TRUE': (
        [-0.1628787878787879, 0.23351648351648352, nan, nan, 0.039473684210526327],
        [0.017688615667696247, 0.017594186546456805, nan, nan, 0.01812263084997813]),
    'RD all FALSE': (
        [-0.1628787878787879, 0.23351648351648352, -0.0020833333333333329, 0, 0.036904761904761912],
        [0.017688615667696247, 0.017594186546456805, 0.0040402379918981482, 0.0078888054094665601,
         0.017924019409351045]),
    'RD all TRUE': (
        [-0.1628787878787879, 0.23351648351648352, nan, nan, 0.036904761904761912],
        [0.017688615667696247, 0.017594186546456805, nan, nan, 0.017924019409351045]),
    'RD if0all FALSE': (
        [-0.1628787878787879, 0.23351648351648352, -0.0020833333333333329, 0, 0.036904761904761912],
        [0.017688615667696247, 0.017594186546456805, 0.0040402379918981482, 0.0078888054094665601,
         0.017924019409351045]),
    'RD if0all TRUE': (
        [-0.1628787878787879, 0.23351648351648352, nan, nan, 0.036904761904761912],
        [0.017688615667696247, 0.017594186546456805, nan, nan, 0.017924019409351045]),
    'RD none FALSE': (
        [-0.18181818181818182, 0.25, 0, 0, 0.039473684210526327],
        [0.013523666416228401, 0.015625, 0, 0, 0.01812263084997813]),
    'RD none TRUE': (
        [-0.18181818181818182, 0.25, nan, nan, 0.039473684210526327],
        [0.013523666416228401, 0.015625, nan, nan, 0.01812263084997813]),
    'PETO only0 FALSE': (
        [-1.3736111111111111, 1.7818322981366463, -0.06458333333333327, 0, 0.21666666666666692],
        [1.4694444444444446, 1.1319875776397517, 4.0041666666666664, 4, 0.56333333333333346]),
    'PETO only0 TRUE': (
        [-1.3736111111111111, 1.7818322981366463, nan, nan, 0.21666666666666692],
        [1.4694444444444446, 1.1319875776397517, nan, nan, 0.56333333333333346]),
    'PETO all FALSE': (
        [-1.3736111111111111, 1.7818322981366463, -0.06458333333333327, 0, 0.19523809523809516],
        [1.4694444444444446, 1.1319875776397517, 4.0041666666666664, 4, 0.51643625192012288]),
    'PETO all TRUE': (
        [-1.3736111111111111, 1.7818322981366463, nan, nan, 0.19523809523809516],
        [1.4694444444444446, 1.1319875776397517, nan, nan, 0.51643625192012288]),
    'PETO if0all FALSE': (
        [-1.3736111111111111, 1.7818322981366463, -0.06458333333333327, 0, 0.19523809523809516],
        [1.4694444444444446, 1.1319875776397517, 4.0041666666666664, 4, 0.51643625192012288]),
    'PETO if0all TRUE': (
        [-1.3736111111111111, 1.7818322981366463, nan, nan, 0.19523809523809516],
        [1.4694444444444446, 1.1319875776397517, nan, nan, 0.51643625192012288]),
    'PETO none FALSE': (
        [-2.0095693779904304, 2.2727272727272729, nan, nan, 0.21666666666666692],
        [2.1100478468899522, 1.4568764568764569, nan, nan, 0.56333333333333346]),
    'PETO none TRUE': (
        [-2.0095693779904304, 2.2727272727272729, nan, nan, 0.21666666666666692],
        [2.1100478468899522, 1.4568764568764569, nan, nan, 0.56333333333333346]),
    'PR only0': (
        [0.045454545454545456, 0.33333333333333331, 0.96153846153846156, 0.34999999999999998],
        [0.0039444027047332835, 0.018518518518518521, 0.0028447883477469254, 0.011375]),
    'PR all': (
        [0.045454545454545456, 0.34615384615384615, 0.96153846153846156, 0.35714285714285715],
        [0.0039444027047332835, 0.017410104688211196, 0.0028447883477469254, 0.010932944606413994]),
    'PR if0all': (
        [0.045454545454545456, 0.34615384615384615, 0.96153846153846156, 0.35714285714285715],
        [0.0039444027047332835, 0.017410104688211196, 0.0028447883477469254, 0.010932944606413994]),
    'PR none': (
        [0, 0.33333333333333331, 1, 0.34999999999999998],
        [0, 0.018518518518518521, 0, 0.011375]),
    'PLO only0': (
        [-3.044522437723423, -0.6931471805599454, 3.2188758248682015, -0.61903920840622351],
        [2.0952380952380953, 0.375, 2.0800000000000001, 0.21978021978021978]),
    'PLO all': (
        [-3.044522437723423, -0.63598876671999671, 3.2188758248682015, -0.58778666490211895],
        [2.0952380952380953, 0.33986928104575165, 2.0800000000000001, 0.2074074074074074]),
    'PLO if0all': (
        [-3.044522437723423, -0.63598876671999671, 3.2188758248682015, -0.58778666490211895],
        [2.0952380952380953, 0.33986928104575165, 2.0800000000000001, 0.2074074074074074]),
    'PLO none': (
        [nan, -0.6931471805599454, nan, -0.61903920840622351],
        [nan, 0.375, nan, 0.21978021978021978]),
    'PAS only0': (
        [0, 0.61547970867038726, 1.5707963267948966, 0.63305183638974949],
        [0.025000000000000001, 0.020833333333333332, 0.020833333333333332, 0.012500000000000001]),
    'PAS all': (
        [0, 0.61547970867038726, 1.5707963267948966, 0.63305183638974949],
        [0.025000000000000001, 0.020833333333333332, 0.020833333333333332, 0.012500000000000001]),
    'PAS if0all': (
        [0, 0.61547970867038726, 1.5707963267948966, 0.63305183638974949],
        [0.025000000000000001, 0.020833333333333332, 0.020833333333333332, 0.012500000000000001]),
    'PAS none': (
        [0, 0.61547970867038726, 1.5707963267948966, 0.63305183638974949],
        [0.025000000000000001, 0.020833333333333332, 0.020833333333333332, 0.012500000000000001]),
    'PFT only0': (
        [0.15313868458483473, 0.62848333890798735, 1.4302788760434899, 0.64033788184160301],
        [0.023809523809523808, 0.02, 0.02, 0.012195121951219513]),
    'PFT all': (
        [0.15313868458483473, 0.62848333890798735, 1.4302788760434899, 0.64033788184160301],
        [0.023809523809523808, 0.02, 0.02, 0.012195121951219513]),
    'PFT if0all': (
        [0.15313868458483473, 0.62848333890798735, 1.4302788760434899, 0.64033788184160301],
        [0.023809523809523808, 0.02, 0.02, 0.012195121951219513]),
    'PFT none': (
        [0.15313868458483473, 0.62848333890798735, 1.4302788760434899, 0.64033788184160301],
        [0.023809523809523808, 0.02, 0.02, 0.012195121951219513]),
    'PAS add0.5': (
        [0.21484983307571226, 0.61547970867038726, 1.3734007669450161, 0.63305183638974949],
        [0.022727272727272728, 0.020833333333333332, 0.019230769230769232, 0.012500000000000001]),
    'PFT add0.5': (
        [0.28346802753394085, 0.62848333890798735, 1.3089969389957472, 0.64033788184160301],
        [0.021739130434782608, 0.02, 0.018518518518518517, 0.012195121951219513]),
    'PLO add0.25 all': (
        [-3.713572066704308, -0.66329421741026395, 3.8918202981106256, -0.60299608356564782],
        [4.0975609756097562, 0.35650623885918004, 4.0816326530612246, 0.21340273259596615]),
    'SMCC': (
        [0.98229534745983638, 1.3582050750802559, 1.1876763578887821],
        [0.12353767290171835, 0.048059012824672051, 0.081204169787808617]),
    'MC': (
        [2.2000000000000002, 2.9000000000000004, 1.4999999999999996],
        [0.36149999999999993, 0.10959999999999999, 0.070285714285714285]),
    'SMCR': (
        [1.7049263182889274, 1.5798946067627673, 1.31174254601011],
        [0.23778223961642653, 0.051200837105975991, 0.060015916833644892]),
    'SMCR LS2': (
        [1.7049263182889274, 1.5798946067627673, 1.31174254601011],
        [0.22201185190294825, 0.050433315055723855, 0.05859376990019164]),
    'SMCC LS2': (
        [0.98229534745983638, 1.3582050750802559, 1.1876763578887821],
        [0.11227311024923387, 0.047099610261856877, 0.077648802454175506]),
    'SMD UB': (
        [-0.35516964094010689, -0.34794002273909852, -2.3175691601637305, -1.8879822529368466],
        [0.013067150392568333, 0.064529632179894825, 0.04629684550006169, 0.16636429064925967]),
    'SMD AV': (
        [-0.35516964094010689, -0.34794002273909852, -2.3175691601637305, -1.8879822529368466],
        [0.014371152776253658, 0.070958654308540425, 0.030632820902449308, 0.12414964324783105]),
    'SMD LS2': (
        [-0.35516964094010689, -0.34794002273909852, -2.3175691601637305, -1.8879822529368466],
        [0.013002256203021206, 0.062909389252027562, 0.045526674790652165, 0.15572833760186749]),
    'MD HO': (
        [-20, -2, -55, -71],
        [40.586315417539979, 2.046833685880487, 15.280876369327075, 150.2222222222222]),
    'RD UB': (
        [-0.1628787878787879, 0.23351648351648352, -0.0020833333333333329, 0, 0.039473684210526327],
        [0.01933252984389348, 0.019044600088556133, 0.0043198164682539683, 0.0086776859504132161,
         0.01910203139427516]),
    'RD AV': (
        [-0.1628787878787879, 0.23351648351648352, -0.0020833333333333329, 0, 0.039473684210526327],
        [0.034165299092892829, 0.029082403412893393, 0.025262844673675858, 0.035598997312942957,
         0.020077470009083408]),
    'PR UB': (
        [0.045454545454545456, 0.33333333333333331, 0.96153846153846156, 0.34999999999999998],
        [0.0043388429752066115, 0.020202020202020204, 0.0030818540433925029, 0.011973684210526315]),
    'PR AV': (
        [0.045454545454545456, 0.33333333333333331, 0.96153846153846156, 0.34999999999999998],
        [0.022263450834879402, 0.020408163265306121, 0.018838304552590265, 0.012244897959183671]),
    'PLO AV': (
        [-3.044522437723423, -0.6931471805599454, 3.2188758248682015, -0.61903920840622351],
        [0.37121212121212122, 0.34027777777777779, 0.3141025641025641, 0.20416666666666666]),
}

BINARY = pd.DataFrame({"study": ["s1", "s2", "s3", "s4", "s5"],
                       "events_treat": [0, 3, 0, 10, 5], "total_treat": [10, 12, 15, 10, 20],
                       "events_ctrl": [2, 0, 0, 10, 4], "total_ctrl": [11, 13, 14, 10, 19]})
PROP = pd.DataFrame({"study": ["p1", "p2", "p3", "p4"], "events": [0, 4, 12, 7], "total": [10, 12, 12, 20]})
PREPOST = pd.DataFrame({"study": ["A", "B", "C"], "mean_pre": [4.1, 5, 3.6], "sd_pre": [1.2, 1.8, 1.1],
                        "mean_post": [6.3, 7.9, 5.1], "sd_post": [2.1, 2.6, 1.9], "n": [12, 40, 21],
                        "r": [0.3, 0.6, 0.8]})
# dat.normand1999[1:4, ]
NORMAND = pd.DataFrame({"study": ["Edinburgh", "Orpington-Mild", "Orpington-Moderate",
                                  "Orpington-Severe"],
                        "mean_treat": [55, 27, 64, 66], "sd_treat": [47, 7, 17, 20],
                        "n_treat": [155, 31, 75, 18], "mean_ctrl": [75, 29, 119, 137],
                        "sd_ctrl": [64, 4, 29, 48], "n_ctrl": [156, 32, 71, 18]})


def check_against_r(es, frame, key):
    """Studies NA in R must be dropped (with a reason); the others must match to 1e-10."""
    yi, vi = (np.array(v, dtype=float) for v in R_OUT[key])
    na = np.isnan(yi)
    expected_studies = tuple(frame["study"][~na])
    assert es.study == expected_studies, key
    assert {s for s, _ in es.dropped} == set(frame["study"][na]), key
    assert_close(es.yi, yi[~na].tolist(), rel=1e-10, what=f"{key} yi")
    assert_close(es.vi, vi[~na].tolist(), rel=1e-10, what=f"{key} vi")
    assert [r["study"] for r in es.data] == list(expected_studies)


# ----------------------------------------------------------------------------- metafor reference cases

@pytest.mark.parametrize("case", cases_where(lambda c: c["method"] != "bias" and "yi" in c["expected"]))
def test_metafor_reference_yi_vi(case):
    es = escalc(case["measure"], rows_frame(case))
    assert isinstance(es, EffectSizes)
    assert es.kind == case["type"] and es.measure == case["measure"]
    assert es.study == tuple(str(r["study"]) for r in case["rows"])
    assert_close(es.yi, case["expected"]["yi"], rel=1e-8, what="yi")
    assert_close(es.vi, case["expected"]["vi"], rel=1e-8, what="vi")
    assert es.dropped == ()


def test_reference_cases_cover_every_measure():
    """Guard: the conformance test above must not silently select nothing."""
    measures = {c.values[0]["measure"] for c in cases_where(lambda c: "yi" in c["expected"])}
    assert {"PR", "PLO", "PAS", "PFT", "RR", "OR", "RD", "MD", "SMD", "SMCR", "GEN"} <= measures


@pytest.mark.parametrize("kind,cols,ni", [
    ("proportion", PROP, [10, 12, 12, 20]),
    ("binary", BINARY, [21, 25, 29, 20, 39]),
    ("continuous", NORMAND, [311, 63, 146, 36]),
    ("prepost", PREPOST, [12, 40, 21]),
])
def test_ni_is_total_sample_size(kind, cols, ni):
    measure = MEASURES[kind][0]
    es = escalc(measure, cols)
    assert es.kind == kind
    assert_close(es.ni, ni, rel=0)


# ----------------------------------------------------------------------------- zero cells (R output)

@pytest.mark.parametrize("key", [k for k in R_OUT if k.split()[0] in ("RR", "OR", "RD", "PETO")
                                 and k.split()[-1] in ("TRUE", "FALSE")])
def test_binary_zero_cells_match_metafor(key):
    measure, to, d00 = key.split()
    es = escalc(measure, BINARY, to=to, drop00=(d00 == "TRUE"))
    check_against_r(es, BINARY, key)


@pytest.mark.parametrize("key", [k for k in R_OUT if k.split()[0] in ("PR", "PLO", "PAS", "PFT")
                                 and len(k.split()) == 2
                                 and k.split()[1] in ("only0", "all", "if0all", "none")])
def test_proportion_zero_cells_match_metafor(key):
    measure, to = key.split()
    check_against_r(escalc(measure, PROP, to=to), PROP, key)


@pytest.mark.parametrize("measure", ["PAS", "PFT"])
def test_explicit_add_corrects_pas_pft_like_metafor(measure):
    es = escalc(measure, PROP, add=0.5)
    check_against_r(es, PROP, f"{measure} add0.5")
    assert any("p1, p3" in n and "continuity correction" in n for n in es.notes)


def test_plo_custom_add_to_all():
    es = escalc("PLO", PROP, add=0.25, to="all")
    check_against_r(es, PROP, "PLO add0.25 all")
    assert any("0.25 added" in n and "p1, p2, p3, p4" in n for n in es.notes)


def test_default_correction_note_names_corrected_studies():
    es = escalc("OR", BINARY)
    note = next(n for n in es.notes if n.startswith("continuity correction"))
    assert "s1, s2, s3, s4" in note and "s5" not in note and "only0" in note
    es = escalc("PFT", PROP)
    assert not any(n.startswith("continuity correction") for n in es.notes)
    assert any("no continuity correction" in n and "p1, p3" in n for n in es.notes)


def test_drop00_reports_dropped_studies_and_reasons():
    es = escalc("RR", BINARY, drop00=True)
    reasons = dict(es.dropped)
    assert set(reasons) == {"s3", "s4"}
    assert "no events in either arm" in reasons["s3"]
    assert "all participants" in reasons["s4"]
    assert es.ni.tolist() == [21, 25, 39]
    # the correction note must not list dropped studies
    assert all("s3" not in n for n in es.notes)


def test_no_correction_drops_inestimable_studies_with_reason():
    es = escalc("OR", BINARY, to="none")
    assert es.study == ("s5",)
    assert all("not estimable" in why for _, why in es.dropped)


def test_zero_variance_is_kept_with_warning():
    es = escalc("RD", BINARY, to="none")
    assert "s3" in es.study and es.vi[es.study.index("s3")] == 0
    assert any(n.startswith("warning: sampling variance vi = 0") and "s3, s4" in n for n in es.notes)


# ----------------------------------------------------------------------------- variance types, pre/post

@pytest.mark.parametrize("key,measure,frame,vtype", [
    ("SMD UB", "SMD", NORMAND, "UB"), ("SMD AV", "SMD", NORMAND, "AV"), ("SMD LS2", "SMD", NORMAND, "LS2"),
    ("MD HO", "MD", NORMAND, "HO"), ("RD UB", "RD", BINARY, "UB"), ("RD AV", "RD", BINARY, "AV"),
    ("PR UB", "PR", PROP, "UB"), ("PR AV", "PR", PROP, "AV"), ("PLO AV", "PLO", PROP, "AV"),
    ("SMCR LS2", "SMCR", PREPOST, "LS2"), ("SMCC LS2", "SMCC", PREPOST, "LS2"),
])
def test_variance_types_match_metafor(key, measure, frame, vtype):
    check_against_r(escalc(measure, frame, vtype=vtype), frame, key)


@pytest.mark.parametrize("measure", ["SMCR", "SMCC", "MC"])
def test_prepost_measures_match_metafor(measure):
    es = escalc(measure, PREPOST)
    check_against_r(es, PREPOST, measure)
    assert any("as reported per study" in n and "A 0.3" in n for n in es.notes)


def test_smcr_does_not_need_sd_post():
    frame = PREPOST.assign(sd_post=[np.nan, np.nan, np.nan])
    check_against_r(escalc("SMCR", frame, kind="prepost"), frame, "SMCR")
    with pytest.raises(ValueError, match="'sd_post' is missing"):
        escalc("SMCC", frame, kind="prepost")


def test_r_row_value_wins_then_argument_then_default():
    no_r = PREPOST.drop(columns="r")
    es = escalc("SMCR", no_r)
    assert es.notes == ("pre/post correlation r = 0.5 (assumed default 0.5 (no study reports r)) "
                        "used for: A, B, C",)
    es_arg = escalc("SMCR", no_r, r=0.7, r_source="config defaults.r")
    assert any("r = 0.7 (config defaults.r) used for: A, B, C" in n for n in es_arg.notes)
    # vi depends on r: 2(1 - r)/n + yi^2/(2n)
    assert_close(es_arg.vi - es.vi, (2 * (0.5 - 0.7) / no_r["n"]).tolist(), rel=1e-12)
    mixed = PREPOST.assign(r=[0.3, np.nan, 0.8])
    es_mix = escalc("SMCR", mixed, r=0.6, r_source="config defaults.r")
    check_against_r(es_mix, mixed, "SMCR")      # B gets 0.6 from the argument, as in R's data
    assert any("A 0.3, C 0.8" in n for n in es_mix.notes)
    assert any("r = 0.6 (config defaults.r) used for: B" in n for n in es_mix.notes)


@pytest.mark.parametrize("r_arg,col", [(1.2, None), (None, [0.3, -1.5, 0.8])])
def test_r_outside_unit_interval_is_an_error(r_arg, col):
    frame = PREPOST if col is None else PREPOST.assign(r=col)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        escalc("SMCR", frame.drop(columns="r") if col is None else frame, r=r_arg)


# ----------------------------------------------------------------------------- generic input

def test_generic_vi_sei_and_ci_per_row():
    z = 1.959963984540054
    frame = pd.DataFrame({"study": ["a", "b", "c"], "yi": [0.2, -0.1, 0.5],
                          "vi": [0.04, np.nan, np.nan], "sei": [np.nan, 0.3, np.nan],
                          "ci_lb": [np.nan, np.nan, 0.5 - 2 * z * 0.1],
                          "ci_ub": [np.nan, np.nan, 0.5 + 2 * z * 0.1]})
    es = escalc("GEN", frame)
    assert es.kind == "generic" and es.ni is None
    assert_close(es.vi, [0.04, 0.09, 0.04], rel=1e-12)
    assert any(n.startswith("vi = sei^2 for: b") for n in es.notes)
    assert any("95% CI" in n and "symmetric" in n and n.endswith("c") for n in es.notes)


def test_generic_sei_only_and_ci_only_tables():
    es = escalc("GEN", pd.DataFrame({"study": ["a", "b"], "yi": [0.1, 0.2], "sei": [0.5, 0.25]}))
    assert_close(es.vi, [0.25, 0.0625], rel=1e-12)
    es = escalc("OR", pd.DataFrame({"study": ["a"], "yi": [np.log(2)], "ci_lb": [np.log(2) - 0.5],
                                    "ci_ub": [np.log(2) + 0.5]}))
    assert es.measure == "OR"
    assert_close(es.vi, [(1 / 1.959963984540054 / 2) ** 2], rel=1e-12)


def test_generic_asymmetric_ci_warns():
    # a ratio-scale CI (OR 2.0, 1.2 to 3.5) typed in with yi on the log scale
    frame = pd.DataFrame({"study": ["x"], "yi": [np.log(2.0)], "ci_lb": [1.2], "ci_ub": [3.5]})
    assert any(n.startswith("warning: 95% CI not centred") for n in escalc("GEN", frame).notes)


def test_generic_errors():
    with pytest.raises(ValueError, match="study 'b': needs vi, sei"):
        escalc("GEN", pd.DataFrame({"study": ["a", "b"], "yi": [0.1, 0.2], "vi": [0.1, np.nan]}))
    with pytest.raises(ValueError, match="'vi' = -0.1 must be > 0"):
        escalc("GEN", pd.DataFrame({"study": ["a"], "yi": [0.1], "vi": [-0.1]}))
    with pytest.raises(ValueError, match="must exceed ci_lb"):
        escalc("GEN", pd.DataFrame({"study": ["a"], "yi": [0.1], "ci_lb": [0.3], "ci_ub": [0.2]}))
    with pytest.raises(ValueError, match="`n` column"):
        escalc("PFT", pd.DataFrame({"study": ["a"], "yi": [0.1], "vi": [0.01]}))


# ----------------------------------------------------------------------------- kinds and measures

@pytest.mark.parametrize("kind", list(KIND_COLUMNS))
def test_detect_kind_from_each_column_set(kind):
    for cols in KIND_COLUMNS[kind]:
        assert detect_kind(("study", "outcome", "source") + cols) == kind


def test_detect_kind_prefers_raw_data_over_generic():
    assert detect_kind(["study", "events", "total", "yi", "vi"]) == "proportion"


def test_detect_kind_errors_list_the_column_sets():
    with pytest.raises(ValueError) as err:
        detect_kind(["study", "events", "n_total"])
    msg = str(err.value)
    assert "events, total" in msg and "mean_pre, sd_pre, mean_post, sd_post, n" in msg
    assert "yi, ci_lb, ci_ub" in msg and "n_total" in msg
    with pytest.raises(ValueError, match="ambiguous"):
        detect_kind(["study", "events", "total", "events_treat", "total_treat", "events_ctrl", "total_ctrl"])


def test_escalc_ignores_empty_columns_when_detecting():
    frame = PROP.assign(mean_treat=np.nan, sd_treat=np.nan, n_treat=np.nan, mean_ctrl=np.nan,
                        sd_ctrl=np.nan, n_ctrl=np.nan)
    assert escalc("PLO", frame).kind == "proportion"


def test_check_measure_names_valid_measures():
    assert check_measure("plo", "proportion") == "PLO"
    with pytest.raises(ValueError, match="valid measures for binary data: RR, OR, RD, PETO"):
        check_measure("SMD", "binary")
    with pytest.raises(ValueError, match="valid measures for proportion data: PR, PLO, PAS, PFT"):
        escalc("RR", PROP)


# ----------------------------------------------------------------------------- impossible input

@pytest.mark.parametrize("frame,measure,pattern", [
    (PROP.assign(events=[0, 13, 12, 7]), "PLO",
     r"study 'p2': column 'events' = 13 exceeds column 'total' = 12"),
    (PROP.assign(events=[0, -1, 12, 7]), "PR", r"study 'p2': column 'events' = -1 is negative"),
    (PROP.assign(total=[10, 0, 12, 20], events=[0, 0, 12, 7]), "PR", r"'total' = 0 must be > 0"),
    (BINARY.assign(events_ctrl=[2, 0, 0, 11, 4]), "OR", r"study 's4': column 'events_ctrl' = 11 exceeds"),
    (BINARY.assign(events_treat=[0, -3, 0, 10, 5]), "RR", r"study 's2': column 'events_treat' = -3"),
    (NORMAND.assign(sd_ctrl=[64, 0, 29, 48]), "SMD",
     r"study 'Orpington-Mild': column 'sd_ctrl' = 0 must be > 0"),
    (NORMAND.assign(n_treat=[155, 31, 1, 18]), "MD",
     r"'Orpington-Moderate': column 'n_treat' = 1 must be >= 2"),
    (PREPOST.assign(sd_pre=[1.2, -1.8, 1.1]), "SMCR", r"study 'B': column 'sd_pre' = -1.8 must be > 0"),
    (PREPOST.assign(n=[12, 1, 21]), "SMCR", r"study 'B': column 'n' = 1 must be >= 2"),
    (PREPOST.assign(r=[1.0, 0.6, 0.8], sd_pre=[2.1, 1.8, 1.1]), "SMCC", r"study 'A': change-score SD is 0"),
    (PROP.assign(events=["0", "four", 12, 7]), "PR", r"study 'p2': column 'events' = 'four' is not a number"),
    (PROP.assign(total=[10, np.nan, 12, 20]), "PR", r"study 'p2': column 'total' is missing"),
    (PROP.drop(columns="study"), "PR", r"`study` column"),
])
def test_impossible_input_names_study_column_value(frame, measure, pattern):
    with pytest.raises(ValueError, match=pattern):
        escalc(measure, frame)


def test_repeated_study_label_is_pooled_as_separate_rows_with_a_note():
    # metafor's escalc keeps duplicated labels (R's dat.raudenbush1985 has "Pellegrini & Hicks 1972"
    # twice); each row keeps its own effect size, and the note says so
    es = escalc("PR", PROP.assign(study=["p1", "p1", "p3", "p4"]))
    assert es.k == 4 and es.study[:2] == ("p1", "p1")
    assert es.yi[1] == PROP["events"].iloc[1] / PROP["total"].iloc[1]      # 4/12, no correction
    assert any("appears 2 times" in n for n in es.notes)


def test_bad_options():
    with pytest.raises(ValueError, match="to = 'some'"):
        escalc("OR", BINARY, to="some")
    with pytest.raises(ValueError, match="add"):
        escalc("OR", BINARY, add=-1)
    with pytest.raises(ValueError, match="vtype 'UB' is not available for measure OR"):
        escalc("OR", BINARY, vtype="UB")


def test_vectorised_over_many_studies():
    rng = np.random.default_rng(1)
    k = 20000
    n1, n2 = rng.integers(5, 200, k), rng.integers(5, 200, k)
    frame = pd.DataFrame({"study": np.arange(k).astype(str), "events_treat": rng.binomial(n1, 0.3),
                          "total_treat": n1, "events_ctrl": rng.binomial(n2, 0.2), "total_ctrl": n2})
    es = escalc("OR", frame)
    a, c = frame["events_treat"].to_numpy(float), frame["events_ctrl"].to_numpy(float)
    b, d = n1 - a, n2 - c
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    a, b, c, d = (x + 0.5 * zero for x in (a, b, c, d))
    assert_close(es.yi, np.log(a * d / (b * c)).tolist(), rel=1e-10)
    assert es.k == k


# ----------------------------------------------------------------------------- pre/post with n = 2
# R: escalc("SMCR", m1i=c(1.5,2.5,0.3), m2i=c(1,2,0.1), sd1i=c(1,1,0.8), ni=c(2,10,3), ri=c(.5,.5,.3))
#    escalc("SMCC", ..., sd1i=c(1,1.2,0.9), sd2i=c(1,1,0.8), ...): row 1 NA (.cmicalc(1) is NA)
PREPOST_N2 = pd.DataFrame({"study": ["A", "B", "C"], "mean_pre": [1.0, 2.0, 0.1],
                           "sd_pre": [1.0, 1.0, 0.8], "mean_post": [1.5, 2.5, 0.3],
                           "sd_post": [1.0, 1.2, 0.9], "n": [2, 10, 3], "r": [0.5, 0.5, 0.3]})
R_PREPOST_N2 = {"SMCR": ([0.456937445896276, 0.141047395886939], [0.110439591473111, 0.469982394647748]),
                "SMCC": ([0.410341939887719, 0.111835882806265], [0.108419025381541, 0.335417877447176])}


@pytest.mark.parametrize("measure", sorted(R_PREPOST_N2))
def test_prepost_n2_standardised_change_is_na_as_metafor(measure):
    es = escalc(measure, PREPOST_N2)
    assert es.study == ("B", "C")
    assert_close(es.yi, R_PREPOST_N2[measure][0], rel=1e-10, what="yi")
    assert_close(es.vi, R_PREPOST_N2[measure][1], rel=1e-10, what="vi")
    (study, reason), = es.dropped
    assert study == "A" and "n = 2" in reason and "zero cell" not in reason


def test_prepost_n2_raw_mean_change_is_estimable():
    es = escalc("MC", PREPOST_N2)  # R escalc("MC", ...): no NA, vi = var_d / n
    assert es.study == ("A", "B", "C") and es.dropped == ()
    assert es.vi[0] == pytest.approx((1.0 + 1.0 - 2 * 0.5) / 2)
