"""One outcome end to end, in-process: analyse_outcome, its typed result and the job that writes it.

A synthetic review (k = 12 single-arm proportions with a numeric moderator and two dose regimens,
so every analysis runs; and a k = 2 outcome, so every analysis says "not run") is analysed with
:func:`metapool.analysis.analyse_outcome`.  Every stored analysis must equal the direct call of the
function that computes it (those are validated against R metafor in their own test files), the
typed result must survive its JSON round trip unchanged, and the outcome job
(:func:`metapool.jobs.analyse_outcome.run_outcome`) must draw exactly the figures the plan declared.
"""
import json

import numpy as np
import pytest

from metapool import bias, registry, sensitivity
from metapool.analysis import OutcomeAnalysis, analyse_outcome, study_labels
from metapool.metareg import meta_regression
from metapool.results import NotRun
from metapool.spec import resolve_spec
from metapool.subgroups import subgroup_analysis
from metapool.workflow import outcome_figures

ANALYSES = {"leave_one_out": True, "cumulative": {"order": "year"}, "influence": True, "gosh": True,
            "small_study": True, "metareg": {"moderators": ["year"]}, "inferred_sensitivity": True}


def synthetic(k=12, seed=11):
    rng = np.random.default_rng(seed)
    n = rng.integers(20, 150, k)
    year = 2004 + np.arange(k)
    logit = -1.0 + 0.1 * (year - 2010) + rng.normal(0, 0.35, k)
    events = rng.binomial(n, 1 / (1 + np.exp(-logit)))
    names = [f"Syn{i:02d}" for i in range(k)]
    studies = [{"study": s, "author": f"Author{i} X", "year": int(y), "dose_regimen": "0.5 MIU/day x5d" if i % 3
                else "1 MIU qod"} for i, (s, y) in enumerate(zip(names, year))]
    studies += [{"study": "Pair1", "author": "Pair A", "year": 2020, "dose_regimen": "1 MIU qod"},
                {"study": "Pair2", "author": "Pair B", "year": 2021, "dose_regimen": "1 MIU qod"},
                {"study": "Inf1", "author": "Inferred C", "year": 2022, "dose_regimen": "1 MIU qod"}]
    rows = [{"study": s, "outcome": "syn", "events": int(e), "total": int(t), "status": "reported", "source": "x"}
            for s, e, t in zip(names, events, n)]
    rows.append({"study": "Inf1", "outcome": "syn", "events": 9, "total": 30, "status": "inferred", "source": "x"})
    pair = [{"study": "Pair1", "outcome": "pair", "events": 0, "total": 30, "status": "reported", "source": "x"},
            {"study": "Pair2", "outcome": "pair", "events": 9, "total": 40, "status": "reported", "source": "x"}]
    return studies, rows, pair


SPEC = resolve_spec({"label": "Synthetic response", "measure": "PLO", "methods": ["FE", "REML", "GLMM"],
                     "subgroup": "dose_regimen", "analyses": ANALYSES})


@pytest.fixture(scope="module")
def syn():
    studies, rows, _ = synthetic()
    return analyse_outcome("syn", SPEC, rows, studies)


@pytest.fixture(scope="module")
def pair():
    studies, _, rows = synthetic()
    return analyse_outcome("pair", SPEC, rows, studies)


def test_every_analysis_matches_the_package_functions(syn):
    a = syn
    fit = a.fit("REML")
    assert [f.method for f in a.fits] == ["FE", "REML", "GLMM"] and a.glmm is None
    for name in registry.ANALYSES:
        assert not isinstance(getattr(a, name), NotRun), (name, getattr(a, name))
    assert a.leave_one_out.same_as(sensitivity.leave_one_out(fit))
    years = np.array([int(s[3:]) + 2004 for s in fit.study])
    cum = sensitivity.cumulative(fit, order=years)
    np.testing.assert_allclose(a.cumulative.estimate, cum.estimate, rtol=1e-12)
    assert a.influence.same_as(sensitivity.influence(fit))
    g = sensitivity.gosh(fit, subsets=65_535, seed=1)
    assert a.gosh.n_subsets == g.n_subsets == 2**12 - 1
    np.testing.assert_allclose(a.gosh.estimate, g.estimate, rtol=1e-12)
    y, v = np.asarray(fit.yi), np.asarray(fit.vi)
    assert a.small_study.egger.same_as(bias.egger_test(y, v, model="lm", method="REML"))
    assert a.small_study.begg.same_as(bias.begg_test(y, v))
    assert a.small_study.trim_and_fill.k0 == bias.trim_and_fill(y, v, method="REML").k0
    assert a.small_study.power_note is None and a.small_study.peters is None   # k = 12; single-arm data
    reg = meta_regression(y, v, {"year": years.tolist()}, method="REML")
    np.testing.assert_allclose(a.metareg.regression.estimate, reg.estimate, rtol=1e-9)
    assert a.metareg.bubble is True
    sg = subgroup_analysis(a.effects, groups=[s["dose_regimen"] for s in synthetic()[0][:12]], method="REML",
                           by="dose_regimen")
    assert a.subgroups.test.same_as(sg.test) and not isinstance(a.subgroups.common_tau2, NotRun)


def test_the_typed_result_survives_json_unchanged(syn, pair):
    for a in (syn, pair):
        text = json.dumps(a.to_dict(), allow_nan=False)
        back = OutcomeAnalysis.from_dict(json.loads(text))
        assert back.same_as(a) or back.to_dict() == json.loads(text)
        assert isinstance(back.spec, type(a.spec)) and back.primary.method == a.primary.method


def test_inferred_rows_enter_only_the_sensitivity_analysis(syn):
    assert "Inf1" not in syn.effects.study
    s = syn.inferred_sensitivity
    assert s.k == syn.k + 1 and "Inf1" in s.effects.study and s.fit("REML").k == syn.k + 1
    assert [p["study"] for p in syn.provenance if not p["pooled"]] == ["Inf1"]


def test_small_k_says_not_run_with_the_reason(pair):
    for name in ("leave_one_out", "cumulative", "influence", "gosh", "small_study"):
        res = getattr(pair, name)
        assert isinstance(res, NotRun) and res.reason == "k = 2 < 3", name
    assert isinstance(pair.metareg, NotRun) and pair.metareg.reason.startswith("k = 2 < 4")
    assert isinstance(pair.subgroups, NotRun) and "1 MIU qod" in pair.subgroups.reason


def test_the_job_draws_exactly_the_planned_figures(tmp_path):
    from metapool.jobs.analyse_outcome import run_outcome
    from metapool.workflow import _dumps

    studies, rows, pair = synthetic()
    for outcome, mine in (("syn", rows), ("pair", pair)):
        kinds = outcome_figures(SPEC, mine, studies)
        snap = _dumps({"outcome": outcome, "spec": SPEC.to_dict(), "figures": kinds, "rows": mine,
                       "studies": studies, "targets": []})
        a = run_outcome(snap, pooled=tmp_path / f"{outcome}.json", effects=tmp_path / f"{outcome}.csv",
                        figures=tmp_path / outcome, progress=lambda s: None)
        assert list(a.figures) == kinds
        assert sorted(p.stem for p in (tmp_path / outcome).glob("*.png")) == sorted(kinds)
        from metapool.analysis import figure_kinds
        assert figure_kinds(a) == kinds                     # the plan and the analysis agree
    assert "gosh" in outcome_figures(SPEC, rows, studies) and outcome_figures(SPEC, pair, studies) == ["forest"]


def test_defaults_switch_analyses_on_and_outcomes_override():
    spec = resolve_spec({"label": "x", "measure": "PLO", "analyses": {"gosh": False, "leave_one_out": {"min_k": 5}}},
                        {"analyses": {"gosh": True, "influence": True}})
    assert "gosh" not in spec.analyses and spec.analyses["leave_one_out"]["min_k"] == 5
    assert spec.analyses["influence"] == {"min_k": 3}
    assert resolve_spec({"label": "x", "measure": "PLO", "analyses": {"leave_one_out": {"min_k": 1}}}
                        ).analyses["leave_one_out"]["min_k"] == 3                 # never below the built-in


def test_study_labels_are_unique_and_readable():
    studies = [{"study": "a", "author": "Zhang JQ", "year": 2022}, {"study": "b", "author": "Zhang X", "year": 2022},
               {"study": "c", "author": "He J", "year": 2020}, {"study": "d", "author": "He J", "year": 2020},
               {"study": "e", "author": "NR", "year": 2019}, {"study": "f", "label": "JICR 2019", "author": "NR"}]
    lab = study_labels(studies, "abcdef")
    assert lab == {"a": "Zhang JQ 2022", "b": "Zhang X 2022", "c": "He 2020a", "d": "He 2020b", "e": "e",
                   "f": "JICR 2019"}


def test_reference_proportion_gives_a_named_test():
    a = analyse_outcome("x", {"label": "x", "measure": "PLO", "methods": ["FE"], "reference_proportion": 0.5},
                        [{"study": "a", "events": 20, "total": 25, "status": "reported"}])
    t = a.reference_tests[0]
    assert t.null == 0.5 and t.null_analysis == 0.0
    assert t.stat == pytest.approx(a.fits[0].stat) and t.pval == pytest.approx(a.fits[0].pval)   # logit(0.5) = 0
    b = analyse_outcome("x", {"label": "x", "measure": "PR", "methods": ["FE"], "reference_proportion": 0.6},
                        [{"study": "a", "events": 20, "total": 25, "status": "reported"}])
    assert b.reference_tests[0].stat == pytest.approx((0.8 - 0.6) / np.sqrt(0.8 * 0.2 / 25))
