"""Subgroup analyses against R metafor 3.8-1 (tests/metafor_cases_analyses.json, analysis == "subgroup")."""
import json

import numpy as np
import pytest

from conftest import TESTS, assert_close, cases_where, rows_frame
from metapool.models import fit
from metapool.results import EffectSizes, result_from_dict
from metapool.subgroups import SubgroupAnalysis, subgroup_analysis

ANALYSES = TESTS / "metafor_cases_analyses.json"


def _run(case):
    rows = rows_frame(case)
    a = case["args"]
    return subgroup_analysis(rows.yi, rows.vi, rows[a["by"]], method=case["method"], test=case["test"],
                             tau2=a["tau2"], study=rows.study, by=a["by"]).to_dict()


@pytest.mark.parametrize("case", cases_where(lambda c: c["analysis"] == "subgroup", ANALYSES))
def test_subgroups_match_metafor(case):
    out = _run(case)
    e = case["expected"]
    rel = 1e-8 if case["method"] in ("FE", "DL") else 1e-6
    assert [g["name"] for g in out["groups"]] == [g["name"] for g in e["groups"]]
    for ours, ref in zip(out["groups"], e["groups"]):
        assert ours["study"] == list(np.atleast_1d(ref["study"]))
        f = ours["fit"]
        assert f["k"] == ref["k"]
        for key in ("estimate", "se", "stat", "pval", "ci_lb", "ci_ub", "tau2", "I2", "Q", "Q_pval"):
            if key in ref and not (case["method"] == "FE" and key == "tau2"):
                assert_close(f[key], ref[key], rel=rel, abs_=1e-10, what=f"{ours['name']}: {key}")
    t, et = out["test"], e["test"]
    assert_close(t["Q_between"], et["Q_between"], rel=rel, abs_=1e-10, what="Q_between")
    assert t["df"] == et["df"]
    assert_close(t["pval"], et["pval"], rel=rel, abs_=1e-12, what="pval")
    if et.get("df2") not in ({}, None):
        assert t["df2"] == et["df2"] and t["dist"] == "F"
    if "tau2_common" in et and case["method"] != "FE":
        assert_close(t["tau2_common"], et["tau2_common"], rel=rel, abs_=1e-12, what="tau2_common")
    if "Q_within" in et:
        assert_close(t["Q_within"], et["Q_within"], rel=1e-8, what="Q_within")


def test_fixed_effect_q_decomposition():
    """Q_total = Q_between + sum of within-subgroup Q under the fixed-effect model."""
    rng = np.random.default_rng(2)
    y, v = rng.normal(0, 0.5, 14), rng.uniform(0.02, 0.2, 14)
    grp = np.repeat(["a", "b", "c"], [5, 5, 4])
    out = subgroup_analysis(y, v, grp, method="FE").to_dict()
    total = fit(y, v, method="FE").Q
    q_within = sum(g["fit"]["Q"] for g in out["groups"])
    assert out["test"]["Q_between"] + q_within == pytest.approx(total, rel=1e-10)
    assert out["test"]["Q_within"] == pytest.approx(q_within, rel=1e-10)
    assert out["test"]["model"] == "fixed"


def test_output_is_json_and_fits_round_trip():
    y = np.array([0.2, 0.5, 0.1, 0.9, 1.1, 0.7])
    v = np.array([0.04, 0.05, 0.03, 0.06, 0.05, 0.04])
    es = EffectSizes(measure="PLO", kind="generic", study=list("ABCDEF"), yi=y, vi=v)
    for mode in ("separate", "common"):
        res = subgroup_analysis(es, groups=["0.5 MIU daily"] * 3 + ["1 MIU eod"] * 3, tau2=mode,
                                by="dose_regimen")
        out = res.to_dict()
        s = json.dumps(out, allow_nan=False)       # plain JSON
        back = json.loads(s)
        assert back["by"] == "dose_regimen" and back["test"]["tau2"] == mode
        f = result_from_dict(back["groups"][1]["fit"])
        assert f.measure == "PLO" and f.study == ("D", "E", "F")
        assert 0 < f.reporting()["estimate"] < 1
        # the typed record round-trips through JSON unchanged
        assert SubgroupAnalysis.from_dict(back).same_as(res)


def test_common_tau2_group_fits_share_tau2():
    rng = np.random.default_rng(4)
    y, v = rng.normal(0, 0.6, 12), rng.uniform(0.02, 0.2, 12)
    out = subgroup_analysis(y, v, ["x", "y"] * 6, tau2="common", method="REML").to_dict()
    t = {g["fit"]["tau2"] for g in out["groups"]}
    assert len(t) == 1 and t.pop() == pytest.approx(out["test"]["tau2_common"])


def test_singleton_group_knha_falls_back_to_z():
    y = np.array([0.2, 0.5, 0.1, 0.9])
    v = np.array([0.04, 0.05, 0.03, 0.06])
    out = subgroup_analysis(y, v, ["a", "a", "a", "b"], test="knha").to_dict()
    b = out["groups"][1]["fit"]
    assert b["test"] == "z" and b["se"] == pytest.approx(np.sqrt(0.06))
    assert any("one study" in n for n in out["notes"])


def test_errors():
    y, v = np.zeros(4), np.full(4, 0.1)
    with pytest.raises(ValueError, match="single value"):
        subgroup_analysis(y, v, ["a"] * 4)
    with pytest.raises(ValueError, match="empty for study rows"):
        subgroup_analysis(y, v, ["a", None, "b", "b"], by="dose_regimen")
    with pytest.raises(ValueError, match="tau2 must be"):
        subgroup_analysis(y, v, ["a", "a", "b", "b"], tau2="pooled")
    with pytest.raises(ValueError, match="3 subgroup labels"):
        subgroup_analysis(y, v, ["a", "a", "b"])
