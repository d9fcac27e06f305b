"""Reading and validating data tables (metapool.data): every bad input gives a located message.

Each test writes a small CSV, feeds it to the loader and checks that the message names the file,
the line as an editor shows it (header = line 1), the column and the value.  The last block
checks the bundled dataset itself (data/raw) against config.yaml and the evidence rules.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metapool import data as D
from metapool.convert import conversion_label, median_to_mean_sd
from metapool.data import DataError
from metapool.effects import fill_from_medians


# the loader returns records (one dict per row); these tests read them as a DataFrame
def load_tables(*args, **kw):
    return pd.DataFrame(D.load_tables(*args, **kw))


def load_studies(path):
    return pd.DataFrame(D.load_studies(path))


def load_targets(path, **kw):
    return pd.DataFrame(D.load_targets(path, **kw))

ROOT = Path(__file__).resolve().parent.parent
PROP_HEADER = "study,outcome,events,total,source,status,note"
TWO_HEADER = "study,outcome,events_treat,total_treat,events_ctrl,total_ctrl,source,status"


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return str(p)


@pytest.fixture
def studies(tmp_path):
    path = write(tmp_path, "studies.csv", "study,author,year,dose_regimen,n\nA2020,Ann,2020,1 MIU qod,30\n"
                                          "B2021,Bob,2021,0.5 MIU/day x5d,20\nC2022,Cy,2022,,\n")
    return D.load_studies(path)


def expect(exc, path, line, column, value):
    msg = str(exc.value)
    assert Path(path).name in msg, msg
    if line is not None:
        assert (f"line {line}" if isinstance(line, int) else line) in msg, msg
    if column is not None:
        assert f"'{column}'" in msg, msg
    if value is not None:
        assert repr(str(value)) in msg or str(value) in msg, msg
    return msg


# --------------------------------------------------------------------------- good files
def test_proportion_table_loads_with_kind_and_lines(tmp_path, studies):
    p = write(tmp_path, "p.csv", PROP_HEADER + "\nA2020,x,3,10,src,REPORTED,\n\nB2021,x,4,12,src,derived,n\n")
    rows = load_tables([p], studies=studies)
    assert list(rows["kind"]) == ["proportion", "proportion"]
    assert list(rows["line"]) == [2, 4]                 # blank line 3 skipped, numbering kept
    assert list(rows["status"]) == ["reported", "derived"]
    assert rows["events"].dtype == float


def test_bom_is_accepted(tmp_path):
    p = write(tmp_path, "bom.csv", "\ufeff" + PROP_HEADER + "\nA2020,x,3,10,src,reported,\n", "utf-8")
    assert Path(p).read_bytes()[:3] == b"\xef\xbb\xbf"
    rows = load_tables(p)
    assert "study" in rows.columns and rows["study"].iloc[0] == "A2020"


def test_semicolon_file_is_accepted(tmp_path):
    p = write(tmp_path, "semi.csv", PROP_HEADER.replace(",", ";") + "\nA2020;x;3;10;src;reported;a, b\n")
    rows = load_tables(p)
    assert rows["events"].iloc[0] == 3 and rows["note"].iloc[0] == "a, b"


def test_semicolon_file_with_decimal_comma_says_so(tmp_path):
    p = write(tmp_path, "semi.csv", "study;outcome;n;mean_pre;sd_pre;mean_post;sd_post;source;status\n"
                                    "A2020;y;20;3,5;1;2;1;src;reported\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    msg = expect(e, p, 2, "mean_pre", "3,5")
    assert "decimal point" in msg


def test_quoted_multiline_cell_keeps_editor_line_numbers(tmp_path):
    body = '\nA2020,x,3,10,src,reported,"two\nlines"\nB2021,x,-1,10,s,reported,\n'
    p = write(tmp_path, "ml.csv", PROP_HEADER + body)
    with pytest.raises(DataError) as e:
        load_tables(p)
    expect(e, p, 4, "events", "-1")


# --------------------------------------------------------------------------- file-level problems
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_tables(str(tmp_path / "nope.csv"))


def test_empty_file(tmp_path):
    p = write(tmp_path, "empty.csv", "\n  \n")
    with pytest.raises(DataError, match="empty") as e:
        load_tables(p)
    expect(e, p, None, None, None)


def test_header_without_rows(tmp_path):
    p = write(tmp_path, "h.csv", PROP_HEADER + "\n")
    with pytest.raises(DataError, match="no data rows"):
        load_tables(p)


def test_too_many_cells(tmp_path):
    p = write(tmp_path, "wide.csv", PROP_HEADER + "\nA2020,x,3,10,src,reported,note,extra\n")
    with pytest.raises(DataError, match="quoted") as e:
        load_tables(p)
    expect(e, p, 2, None, "extra")


# --------------------------------------------------------------------------- columns
def test_misspelt_required_column_suggests_the_name(tmp_path):
    p = write(tmp_path, "c.csv", "study,outcome,evnets,total,source,status\nA2020,x,3,10,s,reported\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    msg = expect(e, p, 1, "events", None)
    assert "'evnets'" in msg and "misspelling" in msg


def test_misspelt_optional_column_suggests_the_name(tmp_path):
    p = write(tmp_path, "c.csv", "study,outcome,events,total,source,status,ntoe\nA2020,x,3,10,s,reported,a\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    msg = expect(e, p, 1, "ntoe", None)
    assert "did you mean 'note'" in msg


def test_missing_status_column(tmp_path):
    p = write(tmp_path, "c.csv", "study,outcome,events,total,source\nA2020,x,3,10,s\n")
    with pytest.raises(DataError, match="required column is missing") as e:
        load_tables(p)
    expect(e, p, 1, "status", None)


def test_unknown_kind(tmp_path):
    p = write(tmp_path, "c.csv", "study,outcome,cases,source,status\nA2020,x,3,s,reported\n")
    with pytest.raises(DataError, match="cannot tell which kind") as e:
        load_tables(p)
    expect(e, p, 1, None, None)


# --------------------------------------------------------------------------- cells
@pytest.mark.parametrize("row,line_col_val,fragment", [
    ("A2020,x,three,10,s,reported,", ("events", "three"), "a number"),
    ("A2020,x,-2,10,s,reported,", ("events", "-2"), ">= 0"),
    ("A2020,x,2.5,10,s,reported,", ("events", "2.5"), "whole numbers"),
    ("A2020,x,11,10,s,reported,", ("events", "11"), "must not exceed total"),
    ("A2020,x,0,0,s,reported,", ("total", "0"), "at least 1"),
    ("A2020,x,,10,s,reported,", ("events", ""), "required"),
    ("A2020,x,3,10,s,guessed,", ("status", "guessed"), "reported, derived, secondary, inferred"),
    ("A2020,x,3,10,,reported,", ("source", ""), "source"),
    ("A2020,bad key,3,10,s,reported,", ("outcome", "bad key"), "letters, digits"),
])
def test_bad_proportion_cells(tmp_path, row, line_col_val, fragment):
    p = write(tmp_path, "bad.csv", PROP_HEADER + "\nB2021,ok,1,5,s,reported,\n" + row + "\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    msg = expect(e, p, 3, *line_col_val)
    assert fragment in msg


def test_status_typo_suggests(tmp_path):
    p = write(tmp_path, "bad.csv", PROP_HEADER + "\nA2020,x,3,10,s,reproted,\n")
    with pytest.raises(DataError, match="did you mean 'reported'"):
        load_tables(p)


def test_two_arm_events_exceed_total(tmp_path):
    p = write(tmp_path, "t.csv", TWO_HEADER + "\nA2020,x_rr,3,10,31,30,s,reported\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    expect(e, p, 2, "events_ctrl", "31")


PP_HEADER = "study,outcome,n,mean_pre,sd_pre,mean_post,sd_post,r,source,status"


@pytest.mark.parametrize("row,col,val,fragment", [
    ("A2020,y,20,5,0,4,1,,s,reported", "sd_pre", "0", "SD must be > 0"),
    ("A2020,y,20,5,1,4,-1,,s,reported", "sd_post", "-1", "SD must be > 0"),
    ("A2020,y,1,5,1,4,1,,s,reported", "n", "1", ">= 2"),
    ("A2020,y,20,5,1,4,1,1.2,s,reported", "r", "1.2", "between -1 and 1"),
    ("A2020,y,20,,1,4,1,,s,reported", "mean_pre", "", "median_pre"),
])
def test_bad_prepost_cells(tmp_path, row, col, val, fragment):
    p = write(tmp_path, "pp.csv", PP_HEADER + "\n" + row + "\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    msg = expect(e, p, 2, col, val)
    assert fragment in msg


def test_prepost_median_is_kept_and_converted_when_effects_are_computed(tmp_path):
    header = "study,outcome,n,median_pre,min_pre,max_pre,median_post,q1_post,q3_post,source,status,note"
    p = write(tmp_path, "pp.csv", header + "\nA2020,y,30,12,8,27,6,3,9,s,reported,kept\n")
    recs = D.load_tables(p)
    assert recs[0]["median_pre"] == 12 and "mean_pre" not in recs[0]      # the loader keeps what is printed
    rows, notes = fill_from_medians(recs, {"mean": "luo2018", "sd": "shi2020"})
    m_pre, s_pre = median_to_mean_sd(12, minimum=8, maximum=27, n=30)
    m_post, s_post = median_to_mean_sd(6, q1=3, q3=9, n=30)
    r = rows[0]
    assert r["mean_pre"] == pytest.approx(float(m_pre)) and r["sd_pre"] == pytest.approx(float(s_pre))
    assert r["mean_post"] == pytest.approx(float(m_post)) and r["sd_post"] == pytest.approx(float(s_post))
    assert str(conversion_label(minimum=8, maximum=27)) in r["conversion"]
    assert "A2020" in notes[0] and recs[0].get("mean_pre") is None        # the input is not modified


def test_prepost_row_with_mean_and_median_next_to_a_converted_row(tmp_path):
    # B2020 gives both mean/SD and median (range): it is kept as given, A2020 is converted
    header = "study,outcome,n,mean_pre,sd_pre,mean_post,sd_post,median_pre,min_pre,max_pre,source,status"
    p = write(tmp_path, "pp.csv", header + "\nA2020,y,30,,,5,2,12,8,27,s,reported"
                                           "\nB2020,y,30,14,3,5,2,12,8,27,s,reported\n")
    rows = {r["study"]: r for r in fill_from_medians(D.load_tables(p), {})[0]}
    assert rows["B2020"]["mean_pre"] == 14 and rows["B2020"]["sd_pre"] == 3
    m, s = median_to_mean_sd(12, minimum=8, maximum=27, n=30)
    assert rows["A2020"]["mean_pre"] == pytest.approx(float(m)) and rows["A2020"]["sd_pre"] == pytest.approx(float(s))


def test_prepost_median_out_of_order(tmp_path):
    header = "study,outcome,n,median_pre,min_pre,max_pre,mean_post,sd_post,source,status"
    p = write(tmp_path, "pp.csv", header + "\nA2020,y,30,12,14,27,6,3,s,reported\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    expect(e, p, 2, "median_pre", "12")


def test_generic_needs_a_variance(tmp_path):
    p = write(tmp_path, "g.csv", "study,outcome,yi,vi,source,status\nA2020,z,0.3,,s,reported\n"
                                 "B2021,z,0.1,-0.2,s,reported\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    expect(e, p, 2, "vi", None)


# --------------------------------------------------------------------------- across rows and tables
def test_duplicate_study_outcome_within_a_file(tmp_path):
    p = write(tmp_path, "d.csv", PROP_HEADER + "\nA2020,x,3,10,s,reported,\nA2020,x,4,10,s,reported,\n")
    with pytest.raises(DataError) as e:
        load_tables(p)
    msg = expect(e, p, 3, "study", "A2020")
    assert "line 2" in msg and "once" in msg


def test_duplicate_study_outcome_across_files(tmp_path):
    p1 = write(tmp_path, "one.csv", PROP_HEADER + "\nA2020,x,3,10,s,reported,\n")
    p2 = write(tmp_path, "two.csv", PROP_HEADER + "\nB2021,x,3,10,s,reported,\nA2020,x,4,10,s,reported,\n")
    with pytest.raises(DataError) as e:
        load_tables([p1, p2])
    msg = expect(e, p2, 3, "study", "A2020")
    assert "one.csv, line 2" in msg


def test_one_outcome_two_kinds(tmp_path):
    p1 = write(tmp_path, "one.csv", PROP_HEADER + "\nA2020,x,3,10,s,reported,\n")
    p2 = write(tmp_path, "two.csv", TWO_HEADER + "\nB2021,x,3,10,3,10,s,reported\n")
    with pytest.raises(DataError, match="one kind") as e:
        load_tables([p1, p2])
    expect(e, p2, 2, "outcome", "x")


def test_study_not_in_study_table(tmp_path, studies):
    p = write(tmp_path, "s.csv", PROP_HEADER + "\nA2020,x,3,10,s,reported,\nB2012,x,3,10,s,reported,\n")
    with pytest.raises(DataError) as e:
        load_tables(p, studies=studies)
    msg = expect(e, p, 3, "study", "B2012")
    assert "not in the study table" in msg and "'B2021'" in msg


def test_extra_rows_are_located_by_item(tmp_path, studies):
    p = write(tmp_path, "p.csv", PROP_HEADER + "\nA2020,x,3,10,s,reported,\n")
    extra = [dict(study="B2021", outcome="x", events=2, total=9, source="s", status="reported"),
             dict(study="C2022", outcome="x", events=12, total=9, source="s", status="reported")]
    with pytest.raises(DataError) as e:
        load_tables([p], extra_rows=extra, studies=studies)
    msg = expect(e, "config.yaml extra_studies", "item 2", "events", "12")
    assert "must not exceed total" in msg
    extra[1]["events"] = 5
    rows = load_tables([p], extra=extra, studies=studies)      # `extra` alias, as the workflow calls it
    assert sorted(rows["study"]) == ["A2020", "B2021", "C2022"]
    assert rows.loc[rows["study"] == "C2022", "line"].iloc[0] == "item 2"


def test_outcome_rows(tmp_path):
    p = write(tmp_path, "p.csv", PROP_HEADER + "\nA2020,x,3,10,s,reported,\nA2020,w,1,10,s,reported,\n")
    rows = D.load_tables(p)
    assert [r["study"] for r in D.outcome_rows(rows, "x")] == ["A2020"]
    assert D.outcome_rows(rows, "xx") == []


# --------------------------------------------------------------------------- study table
def test_study_table_duplicates_and_counts(tmp_path):
    p = write(tmp_path, "s.csv", "study,year,n\nA,2020,10\nB,2021,NR\nA,2022,5\n")
    with pytest.raises(DataError) as e:
        load_studies(p)
    msg = expect(e, p, 4, "study", "A")
    assert "line 2" in msg
    p = write(tmp_path, "s2.csv", "study,year,n\nA,2020,0\n")
    with pytest.raises(DataError) as e:
        load_studies(p)
    expect(e, p, 2, "n", "0")
    p = write(tmp_path, "s3.csv", "stdy,year\nA,2020\n")
    with pytest.raises(DataError, match="misspelling") as e:
        load_studies(p)
    expect(e, p, 1, "study", None)


# --------------------------------------------------------------------------- the bundled dataset
@pytest.fixture(scope="module")
def bundled():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    studies = D.load_studies(ROOT / cfg["studies"])
    rows = load_tables([ROOT / t for t in cfg["tables"]], cfg.get("extra_studies") or [], studies=studies)
    targets = load_targets(ROOT / cfg["targets"], outcomes=list(cfg["outcomes"]))
    return cfg, pd.DataFrame(studies), rows, targets


def test_bundled_every_outcome_has_rows_with_an_allowed_status(bundled):
    cfg, _, rows, _ = bundled
    default = cfg["defaults"]["status"]
    for key, spec in cfg["outcomes"].items():
        mine = rows[rows["outcome"] == key]
        assert len(mine), key
        assert mine["status"].isin(spec.get("status", default)).any(), key
        if "inferred" in spec.get("status", default) and (mine["status"] == "inferred").any():
            assert "INFERRED" in spec["label"], f"{key}: inferred rows enter, the label must say so"


def test_bundled_rr_rd_pairs_hold_identical_counts(bundled):
    _, _, rows, _ = bundled
    two = rows[rows["kind"] == "binary"].copy()
    two["base"] = two["outcome"].str.replace(r"_(rr|rd)$", "", regex=True)
    cols = ["events_treat", "total_treat", "events_ctrl", "total_ctrl", "status"]
    for (base, study), g in two.groupby(["base", "study"]):
        assert sorted(g["outcome"]) == [f"{base}_rd", f"{base}_rr"], (base, study)
        assert (g[cols].nunique() == 1).all(), (base, study)


def test_bundled_il2_arm_counts_agree_between_tables(bundled):
    _, _, rows, _ = bundled
    props = rows[rows["kind"] == "proportion"].set_index(["study", "outcome"])
    two = rows[(rows["kind"] == "binary") & rows["outcome"].str.endswith("_rr")]
    for r in two.itertuples():
        key = (r.study, r.outcome[:-3])
        if key in props.index:
            assert props.loc[key, "events"] == r.events_treat and props.loc[key, "total"] == r.total_treat


def test_bundled_every_row_has_source_and_inferred_rows_say_why(bundled):
    _, _, rows, _ = bundled
    assert rows["source"].str.len().min() > 10
    inferred = rows[rows["status"] == "inferred"]
    assert len(inferred) >= 4
    assert inferred["note"].str.contains("INFERRED").all()


def test_bundled_conversions_are_the_named_method(bundled):
    _, _, rows, _ = bundled
    conv = rows[rows["median_pre"].notna()]
    assert len(conv) >= 3 and conv["note"].str.contains("convert").all()
    filled = pd.DataFrame(fill_from_medians(conv.to_dict(orient="records"), {})[0])
    for side in ("pre", "post"):
        kw = dict(q1=conv[f"q1_{side}"], q3=conv[f"q3_{side}"], minimum=conv[f"min_{side}"],
                  maximum=conv[f"max_{side}"])
        m, s = median_to_mean_sd(conv[f"median_{side}"].to_numpy(), n=conv["n"].to_numpy(),
                                 **{k: v.to_numpy() for k, v in kw.items()})
        np.testing.assert_allclose(filled[f"mean_{side}"], m, rtol=1e-12)
        np.testing.assert_allclose(filled[f"sd_{side}"], s, rtol=1e-12)
    lab = conversion_label(**{k: conv[f"{c}_pre"].to_numpy() for k, c in
                              (("q1", "q1"), ("q3", "q3"), ("minimum", "min"), ("maximum", "max"))})
    assert list(conv["conversion"]) == list(lab)      # the data name the method the loader uses


def test_bundled_overlapping_cohorts_enter_once(bundled):
    _, studies, rows, _ = bundled
    ids = set(rows["study"])
    # re-reports and re-analyses are not separate studies (EVIDENCE.md §2.3)
    for dup in ("Liang2021", "Miao2021_ArthritisResTher", "LupusSciMed2023", "ShanxiSLE_Rapa_EULAR2017",
                "ShanxiSLE_Rapa_ACR2018", "WangJ2022_FrontImmunol", "ZhangSX2024_FrontImmunol"):
        assert dup not in ids and dup not in set(studies["study"])
    assert "Liang" in studies.set_index("study").loc["He2016_NatMed", "note"]
    assert "Lupus Sci Med 2023" in studies.set_index("study").loc["He2020_ARD", "note"]


def test_bundled_denominators_follow_evidence_note_9(bundled):
    _, _, rows, _ = bundled
    he = rows[(rows["study"] == "He2020_ARD") & (rows["kind"] == "binary")].set_index("outcome")
    assert he.loc["sri4_wk12_rr", ["total_treat", "total_ctrl"]].tolist() == [29, 30]
    assert he.loc["sae_rr", ["total_treat", "total_ctrl"]].tolist() == [29, 30]
    assert he.loc["ln_remission_rr", ["total_treat", "total_ctrl"]].tolist() == [13, 12]


def test_bundled_targets_cover_all_published_rows(bundled):
    cfg, _, _, targets = bundled
    assert len(targets) == 37 and targets["target_id"].is_unique
    used = targets["outcome"].dropna()
    assert set(used) <= set(cfg["outcomes"])
    numeric = targets[targets["estimate"].notna() & targets["outcome"].notna()]
    assert numeric["decimals"].notna().all() and numeric["model"].notna().all()
    no_outcome = targets[targets["outcome"].isna()]
    assert no_outcome["missing"].str.len().min() > 10       # says what is not public


# --------------------------------------------------------------------------- hostile input (issue 9)
def test_columns_that_differ_only_by_case_are_an_error(tmp_path):
    p = write(tmp_path, "c.csv", "study,outcome,events,Events,total,source,status\nA,x,1,2,10,s,reported\n")
    with pytest.raises(DataError, match="differ only by case") as e:
        D.load_tables(p)
    expect(e, p, 1, "Events", None)


def test_header_case_is_accepted(tmp_path):
    p = write(tmp_path, "c.csv", "Study,Outcome,Events,TOTAL,Source,Status\nA,x,1,10,s,Reported\n")
    rows = D.load_tables(p)
    assert rows[0]["events"] == 1 and rows[0]["total"] == 10 and rows[0]["status"] == "reported"


def test_a_short_row_is_reported_as_too_short(tmp_path):
    p = write(tmp_path, "s.csv", "study,author,year,n,country\nA,Ann,2020,China\n")
    with pytest.raises(DataError, match="too short") as e:
        D.load_studies(p)
    msg = expect(e, p, 2, "country", None)
    assert "4 cells" in msg and "5 columns" in msg


def test_two_study_keys_that_differ_only_in_case_are_refused(tmp_path):
    p = write(tmp_path, "s.csv", "study,author,year\nHe2020,He J,2020\nhe2020,He J,2020\n")
    with pytest.raises(DataError, match="letter case") as e:
        D.load_studies(p)
    msg = expect(e, p, 3, "study", "he2020")
    assert "'He2020' (line 2)" in msg


def test_a_long_row_says_where_the_surplus_starts(tmp_path):
    p = write(tmp_path, "w.csv", PROP_HEADER + "\nA2020,x,3,10,src,reported,a note, with a comma\n")
    with pytest.raises(DataError, match="too long") as e:
        D.load_tables(p)
    msg = expect(e, p, 2, None, None)
    assert "with a comma" in msg and "quoted" in msg


@pytest.mark.parametrize("cell", ["a\x00b", "x\x07y"])
def test_control_characters_are_refused(tmp_path, cell):
    p = write(tmp_path, "n.csv", PROP_HEADER + f"\nA2020,x,3,10,src,reported,{cell}\n")
    with pytest.raises(DataError, match="control characters") as e:
        D.load_tables(p)
    expect(e, p, 2, "note", None)


def test_huge_and_non_finite_numbers_are_refused(tmp_path):
    for value, fragment in (("1e308", "between"), ("2e9", "a count up to"), ("inf", "finite"),
                            ("nan", "a number is required")):
        p = write(tmp_path, "h.csv", PROP_HEADER + f"\nA2020,x,3,{value},src,reported,\n")
        with pytest.raises(DataError, match=fragment) as e:
            D.load_tables(p)
        expect(e, p, 2, "total", None)


def test_long_cells_and_big_files_are_refused_fast(tmp_path, monkeypatch):
    p = write(tmp_path, "l.csv", PROP_HEADER + "\nA2020,x,3,10,src,reported," + "x" * (D.MAX_CELL_CHARS + 1) + "\n")
    with pytest.raises(DataError, match="at most"):
        D.load_tables(p)
    monkeypatch.setattr(D, "MAX_FILE_BYTES", 100)
    p = write(tmp_path, "big.csv", PROP_HEADER + "\nA2020,x,3,10,src,reported,\n" * 5)
    with pytest.raises(DataError, match="bytes"):
        D.load_tables(p)


TARGET_HEADER = "target_id,paper,outcome,estimate,ci_lb,ci_ub,decimals,measure,model,statuses,duplicate_of"


@pytest.mark.parametrize("row,col,fragment", [
    ("bad id,P,x,0.5,,,3,PR,FE,,", "target_id", "letters, digits"),
    ("T1,P,x,0.5x,,,3,PR,FE,,", "estimate", "a number"),
    ("T1,P,x,0.5,0.6,0.7,3,PR,FE,,", "ci_lb", "ci_lb <= estimate"),
    ("T1,P,x,0.5,0.4,,3,PR,FE,,", "ci_ub", "both CI bounds"),
    ("T1,P,x,0.5,,,2.5,PR,FE,,", "decimals", "whole number"),
    ("T1,P,x,0.5,,,3,PLOO,FE,,", "measure", "did you mean 'PLO'"),
    ("T1,P,x,0.5,,,3,PR,REMLL,,", "model", "did you mean 'REML'"),
    ("T1,P,x,0.5,,,3,PR,FE,reported;infered,", "statuses", "did you mean 'inferred'"),
    ("T1,P,y,0.5,,,3,PR,FE,,", "outcome", "configured"),
    ("T1,P,x,0.5,,,3,PR,FE,,T9", "duplicate_of", "another row"),
])
def test_bad_target_rows(tmp_path, row, col, fragment):
    p = write(tmp_path, "t.csv", TARGET_HEADER + "\n" + row + "\n")
    with pytest.raises(DataError, match=fragment) as e:
        D.load_targets(p, outcomes=["x"])
    expect(e, p, 2, col, None)


def test_target_ids_are_unique(tmp_path):
    p = write(tmp_path, "t.csv", TARGET_HEADER + "\nT1,P,x,0.5,,,3,PR,FE,,\nT1,P,x,0.6,,,3,PR,FE,,\n")
    with pytest.raises(DataError, match="already on line 2"):
        D.load_targets(p)


def test_plain_table_for_the_command_line_allows_repeated_labels(tmp_path):
    p = write(tmp_path, "r.csv", "study,yi,vi\nPellegrini & Hicks 1972,0.18,0.12\nPellegrini & Hicks 1972,0.26,0.13\n")
    kind, rows, warnings = D.load_plain_table(p)
    assert kind == "generic" and len(rows) == 2 and "line 3" in warnings[0] and "line 2" in warnings[0]
    p = write(tmp_path, "f.csv", "study,events,total\nA,3.5,10\n")
    with pytest.raises(DataError, match="whole numbers"):
        D.load_plain_table(p)
