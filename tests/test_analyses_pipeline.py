"""The further analyses wired into the workflow (issue 4), end to end.

One workflow run on a synthetic review in a temporary directory (k = 12 single-arm proportions
with a numeric moderator and two dose regimens, so every analysis runs; plus a k = 2 outcome so
that every analysis reports "not run"), shared by the tests through a module-scoped fixture.
The bundled data are checked through ``tests/test_pipeline.py``'s run where they need the
workflow; here they are analysed in-process (fast).  Values in the JSON are compared with
calling the package functions directly.
"""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metapool import bias, sensitivity
from metapool.analysis import MIN_K, analyse_outcome, resolve_spec
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
    g = sensitivity.gosh(fit, subsets=10_000, seed=1)
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
