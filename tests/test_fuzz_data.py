"""Fuzzing of the data layer (metapool.data) with hypothesis-generated CSV files.

Valid tables (any kind, comma- or semicolon-separated, with or without a byte-order mark, LF or
CRLF line ends, quoted commas/semicolons in text cells, header names in any case) must load into
a DataFrame with the values written.  Spoilt tables (a required column dropped or misspelt, a
non-numeric cell, a negative count, events > total, SD <= 0, n < 2, r outside [-1, 1], an
unknown status, an empty file, a header without rows, a study missing from the study table, a
duplicate study x outcome row) must raise :class:`metapool.data.DataError` whose message names the
file and, where there is one, the line (as an editor shows it: header = line 1) and the column.
Arbitrary bytes must give a DataFrame or a DataError, never another exception.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metapool import data as D
from metapool.data import DataError
from metapool.effects import escalc
from metapool.models import fit

N_EXAMPLES = int(os.environ.get("METAPOOL_PROPERTY_EXAMPLES", "40"))
SETTINGS = settings(max_examples=N_EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
STATUSES = ("reported", "derived", "secondary", "inferred")

# --------------------------------------------------------------------------- generators
key = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=12)
# free text with the characters that break naive CSV handling (quotes, both delimiters, non-ASCII)
free_text = st.text(st.sampled_from(list("abc XYZ019.,;:'\"()-/%éµ±")), min_size=1, max_size=30) \
    .filter(lambda s: s.strip() != "")
count = st.integers(0, 400)
mean = st.floats(-500, 500, allow_nan=False).map(lambda x: round(x, 3))
sd = st.floats(0.01, 100).map(lambda x: round(x, 3) or 0.01)
n = st.integers(2, 500)


@st.composite
def outcome_rows(draw):
    """(kind, list of row dicts, numeric columns) of a valid outcome table."""
    kind = draw(st.sampled_from(["proportion", "binary", "continuous", "prepost", "generic"]))
    k = draw(st.integers(1, 6))
    studies = draw(st.lists(key, min_size=k, max_size=k, unique=True))
    outcome = draw(key)
    rows = []
    for s in studies:
        r = {"study": s, "outcome": outcome, "source": draw(free_text),
             "status": draw(st.sampled_from(STATUSES))}
        if kind == "proportion":
            tot = draw(st.integers(1, 400))
            r.update(events=draw(st.integers(0, tot)), total=tot)
        elif kind == "binary":
            t1, t2 = draw(st.integers(1, 400)), draw(st.integers(1, 400))
            r.update(events_treat=draw(st.integers(0, t1)), total_treat=t1,
                     events_ctrl=draw(st.integers(0, t2)), total_ctrl=t2)
        elif kind == "continuous":
            r.update(mean_treat=draw(mean), sd_treat=draw(sd), n_treat=draw(n),
                     mean_ctrl=draw(mean), sd_ctrl=draw(sd), n_ctrl=draw(n))
        elif kind == "prepost":
            r.update(mean_pre=draw(mean), sd_pre=draw(sd), mean_post=draw(mean), sd_post=draw(sd),
                     n=draw(n), r=draw(st.floats(-1, 1).map(lambda x: round(x, 3))))
        else:
            r.update(yi=draw(mean), vi=draw(sd))
        if draw(st.booleans()):
            r["note"] = draw(free_text)
        rows.append(r)
    numeric = [c for c in rows[0] if c not in ("study", "outcome", "source", "status", "note")]
    return kind, rows, numeric


@st.composite
def file_format(draw):
    return {"delimiter": draw(st.sampled_from([",", ";"])), "bom": draw(st.booleans()),
            "newline": draw(st.sampled_from(["\n", "\r\n"])), "upper": draw(st.booleans())}


def render(rows, columns=None, *, delimiter=",", bom=False, newline="\n", upper=False):
    """CSV text of ``rows`` (list of dicts) as a spreadsheet would save it."""
    columns = list(columns or rows[0])
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    w.writerow([c.upper() if upper else c for c in columns])
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return ("\ufeff" if bom else "") + buf.getvalue()


@pytest.fixture(scope="module")
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="metapool-fuzz-") as d:
        yield Path(d)


_counter = iter(range(10 ** 9))


# the loader returns records; these tests read them as a DataFrame
def load_tables(*args, **kw):
    return pd.DataFrame(D.load_tables(*args, **kw))


def load_studies(path):
    return pd.DataFrame(D.load_studies(path))


def write(folder: Path, text: str | bytes, name="table") -> Path:
    p = folder / f"{name}_{next(_counter)}.csv"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8", newline="")
    return p


def expect_error(call, path, *, line=None, column=None) -> str:
    """``call()`` raises DataError naming ``path`` (and ``line``/``column``); returns the message."""
    with pytest.raises(DataError) as exc:
        call()
    msg = str(exc.value)
    assert str(path) in msg, msg
    if line is not None:
        assert f"line {line}" in msg, f"expected line {line}: {msg}"
    if column is not None:
        assert repr(column) in msg, f"expected column {column!r}: {msg}"
    return msg


# --------------------------------------------------------------------------- valid tables
@SETTINGS
@given(table=outcome_rows(), fmt=file_format())
def test_valid_tables_load_with_their_values(tmpdir_path, table, fmt):
    kind, rows, numeric = table
    p = write(tmpdir_path, render(rows, **fmt))
    df = load_tables([p])
    assert isinstance(df, pd.DataFrame) and len(df) == len(rows)
    assert set(df["kind"]) == {kind}
    assert list(df["study"]) == [r["study"] for r in rows]
    assert list(df["line"]) == list(range(2, len(rows) + 2))
    assert list(df["source"]) == [r["source"].strip() for r in rows]
    for c in numeric:
        np.testing.assert_allclose(df[c].to_numpy(float), [float(r[c]) for r in rows], err_msg=c)


MEASURES = {"proportion": ("PR", "PLO", "PAS", "PFT"), "binary": ("RR", "OR", "RD"),
            "continuous": ("MD", "SMD"), "prepost": ("SMCR", "SMCC", "MC"), "generic": ("GEN",)}


@SETTINGS
@given(table=outcome_rows(), fmt=file_format(), data=st.data())
def test_valid_tables_give_finite_pooled_results(tmpdir_path, table, fmt, data):
    """load_tables -> outcome_frame -> escalc -> fit: finite estimates, or a ValueError that says why."""
    kind, rows, _ = table
    df = load_tables([write(tmpdir_path, render(rows, **fmt))])
    frame = df[df["outcome"] == rows[0]["outcome"]].dropna(axis=1, how="all")
    assert set(frame["kind"]) == {kind}
    measure = data.draw(st.sampled_from(MEASURES[kind]))
    if kind == "prepost" and measure != "MC":     # Hedges' c(n - 1) needs n >= 3 (metafor: NA)
        frame = frame[frame["n"] >= 3]
        if frame.empty:
            return
    try:
        es = escalc(measure, frame)
    except ValueError as exc:   # e.g. a change-score SD of 0 (r = 1 with equal SDs)
        assert "study" in str(exc), exc
        return
    if es.k == 0:
        return
    for method in ("FE", "DL", "REML"):
        r = fit(es, method=method)
        assert np.isfinite([r.estimate, r.se, r.ci_lb, r.ci_ub, r.tau2, r.I2]).all(), (method, r)


@SETTINGS
@given(table=outcome_rows(), fmt=file_format())
def test_valid_tables_pass_the_study_check(tmpdir_path, table, fmt):
    _, rows, _ = table
    studies = [{"study": r["study"], "author": "X", "year": 2020, "n": 10} for r in rows]
    ps = write(tmpdir_path, render(studies, **fmt), "studies")
    st_recs = D.load_studies(ps)
    assert [s["study"] for s in st_recs] == [r["study"] for r in rows]
    df = load_tables([write(tmpdir_path, render(rows, **fmt))], studies=st_recs)
    assert len(df) == len(rows)


# --------------------------------------------------------------------------- spoilt tables
REQUIRED = {"proportion": ("events", "total"),
            "binary": ("events_treat", "total_treat", "events_ctrl", "total_ctrl"),
            "continuous": ("mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl"),
            "prepost": ("n", "mean_pre", "sd_pre", "mean_post", "sd_post"),
            "generic": ("yi", "vi")}
BASE = ("study", "outcome", "source", "status")


@SETTINGS
@given(table=outcome_rows(), fmt=file_format(), data=st.data())
def test_dropped_required_column(tmpdir_path, table, fmt, data):
    kind, rows, _ = table
    col = data.draw(st.sampled_from(BASE + REQUIRED[kind]))
    columns = [c for c in rows[0] if c != col]
    p = write(tmpdir_path, render(rows, columns, **fmt))
    msg = expect_error(lambda: load_tables([p]), p, line=1)
    # a missing column is named (or, for the column that tells the kind, the kind is not found)
    assert repr(col) in msg or "cannot tell which kind" in msg, msg


def _typo(draw, name):
    how = draw(st.sampled_from(["drop", "swap", "double", "replace"]))
    i = draw(st.integers(0, len(name) - 1))
    if how == "drop" and len(name) > 1:
        out = name[:i] + name[i + 1:]
    elif how == "swap" and len(name) > 1:
        i = min(i, len(name) - 2)
        out = name[:i] + name[i + 1] + name[i] + name[i + 2:]
    elif how == "double":
        out = name[:i] + name[i] + name[i:]
    else:
        out = name[:i] + draw(st.sampled_from("xqz")) + name[i + 1:]
    return out


@SETTINGS
@given(table=outcome_rows(), data=st.data())
def test_misspelt_required_column(tmpdir_path, table, data):
    kind, rows, _ = table
    col = data.draw(st.sampled_from(BASE + REQUIRED[kind]))
    bad = _typo(data.draw, col)
    if bad == col or bad.lower() in rows[0]:
        return
    columns = list(rows[0])
    text = render(rows, columns).split("\n", 1)
    header = ",".join(bad if c == col else c for c in columns)
    p = write(tmpdir_path, header + "\n" + text[1])
    msg = expect_error(lambda: load_tables([p]), p, line=1)
    assert repr(col) in msg or repr(bad) in msg or "cannot tell which kind" in msg, msg


NUMERIC_BAD = st.sampled_from(["abc", "1,5", "1.2.3", "--3", "n/a?", "#DIV/0!", "inf", "1e999", "½"])


@SETTINGS
@given(table=outcome_rows(), fmt=file_format(), value=NUMERIC_BAD, data=st.data())
def test_non_numeric_cell(tmpdir_path, table, fmt, value, data):
    kind, rows, numeric = table
    i = data.draw(st.integers(0, len(rows) - 1))
    col = data.draw(st.sampled_from(numeric))
    rows[i][col] = value
    p = write(tmpdir_path, render(rows, **fmt))
    msg = expect_error(lambda: load_tables([p]), p, line=i + 2, column=col)
    if value == "1,5":
        assert "decimal" in msg, msg


SPOIL = {  # kind: [(column, bad-value strategy, what the message must mention)]
    "proportion": [("events", st.integers(-99, -1), None), ("total", st.integers(-99, 0), None),
                   ("events", st.just("3.5"), "whole")],
    "binary": [("events_ctrl", st.integers(-99, -1), None), ("total_treat", st.integers(-99, 0), None)],
    "continuous": [("sd_treat", st.sampled_from(["0", "-1.5"]), "SD"), ("n_ctrl", st.integers(-5, 1), None)],
    "prepost": [("sd_post", st.sampled_from(["0", "-0.1"]), "SD"), ("n", st.integers(-5, 1), None),
                ("r", st.sampled_from(["1.01", "-2", "7"]), "-1 and 1")],
    "generic": [("vi", st.sampled_from(["0", "-0.2"]), "> 0")],
}


@SETTINGS
@given(table=outcome_rows(), fmt=file_format(), data=st.data())
def test_out_of_range_value(tmpdir_path, table, fmt, data):
    kind, rows, _ = table
    col, strategy, words = data.draw(st.sampled_from(SPOIL[kind]))
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i][col] = data.draw(strategy)
    p = write(tmpdir_path, render(rows, **fmt))
    msg = expect_error(lambda: load_tables([p]), p, line=i + 2, column=col)
    assert repr(str(rows[i][col])) in msg, msg
    if words:
        assert words in msg, msg


@SETTINGS
@given(table=outcome_rows(), data=st.data())
def test_events_above_total(tmpdir_path, table, data):
    kind, rows, _ = table
    pairs = {"proportion": [("events", "total")],
             "binary": [("events_treat", "total_treat"), ("events_ctrl", "total_ctrl")]}
    if kind not in pairs:
        return
    ev, tot = data.draw(st.sampled_from(pairs[kind]))
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i][ev] = rows[i][tot] + data.draw(st.integers(1, 50))
    p = write(tmpdir_path, render(rows))
    msg = expect_error(lambda: load_tables([p]), p, line=i + 2, column=ev)
    assert tot in msg, msg


@SETTINGS
@given(table=outcome_rows(), status=st.sampled_from(["Reportd", "published", "x", "estimated"]),
       data=st.data())
def test_unknown_status(tmpdir_path, table, status, data):
    _, rows, _ = table
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i]["status"] = status
    p = write(tmpdir_path, render(rows))
    expect_error(lambda: load_tables([p]), p, line=i + 2, column="status")


@SETTINGS
@given(table=outcome_rows(), data=st.data())
def test_study_missing_from_study_table_and_duplicates(tmpdir_path, table, data):
    _, rows, _ = table
    studies = [{"study": r["study"], "author": "X"} for r in rows]
    i = data.draw(st.integers(0, len(rows) - 1))
    dropped = studies.pop(i)
    st_df = D.load_studies(write(tmpdir_path, render(studies or [{"study": "other", "author": "Y"}]),
                               "studies"))
    p = write(tmpdir_path, render(rows))
    msg = expect_error(lambda: load_tables([p], studies=st_df), p, line=i + 2, column="study")
    assert repr(dropped["study"]) in msg, msg
    # the same study x outcome twice (in a second file): located at the second occurrence
    j = data.draw(st.integers(0, len(rows) - 1))
    p2 = write(tmpdir_path, render([rows[j]]))
    msg = expect_error(lambda: load_tables([p, p2]), p2, line=2, column="study")
    assert str(p) in msg, msg   # ... and points back to the first


@SETTINGS
@given(fmt=file_format(), data=st.data())
def test_study_table_errors(tmpdir_path, fmt, data):
    k = data.draw(st.integers(2, 6))
    names = data.draw(st.lists(key, min_size=k, max_size=k, unique=True))
    rows = [{"study": s, "author": "A", "year": 2000 + i, "n": 10 + i} for i, s in enumerate(names)]
    i = data.draw(st.integers(1, k - 1))
    spoil = data.draw(st.sampled_from(["duplicate", "n", "year", "empty"]))
    if spoil == "duplicate":
        rows[i]["study"] = rows[0]["study"]
        col = "study"
    elif spoil == "n":
        rows[i]["n"] = data.draw(st.sampled_from(["-3", "0", "2.5", "many"]))
        col = "n"
    elif spoil == "year":
        rows[i]["year"] = "20x9"
        col = "year"
    else:
        rows[i]["study"] = ""
        col = "study"
    p = write(tmpdir_path, render(rows, **fmt), "studies")
    expect_error(lambda: load_studies(p), p, line=i + 2, column=col)


# --------------------------------------------------------------------------- whole-file problems
@pytest.mark.parametrize("text", ["", "   \n\n", "\ufeff", "\ufeff\r\n"],
                         ids=["empty", "blank", "bom", "bom-crlf"])
def test_empty_files(tmpdir_path, text):
    p = write(tmpdir_path, text)
    msg = expect_error(lambda: load_tables([p]), p)
    assert "empty" in msg
    expect_error(lambda: load_studies(p), p)


@SETTINGS
@given(table=outcome_rows(), fmt=file_format())
def test_header_without_rows(tmpdir_path, table, fmt):
    _, rows, _ = table
    text = render(rows, **fmt)
    header = text.split(fmt["newline"], 1)[0] + fmt["newline"]
    p = write(tmpdir_path, header)
    msg = expect_error(lambda: load_tables([p]), p)
    assert "no data rows" in msg, msg


@SETTINGS
@given(table=outcome_rows(), data=st.data())
def test_ragged_row(tmpdir_path, table, data):
    """A row with an unquoted extra delimiter and a value in the surplus cell."""
    _, rows, _ = table
    i = data.draw(st.integers(0, len(rows) - 1))
    lines = render(rows).split("\n")
    lines[i + 1] += ",surplus"
    p = write(tmpdir_path, "\n".join(lines))
    expect_error(lambda: load_tables([p]), p, line=i + 2)


def test_missing_file(tmpdir_path):
    p = tmpdir_path / "no_such_file.csv"
    expect_error(lambda: load_tables([p]), p)
    expect_error(lambda: load_studies(p), p)


def test_latin1_file_is_a_data_error(tmpdir_path):
    p = write(tmpdir_path, "study,outcome,events,total,status,source\nM\xfcller,o,1,2,reported,x\n"
              .encode("latin-1"))
    msg = expect_error(lambda: load_tables([p]), p)
    assert "UTF-8" in msg


# --------------------------------------------------------------------------- pure fuzz
_csvish = st.text(st.sampled_from(list("study,outcome;events total\"\n\r\t 0123456789-.abcNA\ufeff")),
                  max_size=300)
_header = st.sampled_from(["study,outcome,source,status,events,total\n",
                           "study;outcome;source;status;mean_pre;sd_pre;mean_post;sd_post;n\n",
                           "study,outcome,source,status,yi,vi\n", ""])


@settings(max_examples=N_EXAMPLES * 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(header=_header, body=_csvish)
def test_arbitrary_text_gives_a_frame_or_a_data_error(tmpdir_path, header, body):
    p = write(tmpdir_path, header + body)
    for load in (lambda: load_tables([p]), lambda: load_studies(p)):
        try:
            out = load()
        except DataError as exc:
            assert str(p) in str(exc)
        else:
            assert isinstance(out, pd.DataFrame)


@settings(max_examples=N_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_give_a_frame_or_a_data_error(tmpdir_path, raw):
    p = write(tmpdir_path, raw)
    try:
        out = load_tables([p])
    except DataError as exc:
        assert str(p) in str(exc)
    else:
        assert isinstance(out, pd.DataFrame)
