"""The reproduction-status rules (metapool.reproduce.classify) and the report's rendering of them.

The status rules are checked with synthetic numbers whose distance from the printed value is known
by construction (units of the last printed digit); the report tests build analyses in-process and
read the rendered HTML/Markdown.
"""
import math

import pytest

from metapool.analysis import analyse_outcome
from metapool.report import render_html, reproduction_markdown
from metapool.results import NotRun
from metapool.reproduce import STATUS_WORDS, STATUSES, TargetCheck, classify, unit_of


def _section(html, outcome):
    """The report's section of one outcome."""
    start = html.index(f'id="o-{outcome}"')
    return html[start:html.index("</section>", start)]


def pub(est, lb=math.nan, ub=math.nan):
    return {"estimate": est, "ci_lb": lb, "ci_ub": ub}


# --------------------------------------------------------------------------- classify
@pytest.mark.parametrize("computed, expected", [
    (pub(1.0964, 0.5436, 1.6494), "reproduced"),     # all within half a unit of 3 decimals
    (pub(1.0955, 0.5444, 1.6485), "reproduced"),     # rounding up to the printed digits
    (pub(1.0974, 0.544, 1.649), "close"),            # estimate 1.4 units off
    (pub(1.096, 0.544, 1.6525), "differs"),          # one CI bound 3.5 units off
    (pub(1.099, 0.544, 1.649), "differs"),           # estimate 3 units off
])
def test_smd_rules_use_every_printed_number(computed, expected):
    assert classify(pub(1.096, 0.544, 1.649), computed, 3, "SMD")[0] == expected


def test_a_missing_computed_bound_differs():
    assert classify(pub(1.096, 0.544, 1.649), pub(1.096), 3, "SMD")[0] == "differs"


def test_unprinted_bounds_are_not_compared():
    assert classify(pub(0.548), pub(0.5484, 0.37, 0.72), 3, "PR")[0] == "reproduced"


@pytest.mark.parametrize("computed, expected", [
    (0.5485, "reproduced"), (0.5486, "close"),         # 54.86% rounds to 54.9%: not reproduced
    (0.557, "close"),                                   # 0.9 percentage points: proportions are close
    (0.559, "differs"),                                 # 1.1 percentage points
])
def test_proportion_tolerance_is_one_percentage_point(computed, expected):
    assert classify(pub(0.548), pub(computed), 3, "PLO")[0] == expected


def test_one_percentage_point_does_not_apply_to_other_measures():
    assert classify(pub(0.548), pub(0.557), 3, "SMD")[0] == "differs"


def test_two_decimal_targets_use_their_own_unit():
    assert classify(pub(0.50, 0.33, 0.67), pub(0.504, 0.334, 0.666), 2, "SMD")[0] == "reproduced"
    assert classify(pub(0.50, 0.33, 0.67), pub(0.515, 0.33, 0.67), 2, "SMD")[0] == "close"
    assert classify(pub(0.50, 0.33, 0.67), pub(0.53, 0.33, 0.67), 2, "SMD")[0] == "differs"


@pytest.mark.parametrize("published, computed", [
    (pub(math.nan), pub(0.5)),                # the paper prints no number
    (pub(0.5), pub(math.nan)),                # nothing computed (no data)
    (pub(None), {}),
])
def test_nothing_to_compare_has_no_status_of_agreement(published, computed):
    status, worst = classify(published, computed, 3, "PR")
    assert status == "no_public_data" and math.isnan(worst)


def test_worst_difference_is_in_units_of_the_last_digit():
    status, worst = classify(pub(1.13, 0.97, 1.29), pub(1.13, 0.95, 1.29), 2, "SMD")
    assert status == "close" and worst == pytest.approx(2.0)


def test_unit_read_off_the_number_when_decimals_missing():
    assert unit_of(0.548) == pytest.approx(0.001)
    assert unit_of(-0.54) == pytest.approx(0.01)
    assert unit_of(1.0, 2) == pytest.approx(0.01)
    assert classify(pub(-0.54), pub(-0.544), None, "SMD")[0] == "reproduced"


# --------------------------------------------------------------------------- markdown
def _check(**kw):
    base = dict(target_id="t|1", paper="P", outcome="o", subgroup="", published_estimate=0.5,
                published_ci_lb=math.nan, published_ci_ub=math.nan, decimals=3)
    return TargetCheck(**{**base, **kw})


def test_markdown_explains_every_status_and_escapes_pipes():
    checks = [_check(status=s, reason="a | b", target_id=f"t|{i}") for i, s in enumerate(STATUSES)]
    md = reproduction_markdown(checks)
    for s in STATUSES:
        assert STATUS_WORDS[s] in md
    assert "t\\|1" in md and "a \\| b" in md
    assert "| a | b |" not in md


# --------------------------------------------------------------------------- HTML
EVIL = "<script>alert(1)</script>"


def _rows(names, events, totals, **extra):
    return [dict({"study": s, "outcome": "o", "events": e, "total": n, "status": "reported", "source": "s"},
                 **{k: v[i] for k, v in extra.items()})
            for i, (s, e, n) in enumerate(zip(names, events, totals))]


def test_html_escapes_every_string_from_data():
    rows = _rows(["A&B", EVIL], [3, 5], [20, 25], source=[EVIL, "s"], note=[EVIL, ""])
    target = {"target_id": EVIL, "paper": EVIL, "outcome": "o", "subgroup": "", "model": "FE", "measure": "PLO",
              "estimate": 0.2, "decimals": 3, "assumption": EVIL, "missing": EVIL}
    a = analyse_outcome("o", {"label": EVIL, "measure": "PLO", "note": EVIL}, rows, None, targets=[target])
    html = render_html([a], list(a.reproduction), {}, studies=[{"study": EVIL}], title=EVIL)
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A&amp;B" in html


def test_analysis_sections_escape_study_names_and_subgroups():
    k = 12
    names = [f"{EVIL}{i}" if i % 4 == 0 else f"S{i}" for i in range(k)]
    rows = _rows(names, [3, 5, 8, 2, 9, 4, 7, 6, 10, 5, 3, 8], [20, 25, 30, 22, 40, 28, 35, 30, 44, 26, 18, 33])
    studies = [{"study": s, "year": 2000 + i, "dose_regimen": EVIL if i % 2 else "a&b"} for i, s in enumerate(names)]
    spec = {"label": "o", "measure": "PLO", "methods": ["FE", "REML", "GLMM"], "subgroup": "dose_regimen",
            "analyses": {"leave_one_out": True, "cumulative": True, "influence": True, "gosh": True,
                         "small_study": True, "metareg": {"moderators": ["year"]}}}
    a = analyse_outcome("o", spec, rows, studies)
    html = render_html([a], [], {}, studies=studies)
    assert "<script" not in html
    for analysis in ("leave_one_out", "cumulative", "small_study", "metareg", "subgroups"):
        assert getattr(a, analysis) is not None
    for title in ("Leave-one-out", "Cumulative", "Small-study", "Meta-regression", "Subgroup"):
        assert title in html, title
    assert "a&amp;b" in html


def test_one_subgroup_value_says_why_the_comparison_was_not_run():
    rows = _rows(["A", "B"], [3, 5], [20, 25])
    studies = [{"study": "A", "dose_regimen": "0.5 MIU/day"}, {"study": "B", "dose_regimen": "0.5 MIU/day"},
               {"study": "C", "dose_regimen": "1 MIU qod"}]
    a = analyse_outcome("o", {"label": "o", "measure": "PLO", "subgroup": "dose_regimen"}, rows, studies)
    assert isinstance(a.subgroups, NotRun) and "0.5 MIU/day" in a.subgroups.reason
    html = render_html([a], [], {}, studies=studies)
    assert _section(html, "o").count("0.5 MIU/day") >= 1


def _ln_like(targets=()):
    """He-2020-like 7/13 reported + a 10/18 inferred row: 17/31 = 54.84% only with the inferred row."""
    rows = _rows(["A2020", "J2019"], [7, 10], [13, 18], status=["reported", "inferred"], note=["", "n assumed"])
    return analyse_outcome("o", {"label": "o", "measure": "PLO", "methods": ["FE", "DL"]}, rows, None,
                           targets=targets)


def _target(statuses):
    return {"target_id": "t", "paper": "P", "outcome": "o", "subgroup": "", "model": "FE", "measure": "PR",
            "estimate": 0.548, "decimals": 3, "statuses": statuses, "assumption": "", "missing": ""}


def test_a_match_that_needs_an_inferred_number_is_not_called_reproduced():
    a = _ln_like([_target("reported;derived;secondary;inferred")])
    assert a.effects.study == ("A2020",)
    (c,) = a.reproduction
    assert c.status == "reproduced_with_inferred" and c.k == 2
    assert c.computed_estimate == pytest.approx(17 / 31, abs=5e-5)
    assert "J2019" in " ".join(c.inferred_rows) and "inferred" in c.reason.lower()
    # allowed statuses without 'inferred': the reported row alone, 7/13 = 53.8%, is not a match
    (plain,) = _ln_like([_target("reported;derived;secondary")]).reproduction
    assert plain.k == 1 and plain.status not in ("reproduced", "reproduced_with_inferred")


def test_without_an_audit_the_target_model_is_not_called_reproduced_when_it_needs_inferred_rows(monkeypatch):
    from metapool import reproduce

    monkeypatch.setattr(reproduce, "_audit", lambda *args, **kwargs: None)     # the audit cannot decide
    (c,) = _ln_like([_target("reported;derived;secondary;inferred")]).reproduction
    assert c.how == "target model" and c.model == "FE" and c.k == 2
    assert c.status == "reproduced_with_inferred"


def test_the_report_shows_the_inferred_sensitivity_analysis_beside_the_primary_result():
    a = _ln_like()
    html = render_html([a], [], {})
    sec = _section(html, "o")
    assert "Including inferred numbers</b> (J2019 (inferred))" in sec
    assert '54.8% <span class="ci-i">(37.4% to 71.1%)</span></span> with them (k = 2)' in sec   # 17/31, logit FE
    assert sec.index("Including inferred numbers") < sec.index("Notes on this analysis")
    b = analyse_outcome("o", {"label": "o", "measure": "PLO"}, _rows(["A", "B"], [3, 5], [20, 25]))
    assert b.inferred_sensitivity is None or isinstance(b.inferred_sensitivity, NotRun)
    assert "Including inferred numbers" not in _section(render_html([b], [], {}), "o")


def test_single_study_outcomes_print_no_heterogeneity_and_no_p_value_without_a_null():
    a = analyse_outcome("o", {"label": "fever", "measure": "PLO"}, _rows(["He 2020"], [4], [29]))
    html = render_html([a], [], {})
    sec = _section(html, "o")
    assert "One study" in sec
    assert "I\u00b2 = " not in sec and "Q = " not in sec
    assert "p = " not in sec and "p &lt;" not in sec
