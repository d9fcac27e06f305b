"""Unit tests of the reproduction-status rules (metapool.report.classify) with synthetic numbers."""
import math

import pandas as pd
import pytest

from metapool.report import STATUSES, _md_table, classify, reproduction_markdown, unit_of


def pub(est, lb=math.nan, ub=math.nan):
    return {"estimate": est, "ci_lb": lb, "ci_ub": ub}


@pytest.mark.parametrize("computed, expected", [
    (pub(1.0964, 0.5436, 1.6494), "reproduced"),     # all within half a unit of 3 decimals
    (pub(1.0955, 0.5444, 1.6485), "reproduced"),     # rounding up to the printed digits
    (pub(1.0974, 0.544, 1.649), "close"),            # estimate 1.4 units off
    (pub(1.096, 0.544, 1.6525), "differs"),          # one CI bound 3.5 units off
    (pub(1.099, 0.544, 1.649), "differs"),           # estimate 3 units off
])
def test_smd_rules_use_every_printed_number(computed, expected):
    assert classify(pub(1.096, 0.544, 1.649), computed, 3, "SMD")[0] == expected


def test_missing_computed_bound_is_not_reproduced():
    assert classify(pub(1.096, 0.544, 1.649), pub(1.096), 3, "SMD")[0] == "differs"


def test_unprinted_bounds_are_not_compared():
    assert classify(pub(0.548), pub(0.5484, 0.37, 0.72), 3, "PR")[0] == "reproduced"


@pytest.mark.parametrize("computed, expected", [
    (0.5485, "reproduced"), (0.5486, "close"),         # 54.85% rounds to 54.9%: not reproduced
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
def test_nothing_to_compare_is_not_reproducible(published, computed):
    status, worst = classify(published, computed, 3, "PR")
    assert status == "not reproducible" and math.isnan(worst)


def test_worst_difference_is_in_units_of_last_digit():
    status, worst = classify(pub(1.13, 0.97, 1.29), pub(1.13, 0.95, 1.29), 2, "SMD")
    assert status == "close" and worst == pytest.approx(2.0)


def test_unit_read_off_the_number_when_decimals_missing():
    assert unit_of(0.548) == pytest.approx(0.001)
    assert unit_of(-0.54) == pytest.approx(0.01)
    assert unit_of(1.0, 2) == pytest.approx(0.01)
    assert classify(pub(-0.54), pub(-0.544), None, "SMD")[0] == "reproduced"


def test_markdown_lists_every_status_and_escapes_pipes():
    rep = pd.DataFrame([{"target_id": "t|1", "paper": "P", "outcome": "o", "subgroup": "", "measure": "PR",
                         "model": "FE", "decimals": 3, "k": 1, "published_estimate": 0.5,
                         "published_ci_lb": math.nan, "published_ci_ub": math.nan,
                         "computed_estimate": 0.5, "computed_ci_lb": 0.4, "computed_ci_ub": 0.6,
                         "status": "reproduced", "reason": "a | b"}])
    md = reproduction_markdown(rep)
    for s in STATUSES:
        assert s in md
    assert "t\\|1" in md and "a \\| b" in md
    assert _md_table(pd.DataFrame({"x": [1]})).count("\n") == 3


def test_html_escapes_every_string_from_data(tmp_path):
    from metapool.analysis import analyse_outcome
    from metapool.report import render_html, reproduction_table

    evil = "<script>alert(1)</script>"
    rows = pd.DataFrame({"study": ["A&B", evil], "outcome": "o", "events": [3, 5], "total": [20, 25],
                         "status": "reported", "source": [evil, "s"], "note": [evil, ""]})
    a = analyse_outcome("o", {"label": evil, "measure": "PLO", "note": evil}, rows, None, {})
    targets = pd.DataFrame([{"target_id": evil, "paper": evil, "outcome": "o", "subgroup": "",
                             "model": "FE", "measure": "PLO", "estimate": 0.2, "ci_lb": None, "ci_ub": None,
                             "decimals": 3, "assumption": evil, "missing": evil}])
    rep = reproduction_table({"o": a}, targets)
    html = render_html({"o": a}, None, rep, {}, studies=pd.DataFrame({"study": [evil]}), title=evil)
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A&amp;B" in html


def test_analysis_sections_escape_study_names_and_subgroups():
    from metapool.analysis import analyse_outcome
    from metapool.report import render_html

    evil = "<script>alert(1)</script>"
    k = 12
    names = [f"{evil}{i}" if i % 4 == 0 else f"S{i}" for i in range(k)]
    rows = pd.DataFrame({"study": names, "outcome": "o", "events": [3, 5, 8, 2, 9, 4, 7, 6, 10, 5, 3, 8],
                         "total": [20, 25, 30, 22, 40, 28, 35, 30, 44, 26, 18, 33], "status": "reported",
                         "source": "s"})
    studies = pd.DataFrame({"study": names, "year": range(2000, 2000 + k),
                            "dose_regimen": [evil if i % 2 else "a&b" for i in range(k)]})
    spec = {"label": "o", "measure": "PLO", "methods": ["FE", "REML", "GLMM"], "subgroup": "dose_regimen",
            "analyses": {"leave_one_out": True, "cumulative": True, "influence": True, "gosh": True,
                         "small_study": True, "metareg": {"moderators": ["year"]}}}
    a = analyse_outcome("o", spec, rows, studies, {})
    html = render_html({"o": a}, None, None, {}, studies=studies)
    assert "<script" not in html
    for title in ("Leave-one-out", "Cumulative meta-analysis", "Small-study effects", "Meta-regression"):
        assert f"<h4>{title}</h4>" in html
    assert "a&amp;b" in html and "Subgroup comparisons" in html


def test_one_subgroup_value_says_the_comparison_is_impossible():
    from metapool.analysis import analyse_outcome
    from metapool.report import render_html

    rows = pd.DataFrame({"study": ["A", "B"], "outcome": "o", "events": [3, 5], "total": [20, 25],
                         "status": "reported", "source": "s"})
    studies = pd.DataFrame({"study": ["A", "B", "C"], "dose_regimen": ["0.5 MIU/day", "0.5 MIU/day", "1 MIU qod"]})
    a = analyse_outcome("o", {"label": "o", "measure": "PLO", "subgroup": "dose_regimen"}, rows, studies, {})
    assert a.extras["subgroups"]["status"] == "not run: all 2 studies have dose_regimen = '0.5 MIU/day'"
    html = render_html({"o": a}, None, None, {}, studies=studies)
    assert "Comparison impossible with these data" in html
    assert "1 MIU qod: C" in html            # the study with the other regimen has no data here


def _ln_like():
    """He-2020-like 7/13 reported + a 10/18 inferred row: 17/31 = 54.84% only with the inferred row."""
    from metapool.analysis import analyse_outcome

    rows = pd.DataFrame({"study": ["A2020", "J2019"], "outcome": "o", "events": [7, 10], "total": [13, 18],
                         "status": ["reported", "inferred"], "source": "s", "note": ["", "n assumed"]})
    return analyse_outcome("o", {"label": "o", "measure": "PLO", "methods": ["FE", "DL"]}, rows, None, {})


def _target(statuses):
    return pd.DataFrame([{"target_id": "t", "paper": "P", "outcome": "o", "subgroup": "", "model": "FE",
                          "measure": "PR", "estimate": 0.548, "ci_lb": None, "ci_ub": None, "decimals": 3,
                          "statuses": statuses, "assumption": "", "missing": ""}])


def test_target_statuses_bring_in_the_inferred_rows_and_say_so():
    from metapool.report import reproduction_table

    a = _ln_like()
    assert a.effects.study == ("A2020",)
    rep = reproduction_table({"o": a}, _target("reported;derived;secondary;inferred")).iloc[0]
    assert rep["status"] == "reproduced" and rep["k"] == 2
    assert rep["computed_estimate"] == pytest.approx(0.5484, abs=5e-5)
    assert rep["reason"].startswith("reproduced only when the INFERRED J2019 10/18 row is included "
                                    "(sensitivity analysis)")
    assert "primary evidence alone (reported, derived, secondary: A2020) gives 53.8%" in rep["reason"]
    # without the column: the outcome's own (primary) statuses, no inferred row
    plain = reproduction_table({"o": a}, _target(None)).iloc[0]
    assert plain["k"] == 1 and plain["status"] != "reproduced" and "INFERRED" not in plain["reason"]


def test_report_shows_the_sensitivity_analysis_beside_the_primary_result():
    from metapool.analysis import analyse_outcome
    from metapool.report import render_html

    a = _ln_like()
    html = render_html({"o": a}, None, None, {})
    sec = html[html.index('id="o-o"'):]
    assert sec.index("Sensitivity analysis including inferred numbers:") < sec.index("Notes")
    assert "FE: 54.8% (" in sec and "with them (k = 2)" in sec and "J2019 (inferred): n assumed" in sec
    assert "with inferred rows (sensitivity)" in html
    rows = pd.DataFrame({"study": ["A", "B"], "outcome": "o", "events": [3, 5], "total": [20, 25],
                         "status": "reported", "source": "s"})
    b = analyse_outcome("o", {"label": "o", "measure": "PLO"}, rows, None, {})
    assert "Sensitivity analysis including inferred numbers:</b> not run: no inferred rows." in render_html(
        {"o": b}, None, None, {})
