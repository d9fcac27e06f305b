"""The further analyses wired into the workflow (issue 4), end to end.

One workflow run on a synthetic review in a temporary directory (k = 12 single-arm proportions
with a numeric moderator and two dose regimens, so every analysis runs; plus a k = 2 outcome so
that every analysis reports "not run"), shared by the tests through a module-scoped fixture.
The bundled data are checked through ``tests/test_pipeline.py``'s run where they need the
workflow; here they are analysed in-process (fast).  Values in the JSON are compared with
calling the package functions directly.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metapool import bias, sensitivity
from metapool.analysis import GOSH_SUBSETS, MIN_K, analyse_outcome, resolve_spec
from metapool.metareg import meta_regression
from metapool.results import OutcomeAnalysis
from metapool.subgroups import subgroup_analysis

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("loo", "cumulative", "influence", "baujat", "gosh", "bubble")
ANALYSES = {"leave_one_out": True, "cumulative": {"order": "year"}, "influence": True, "gosh": True,
            "small_study": True, "metareg": {"moderators": ["year"]}}


def synthetic(k=12, seed=11):
    rng = np.random.default_rng(seed)
    n = rng.integers(20, 150, k)
    year = 2004 + np.arange(k)
    logit = -1.0 + 0.1 * (year - 2010) + rng.normal(0, 0.35, k)
    events = rng.binomial(n, 1 / (1 + np.exp(-logit)))
    names = [f"Syn{i:02d}" for i in range(k)]
    studies = pd.DataFrame({"study": names + ["Pair1", "Pair2"], "author": "Synthetic",
                            "year": list(year) + [2020, 2021], "design": "single-arm", "disease": "SLE",
                            "dose_regimen": ["0.5 MIU/day x5d" if i % 3 else "1 MIU qod" for i in range(k)]
                            + ["1 MIU qod", "1 MIU qod"],
                            "n": list(n) + [30, 40], "country": "NR", "registration": "", "source": "synthetic"})
    rows = pd.DataFrame({"study": names, "outcome": "syn_resp", "events": events, "total": n,
                         "status": "reported", "source": "synthetic"})
    small = pd.DataFrame({"study": ["Pair1", "Pair2"], "outcome": "syn_pair", "events": [0, 9],
                          "total": [30, 40], "status": "reported", "source": "synthetic"})
    return studies, pd.concat([rows, small], ignore_index=True)


CONFIG = {
    "title": "Synthetic review",
    "studies": "data/studies.csv",
    "tables": ["data/proportions.csv"],
    "defaults": {"analyses": ANALYSES},
    "outcomes": {
        "syn_resp": {"label": "Synthetic response", "measure": "PLO", "methods": ["FE", "REML", "GLMM"],
                     "subgroup": "dose_regimen"},
        "syn_pair": {"label": "Synthetic pair", "measure": "PLO", "methods": ["FE", "REML", "GLMM"]},
    },
}


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("synthetic")
    (cwd / "data").mkdir()
    studies, rows = synthetic()
    studies.to_csv(cwd / "data" / "studies.csv", index=False)
    rows.to_csv(cwd / "data" / "proportions.csv", index=False)
    (cwd / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"],
                         cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return cwd


def pooled(cwd, outcome) -> OutcomeAnalysis:
    return OutcomeAnalysis.from_dict(json.loads((cwd / "results" / "pooled" / f"{outcome}.json").read_text()))


def frame(records) -> pd.DataFrame:
    return pd.DataFrame(records)


def assert_table(stored, direct: pd.DataFrame, columns):
    got = frame(stored)
    assert list(got["study"]) == list(direct["study"])
    for c in columns:
        np.testing.assert_allclose(got[c].astype(float), direct[c].astype(float), rtol=1e-10, atol=1e-12,
                                   err_msg=c)


def test_every_analysis_matches_the_package_functions(review):
    a = pooled(review, "syn_resp")
    ex = a.extras
    fit = a.fit("REML")
    assert [f.method for f in a.fits] == ["FE", "REML", "GLMM"] and ex["glmm"]["status"] == "ok"
    for name in ANALYSES:
        assert ex[name]["status"] == "ok", (name, ex[name])
    cols = ("estimate", "se", "ci_lb", "ci_ub", "tau2", "I2")
    assert_table(ex["leave_one_out"]["table"], sensitivity.leave_one_out(fit), cols)
    years = np.array([int(s[3:]) + 2004 for s in fit.study])
    assert_table(ex["cumulative"]["table"], sensitivity.cumulative(fit, order=years), cols)
    inf = sensitivity.influence(fit)
    assert_table(ex["influence"]["table"], inf, ("rstudent", "dffits", "cook_d", "hat", "tau2_del"))
    assert ex["influence"]["influential"] == list(inf.loc[inf["inf"], "study"])
    assert_table(ex["influence"]["baujat"], sensitivity.baujat(fit), ("x", "y"))
    g = sensitivity.gosh(fit, subsets=GOSH_SUBSETS, seed=1)
    assert ex["gosh"]["n_subsets"] == g.n_subsets == 2**12 - 1
    np.testing.assert_allclose(ex["gosh"]["estimate_quantiles"], g.to_dict()["estimate_quantiles"], rtol=1e-10)
    y, v = np.asarray(fit.yi), np.asarray(fit.vi)
    eg = bias.egger_test(y, v, model="lm", method="REML")
    assert ex["small_study"]["egger"]["pval"] == pytest.approx(eg.pval, rel=1e-10)
    assert ex["small_study"]["begg"]["tau"] == pytest.approx(bias.begg_test(y, v).tau, rel=1e-10)
    tf = bias.trim_and_fill(y, v, method="REML")
    assert ex["small_study"]["trim_and_fill"]["k0"] == tf.k0
    assert ex["small_study"]["trim_and_fill"]["fit"]["estimate"] == pytest.approx(tf.fit.estimate, rel=1e-10)
    assert ex["small_study"]["power_note"] is None            # k = 12 >= 10
    assert "peters" not in ex["small_study"]                   # single-arm data: no Peters test
    reg = meta_regression(y, v, pd.DataFrame({"year": years}), method="REML")
    np.testing.assert_allclose([c["estimate"] for c in ex["metareg"]["coefficients"]], reg.estimate, rtol=1e-9)
    for key in ("QM", "QM_pval", "tau2", "R2"):
        assert ex["metareg"][key] == pytest.approx(getattr(reg, key), rel=1e-8, abs=1e-12), key
    assert ex["metareg"]["bubble"] is True


def test_subgroups_separate_and_common_tau2(review):
    a = pooled(review, "syn_resp")
    sg = a.extras["subgroups"]
    fit = a.fit("REML")
    groups = ["1 MIU qod" if int(s[3:]) % 3 == 0 else "0.5 MIU/day x5d" for s in fit.study]
    sep = subgroup_analysis(a.effects, groups=groups, method="REML", by="dose_regimen")
    com = subgroup_analysis(a.effects, groups=groups, method="REML", tau2="common", by="dose_regimen")
    assert sg["test"]["Q_between"] == pytest.approx(sep["test"]["Q_between"], rel=1e-10)
    assert sg["common_tau2"]["test"]["tau2"] == "common"
    assert sg["common_tau2"]["test"]["Q_between"] == pytest.approx(com["test"]["Q_between"], rel=1e-10)
    assert sg["levels"] == {"0.5 MIU/day x5d": 8, "1 MIU qod": 4}


def test_diagnostic_figures_exist_only_where_they_apply(review):
    fig = review / "results" / "figures"
    for kind in KINDS:
        for ext in ("png", "svg"):
            assert (fig / f"syn_resp_{kind}.{ext}").stat().st_size > 1000, (kind, ext)
            assert not (fig / f"syn_pair_{kind}.{ext}").exists(), (kind, ext)
    assert pooled(review, "syn_resp").extras["figures"] == list(KINDS)
    assert pooled(review, "syn_pair").extras["figures"] == []


def test_small_k_says_not_run_with_the_reason(review):
    ex = pooled(review, "syn_pair").extras
    for name in ANALYSES:
        need = MIN_K[name]
        assert ex[name]["status"] == f"not run: k = 2 < {need}", (name, ex[name])
        assert ex[name]["k"] == 2 and ex[name]["min_k"] == need
    # 0/30 is shown with its exact interval, not only as the continuity-corrected 1.6 %
    assert any(n.startswith("Pair1: 0/30 observed = 0%") for n in ex["notes"])


def test_glmm_rows_in_summary_and_report_sections(review):
    summary = pd.read_csv(review / "results" / "summary.csv")
    glmm = summary[summary["method"] == "GLMM"]
    assert set(glmm["outcome"]) == {"syn_resp", "syn_pair"}
    html = (review / "results" / "report.html").read_text()
    for title in ("Leave-one-out", "Cumulative meta-analysis", "Influence diagnostics and Baujat plot",
                  "GOSH plot", "Small-study effects", "Meta-regression", "Subgroups by dose_regimen",
                  "Subgroup comparisons"):
        assert f"<h4>{title}</h4>" in html or f"<h3>{title}</h3>" in html, title
    assert "Not run (too few studies for the analysis)" in html and "k = 2 &lt; 3" in html
    assert 'alt="Bubble plot: Synthetic response"' in html and 'alt="GOSH plot: Synthetic response"' in html


def test_nothing_to_do_after_the_run(review):
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "1",
                          "-n"], cwd=review, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


# ------------------------------------------------------------------------ bundled data, in-process
@pytest.fixture(scope="module")
def bundled():
    from metapool.data import load_studies, load_tables

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    studies = load_studies(ROOT / cfg["studies"])
    rows = load_tables([ROOT / t for t in cfg["tables"]], studies=studies)
    return cfg, studies, rows


def analyse(bundled, outcome):
    cfg, studies, rows = bundled
    return analyse_outcome(outcome, cfg["outcomes"][outcome], rows, studies, cfg.get("defaults"))


def test_bundled_treg_th17_dose_comparison_is_impossible(bundled):
    for outcome in ("treg_abs", "th17_abs", "th17_treg_ratio"):
        a = analyse(bundled, outcome)
        sg = a.extras["subgroups"]
        assert sg["by"] == "dose_regimen" and sg["groups"] == []
        assert list(sg["levels"]) == ["0.5 MIU/day x5d"]
        assert sg["status"].startswith(f"not run: all {a.effects.k} studies have dose_regimen")


def test_bundled_single_arm_proportions_are_logit_with_glmm(bundled):
    cfg, _, _ = bundled
    single = [o for o, s in cfg["outcomes"].items() if s["measure"] in ("PR", "PLO", "PAS", "PFT")]
    assert single and all(cfg["outcomes"][o]["measure"] == "PLO" for o in single)
    for o in single:
        a = analyse(bundled, o)
        for f in a.fits:
            rep = f.reporting()
            assert 0 <= rep["ci_lb"] <= rep["estimate"] <= rep["ci_ub"] <= 1, (o, f.method)
        assert "glmm" in a.extras
        if a.effects.k < 2:
            assert a.extras["glmm"]["status"].startswith("not run"), o


def test_bundled_k3_runs_and_power_note(bundled):
    a = analyse(bundled, "treg_abs")
    assert a.effects.k == 3
    ss = a.extras["small_study"]
    assert ss["status"] == "ok" and ss["power_note"] == bias.POWER_NOTE
    assert a.extras["metareg"]["status"].startswith("not run: k = ")
    assert a.extras["figures"] == ["loo", "cumulative", "influence", "baujat", "gosh"]


def test_defaults_switch_analyses_on_and_outcomes_override():
    spec = resolve_spec({"label": "x", "measure": "PLO", "analyses": {"gosh": False, "leave_one_out": {"min_k": 5}}},
                        {"analyses": ANALYSES})
    assert spec["analyses"]["gosh"] is False and spec["analyses"]["leave_one_out"] == {"min_k": 5}
    assert spec["analyses"]["influence"] is True


# --------------------------------------------------------------------------- inferred numbers
def _with_inferred(kind="proportion"):
    if kind == "proportion":
        return pd.DataFrame({"study": ["A", "B", "C", "D", "E"], "outcome": "o",
                             "events": [7, 12, 30, 9, 10], "total": [13, 40, 50, 25, 18],
                             "status": ["reported", "derived", "secondary", "inferred", "inferred"],
                             "source": "synthetic", "note": ["", "", "", "n assumed", "count from text"]})
    return pd.DataFrame({"study": ["A", "B", "C"], "outcome": "o", "events_treat": [16, 10, 34],
                         "total_treat": [29, 30, 50], "events_ctrl": [11, 8, 29], "total_ctrl": [30, 30, 50],
                         "status": ["derived", "reported", "inferred"], "source": "synthetic"})


@pytest.mark.parametrize("kind, measure, methods", [("proportion", "PLO", ["FE", "DL", "REML", "GLMM"]),
                                                     ("binary", "RR", ["FE", "MH", "REML"])])
def test_inferred_rows_enter_only_the_sensitivity_analysis(kind, measure, methods):
    from metapool.results import result_from_dict

    rows = _with_inferred(kind)
    inferred = list(rows.loc[rows["status"] == "inferred", "study"])
    a = analyse_outcome("o", {"label": "o", "measure": measure, "methods": methods}, rows, None, {})
    assert not set(inferred) & set(a.effects.study)
    assert all(f.k == len(rows) - len(inferred) for f in a.fits)
    sens = a.extras["inferred_sensitivity"]
    assert sens["status"] == "ok" and [p["study"] for p in sens["added"]] == inferred
    assert sens["k"] == len(rows) and sens["k_primary"] == a.effects.k
    assert sens["statuses"] == ["reported", "derived", "secondary", "inferred"]
    # the same fits as a primary analysis that lets inferred numbers in (independent path)
    full = analyse_outcome("o", {"label": "o", "measure": measure, "methods": methods,
                                 "status": sens["statuses"]}, rows, None, {})
    got = [result_from_dict(f) for f in sens["fits"]]
    assert [f.method for f in got] == [f.method for f in full.fits] == [f.method for f in a.fits]
    for g, f in zip(got, full.fits):
        assert g.k == len(rows) and set(g.study) == set(rows["study"])
        np.testing.assert_allclose([g.estimate, g.se, g.tau2], [f.estimate, f.se, f.tau2], rtol=1e-10, atol=1e-12)
        assert g.estimate != pytest.approx(a.fit(g.method).estimate, rel=1e-6)


def test_inferred_sensitivity_not_run_without_inferred_rows_and_switchable():
    rows = _with_inferred().query("status != 'inferred'")
    a = analyse_outcome("o", {"label": "o", "measure": "PLO"}, rows, None, {})
    assert a.extras["inferred_sensitivity"] == {"status": "not run: no inferred rows",
                                                "statuses": ["reported", "derived", "secondary", "inferred"]}
    off = analyse_outcome("o", {"label": "o", "measure": "PLO",
                                "analyses": {"inferred_sensitivity": False}}, _with_inferred(), None, {})
    assert "inferred_sensitivity" not in off.extras


def test_outcome_with_only_inferred_rows_says_so():
    from metapool.analysis import AnalysisError

    rows = _with_inferred().query("status == 'inferred'")
    with pytest.raises(AnalysisError, match=r"only rows are inferred \(D, E\).*sensitivity analyses"):
        analyse_outcome("o", {"label": "o", "measure": "PLO"}, rows, None, {})


def test_fit_variant_with_statuses_uses_the_stored_inferred_rows():
    from metapool.analysis import AnalysisError, fit_variant
    from metapool.effects import escalc
    from metapool.models import fit

    rows = _with_inferred()
    a = analyse_outcome("o", {"label": "o", "measure": "PLO"}, rows, None, {})
    all_st = ["reported", "derived", "secondary", "inferred"]
    v = fit_variant(a, measure="PR", method="FE", statuses=all_st)
    direct = fit(escalc("PR", rows), method="FE")
    assert v.k == 5 and v.estimate == pytest.approx(direct.estimate, rel=1e-12)
    only_reported = fit_variant(a, measure="PR", method="FE", statuses=["reported", "inferred"])
    assert set(only_reported.study) == {"A", "D", "E"}
    assert fit_variant(a, method="FE", statuses=["reported", "derived", "secondary"]) is a.fit("FE")
    off = analyse_outcome("o", {"label": "o", "measure": "PLO",
                                "analyses": {"inferred_sensitivity": False}}, rows, None, {})
    with pytest.raises(AnalysisError, match="status inferred are not stored"):
        fit_variant(off, measure="PR", method="FE", statuses=all_st)


def test_bundled_primary_pools_have_no_inferred_numbers():
    from metapool.data import load_studies, load_tables

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert "inferred" not in cfg["defaults"]["status"]
    assert cfg["defaults"]["analyses"]["inferred_sensitivity"] is True
    studies = load_studies(ROOT / cfg["studies"])
    rows = load_tables([ROOT / t for t in cfg["tables"]], studies=studies)
    with_inferred = {}
    for o, spec in cfg["outcomes"].items():
        assert "inferred" not in (spec.get("status") or []), o
        assert "INFERRED" not in spec["label"], o
        a = analyse_outcome(o, spec, rows, studies, cfg["defaults"])
        assert all(p["status"] != "inferred" for p in a.extras["provenance"]), o
        sens = a.extras["inferred_sensitivity"]
        if sens["status"] == "ok":
            with_inferred[o] = sorted(p["study"] for p in sens["added"])
        else:
            assert sens["status"] == "not run: no inferred rows"
    assert with_inferred["ln_remission"] == ["JICR2019_LN"]
    for o in ("sri4_wk12", "sri4_wk12_rr", "sri4_wk12_rd"):
        assert with_inferred[o] == ["Humrich2022_LUPIL2"]
    assert set(with_inferred) == {"ln_remission", "sri4_wk12", "sri4_wk12_rr", "sri4_wk12_rd", "sae", "cdasi"}
