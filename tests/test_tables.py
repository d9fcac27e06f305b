"""Summary table, CSV and Markdown writers (metapool.tables), checked against metafor's values."""
import csv
import io
import math

import numpy as np
import pandas as pd
import pytest

from conftest import assert_close, cases_where, rows_frame
from metapool.analysis import analyse_outcome
from metapool.counts import mantel_haenszel, peto
from metapool.models import fit
from metapool.tables import (SUMMARY_COLUMNS, csv_text, format_number, neutralise, summary_row, summary_rows,
                             to_markdown, write_csv)

DESIGN_COLUMNS = ("outcome, label, measure, model, method, ci_method, k, n, estimate, ci_lb, ci_ub, "
                  "pi_lb, pi_ub, estimate_analysis, se, stat, pval, tau2, tau2_ci_lb, tau2_ci_ub, I2, "
                  "I2_ci_lb, I2_ci_ub, H2, Q, Q_df, Q_pval").split(", ")

RE_CASES = cases_where(lambda c: c["method"] == "REML" and c["measure"] in ("PLO", "PFT", "RR", "SMD"))
MH_CASES = cases_where(lambda c: c["method"] in ("MH", "PETO"))
PROPORTIONS = ("PR", "PLO", "PAS", "PFT")


def _fit_case(case):
    exp = case["expected"]
    ni = rows_frame(case)["total"].to_numpy(float) if case["type"] == "proportion" else None
    return fit(exp["yi"], exp["vi"], method=case["method"], test=case["test"], level=case["level"],
               measure=case["measure"], ni=ni)


def test_columns_include_design():
    assert set(DESIGN_COLUMNS) <= set(SUMMARY_COLUMNS)
    assert "scale" in SUMMARY_COLUMNS and "null" in SUMMARY_COLUMNS
    assert len(set(SUMMARY_COLUMNS)) == len(SUMMARY_COLUMNS)


@pytest.mark.parametrize("case", RE_CASES)
def test_random_effects_row_matches_metafor(case):
    row = summary_row(_fit_case(case), outcome="o1", label="Outcome 1")
    exp = case["expected"]
    assert list(row) == list(SUMMARY_COLUMNS)
    assert row["outcome"] == "o1" and row["label"] == "Outcome 1"
    assert row["model"] == "random" and row["method"] == "REML"
    assert row["ci_method"] == {"z": "z", "knha": "hksj"}[case["test"]]
    assert row["k"] == exp["k"] and row["Q_df"] == exp["Q_df"]
    for key in ("se", "tau2", "I2", "H2", "Q", "Q_pval"):
        assert_close(row[key], exp[key], rel=1e-6, what=key)
    if case["measure"] in PROPORTIONS:      # no test without a stated null (metafor tests logit 0 = 50%)
        assert math.isnan(row["null"]) and math.isnan(row["stat"]) and math.isnan(row["pval"])
    else:
        assert row["null"] == (1.0 if case["measure"] == "RR" else 0.0)
        for key in ("stat", "pval"):
            assert_close(row[key], exp[key], rel=1e-6, what=key)
    assert_close(row["estimate_analysis"], exp["estimate"], rel=1e-6, what="estimate_analysis")
    for name in ("tau2", "I2"):
        assert_close([row[f"{name}_ci_lb"], row[f"{name}_ci_ub"]], exp[f"{name}_ci"], rel=1e-5,
                     what=f"{name}_ci")
    back = exp.get("back", {k: exp[k] for k in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub")})
    for key in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        assert_close(row[key], back[key], rel=1e-6, what=f"reporting {key}")


@pytest.mark.parametrize("case", MH_CASES)
def test_count_rows(case):
    data = rows_frame(case)
    res = mantel_haenszel(data, case["measure"]) if case["method"] == "MH" else peto(data)
    row = summary_row(res)
    exp = case["expected"]
    assert row["model"] == "fixed" and row["method"] == case["method"]
    assert row["n"] == (data["total_treat"] + data["total_ctrl"]).sum()
    assert math.isnan(row["tau2"]) and math.isnan(row["pi_lb"]) and row["pi_method"] == ""
    ratio = case["measure"] in ("OR", "RR", "PETO")
    for key in ("estimate", "ci_lb", "ci_ub"):
        assert_close(row[key], math.exp(exp[key]) if ratio else exp[key], rel=1e-8, what=key)
    assert row["scale"] in ("odds ratio", "risk ratio", "risk difference", "odds ratio (Peto)")


def _analysis():
    rows = [{"study": s, "outcome": "crp", "yi": y, "vi": v, "status": "reported", "source": "x"}
            for s, y, v in zip("abcde", [0.1, 0.3, -0.2, 0.5, 0.25], [0.04, 0.02, 0.05, 0.03, 0.01])]
    return analyse_outcome("crp", {"label": "C-reactive protein", "measure": "GEN",
                                   "methods": ["FE", "REML", "DL"]}, rows)


def test_outcome_analysis_rows_and_generic_n():
    rows = summary_rows([_analysis(), _analysis()])
    assert len(rows) == 6 and all(list(r) == list(SUMMARY_COLUMNS) for r in rows)
    assert [r["model"] for r in rows[:3]] == ["fixed", "random", "random"]
    assert all(r["outcome"] == "crp" and r["label"] == "C-reactive protein" for r in rows)
    assert all(math.isnan(r["n"]) for r in rows)          # generic input: sample sizes unknown
    assert all(isinstance(r["k"], int) for r in rows)
    assert all(r["estimate"] == r["estimate_analysis"] for r in rows)   # GEN is reported on its own scale
    w = 1 / np.array([0.04, 0.02, 0.05, 0.03, 0.01])
    assert rows[0]["estimate"] == pytest.approx((w * [0.1, 0.3, -0.2, 0.5, 0.25]).sum() / w.sum(), rel=1e-12)


def test_single_study_rows_leave_heterogeneity_blank():
    a = analyse_outcome("o", {"label": "o", "measure": "PLO"},
                        [{"study": "A", "outcome": "o", "events": 4, "total": 29, "status": "reported"}])
    (row,) = summary_rows([a])
    assert row["k"] == 1 and row["estimate"] == pytest.approx(4 / 29, rel=1e-12)
    for name in ("tau2", "I2", "H2", "Q", "Q_pval", "pi_lb", "pi_ub", "stat", "pval"):
        assert math.isnan(row[name]), name

@pytest.mark.parametrize("x, digits, fixed, text", [
    (math.nan, 12, False, ""), (None, 3, True, ""), (pd.NA, 3, True, ""), (3, 12, False, "3"),
    (np.int64(7), 3, True, "7"), (0.1 + 0.2, 12, False, "0.3"), (1 / 3, 4, True, "0.3333"),
    (1.5e-31, 3, True, "1.50e-31"), (-0.0, 12, False, "0"), (math.inf, 3, True, "inf"),
    (-2.5e-7, 12, False, "-2.5e-07"), (123456.789, 3, True, "123456.789"),
])
def test_format_number(x, digits, fixed, text):
    assert format_number(x, digits, fixed=fixed) == text


@pytest.mark.parametrize("text, safe", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("-0.5", "-0.5"), ("+3e-4", "+3e-4"),
    ("Smith 2019", "Smith 2019"), ("-inf", "-inf"), ("", ""),
])
def test_neutralise(text, safe):
    assert neutralise(text) == safe


def test_csv_is_byte_stable_and_safe(tmp_path):
    summary = summary_rows([_analysis()])
    summary[0]["label"] = "=1+2"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(a, summary, SUMMARY_COLUMNS)
    again = summary_rows([_analysis()])
    again[0]["label"] = "=1+2"
    write_csv(b, again, SUMMARY_COLUMNS)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert "\r" not in text and text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(SUMMARY_COLUMNS)
    assert rows[1][1] == "'=1+2"
    back = pd.read_csv(io.StringIO(text))
    assert back["k"].tolist() == [5, 5, 5]
    np.testing.assert_allclose(back["estimate"], [r["estimate"] for r in summary], rtol=1e-11)
    assert back["pi_lb"].isna().iloc[0]           # NaN written as an empty cell
    assert ",," in text


def test_csv_digits():
    df = pd.DataFrame({"x": [1 / 3], "s": ["a,b"]})
    assert csv_text(df, digits=4) == 'x,s\n0.3333,"a,b"\n'


def test_markdown():
    df = pd.DataFrame({"outcome": ["a|b", "c"], "k": pd.array([3, None], dtype="Int64"),
                       "pval": [1.2e-30, 0.04567], "est": [1.0, math.nan]})
    md = to_markdown(df, digits=3)
    lines = md.splitlines()
    assert lines[0] == "| outcome | k | pval | est |"
    assert lines[1] == "|:---|---:|---:|---:|"
    assert lines[2] == "| a\\|b | 3 | 1.20e-30 | 1.000 |"
    assert lines[3] == "| c |  | 0.046 |  |"
    assert md.endswith("\n")


def test_markdown_of_summary_has_one_line_per_model():
    md = to_markdown(summary_rows([_analysis()]), ["outcome", "method", "estimate", "ci_lb", "ci_ub"], digits=2)
    assert len(md.splitlines()) == 2 + 3
    assert "| crp | REML |" in md
