"""Read and validate the study table and the outcome data tables.

Every problem is reported as a :class:`DataError` whose message names the file, the line as a
spreadsheet or editor shows it (the header is line 1), the column, the value and what is
allowed, e.g.::

    data/raw/proportions.csv, line 7, column 'events': value '31' is not allowed: events must
    not exceed total (29)

Tables
------
Study table (:func:`load_studies`): ``study`` (unique key) plus descriptive columns (``author,
year, design, disease, dose_regimen, n, country, registration, source``, ...).

Outcome tables (:func:`load_tables`), one row per study x outcome; the *kind* of a table is read
from its columns (the data contract of DESIGN.md, :data:`KIND_COLUMNS`):

============= =============================================================================
proportion    ``events, total``
binary        ``events_treat, total_treat, events_ctrl, total_ctrl``
continuous    ``mean_treat, sd_treat, n_treat, mean_ctrl, sd_ctrl, n_ctrl``
prepost       ``n`` and, for each of ``pre``/``post``, ``mean_*, sd_*`` or ``median_*`` with
              ``min_*, max_*`` and/or ``q1_*, q3_*`` (converted, :mod:`metapool.convert`);
              optional ``r``
generic       ``yi`` with ``vi``, ``sei`` or ``ci_lb, ci_ub``
============= =============================================================================

Every outcome row also needs ``study``, ``outcome``, ``source`` and ``status`` (one of
:data:`STATUSES`, case-insensitive); ``note`` and any other column are kept.

File format: UTF-8 CSV with a header line.  A byte-order mark (Excel "CSV UTF-8") is accepted
silently.  A semicolon-separated file (Excel in locales with a decimal comma) is accepted when its
header line has semicolons and no commas; numbers must still use a decimal point, and a decimal
comma is reported with that hint.

Checks (each a :class:`DataError`): empty file or no data rows; missing or misspelt columns
(closest valid name suggested with :mod:`difflib`); empty required cells; non-numeric cells;
negative or fractional counts; events > total; total < 1; SD <= 0; n < 2; variance <= 0; r
outside [-1, 1]; CI bounds out of order; median summaries out of order; duplicate study x outcome
rows (across all tables); an outcome row whose study is not in the study table; a status outside
the allowed set; the same outcome in tables of different kinds.  The per-table JSON schemas in
``workflow/schemas/`` are applied after these checks as a second line of defence (their
messages are rewritten into the same form).

Validated against: ``tests/test_data.py`` (one small bad file per check).
"""
from __future__ import annotations

import csv
import difflib
import io
import math
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .convert import conversion_label, median_to_mean_sd

__all__ = ["DataError", "STATUSES", "KIND_COLUMNS", "COUNT_COLUMNS", "load_studies", "load_tables",
           "load_targets", "outcome_frame", "read_csv_table", "detect_table_kind", "SCHEMA_FILES"]

STATUSES = ("reported", "derived", "secondary", "inferred")
"""Evidence status of a number: printed / back-calculated exactly / printed by another source /
dependent on an assumption (see data/README.md)."""

BASE_COLUMNS = ("study", "outcome", "source", "status")
PROVENANCE_COLUMNS = ("note", "conversion", "timepoint", "quote", "arm")
SIDES = ("pre", "post")
MEDIAN_COLUMNS = tuple(f"{s}_{side}" for side in SIDES for s in ("median", "q1", "q3", "min", "max"))

KIND_COLUMNS = {
    "proportion": ("events", "total"),
    "binary": ("events_treat", "total_treat", "events_ctrl", "total_ctrl"),
    "continuous": ("mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl"),
    "prepost": ("n",),
    "generic": ("yi",),
}
"""Columns that every row of a table of each kind needs (besides :data:`BASE_COLUMNS`)."""

OPTIONAL = {
    "proportion": (),
    "binary": (),
    "continuous": (),
    "prepost": ("mean_pre", "sd_pre", "mean_post", "sd_post", "r") + MEDIAN_COLUMNS,
    "generic": ("vi", "sei", "ci_lb", "ci_ub", "n", "measure"),
}
COUNT_COLUMNS = ("events", "total", "events_treat", "total_treat", "events_ctrl", "total_ctrl")
SD_COLUMNS = ("sd_pre", "sd_post", "sd_treat", "sd_ctrl", "sei")
N_COLUMNS = ("n", "n_treat", "n_ctrl")
TEXT_COLUMNS = BASE_COLUMNS + PROVENANCE_COLUMNS + ("measure",)

STUDY_COLUMNS = ("study", "author", "year", "design", "disease", "dose_regimen", "regimen", "n",
                 "n_control", "country", "registration", "source", "note")
STUDY_NUMERIC = ("year", "n", "n_control")

SCHEMA_FILES = {"studies": "studies.schema.yaml", "proportion": "proportions.schema.yaml",
                "binary": "two_arm.schema.yaml", "prepost": "prepost.schema.yaml",
                "targets": "published_targets.schema.yaml"}
"""JSON schema (in ``workflow/schemas/``) applied to each table kind."""

TARGET_COLUMNS = ("target_id", "paper", "outcome", "subgroup", "model", "measure", "estimate",
                  "ci_lb", "ci_ub", "decimals", "assumption", "missing", "source")

_OUTCOME_RE = re.compile(r"^[A-Za-z0-9_]+$")


# --------------------------------------------------------------------------- errors
class DataError(ValueError):
    """A problem in a data file, located as the user sees it.

    Attributes ``path``, ``line`` (1 = header; None for a whole-file problem), ``column``,
    ``value`` and ``allowed`` hold the parts of the message.
    """

    def __init__(self, path, line=None, column=None, value=None, allowed: str = ""):
        self.path, self.line, self.column, self.value, self.allowed = path, line, column, value, allowed
        where = [str(path)]
        if line is not None:
            where.append(line if isinstance(line, str) else f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        msg = ", ".join(where) + ": "
        if value is not None:
            msg += f"value {_show(value)} is not allowed: "
        super().__init__(msg + allowed)


def _show(v) -> str:
    s = "" if v is None else str(v)
    return "'' (empty)" if s.strip() == "" else repr(s if len(s) <= 60 else s[:57] + "...")


def _suggest(name: str, candidates: Iterable[str], cutoff: float = 0.75) -> str:
    by_lower = {str(c).lower(): str(c) for c in candidates}
    close = difflib.get_close_matches(str(name).strip().lower(), list(by_lower), n=1, cutoff=cutoff)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


# --------------------------------------------------------------------------- reading
def read_csv_table(path) -> tuple[pd.DataFrame, list[int]]:
    """Read a CSV file as strings; return the frame and the editor line number of each row.

    Accepts a UTF-8 byte-order mark and a semicolon delimiter (see the module docstring).
    Raises DataError for a missing, empty or unreadable file, a header without data rows,
    empty or duplicated column names and rows with too many cells.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(path, allowed="file not found")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(path, allowed=f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the "
                                      "file as 'CSV UTF-8'") from None
    if not text.strip():
        raise DataError(path, allowed="the file is empty; expected a header line and one row per record")
    first = text.lstrip("\r\n").splitlines()[0]
    delim = ";" if (";" in first and "," not in first) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    records, lines, start = [], [], 1
    header = None
    for rec in reader:
        line, start = start, reader.line_num + 1
        if not any(c.strip() for c in rec):
            continue                                   # blank line
        if header is None:
            header = [c.strip() for c in rec]
            header_line = line
            continue
        records.append(rec)
        lines.append(line)
    if header is None:
        raise DataError(path, allowed="the file is empty; expected a header line")
    for i, name in enumerate(header):
        if not name:
            raise DataError(path, header_line, None, None,
                            f"column {i + 1} of the header has no name (an empty or stray "
                            f"'{delim}' in the header?)")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(path, header_line, dup[0], None, "the column name appears more than once")
    if not records:
        raise DataError(path, allowed="the file has a header but no data rows")
    width = len(header)
    for rec, line in zip(records, lines):
        if len(rec) > width and any(c.strip() for c in rec[width:]):
            extra = next(c for c in rec[width:] if c.strip())
            raise DataError(path, line, None, extra,
                            f"the row has {len(rec)} cells but the header has {width} columns "
                            f"(a '{delim}' inside a value must be quoted)")
    rows = [(rec + [""] * width)[:width] for rec in records]
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame = frame.apply(lambda c: c.str.strip())
    return frame, lines


# --------------------------------------------------------------------------- cell checks
class _Table:
    """A table being validated: frame of strings, editor line per row, location helpers."""

    def __init__(self, path, frame: pd.DataFrame, lines: Sequence, header_line="line 1"):
        self.path, self.frame, self.lines, self.header_line = path, frame, list(lines), header_line

    def fail(self, row_pos, column, value, allowed):
        raise DataError(self.path, self.lines[row_pos], column, value, allowed)

    def numbers(self, column, *, required: bool) -> np.ndarray:
        """Column as floats (NaN for empty cells); non-numeric cells and missing required ones fail."""
        s = self.frame[column].fillna("").astype(str).str.strip()
        empty = s.eq("") | s.str.upper().isin(["NA", "NAN", "NR"])
        num = pd.to_numeric(s.where(~empty, None), errors="coerce").astype(float)
        bad = ~empty & ~np.isfinite(num)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            hint = ("a number with a decimal point (this cell has a decimal comma)"
                    if re.fullmatch(r"-?\d+,\d+", s.iloc[i]) else "a number")
            self.fail(i, column, s.iloc[i], hint)
        if required and empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            self.fail(i, column, s.iloc[i], "a number is required here")
        return num.to_numpy()

    def first(self, mask) -> int | None:
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        return int(idx[0]) if idx.size else None


def _check_text(t: _Table, column, *, pattern=None, allowed_values=None, what=""):
    s = t.frame[column].fillna("").astype(str).str.strip()
    i = t.first(s.eq(""))
    if i is not None:
        t.fail(i, column, s.iloc[i], what or "a value is required here")
    if pattern is not None:
        i = t.first(~s.str.fullmatch(pattern))
        if i is not None:
            t.fail(i, column, s.iloc[i], what)
    if allowed_values is not None:
        low = s.str.lower()
        i = t.first(~low.isin(allowed_values))
        if i is not None:
            t.fail(i, column, s.iloc[i], f"one of {', '.join(allowed_values)} (case-insensitive)"
                   + _suggest(s.iloc[i], allowed_values, 0.6))
        t.frame[column] = low
    return s


def _check_columns(t: _Table, required: Sequence[str], known: Sequence[str]):
    cols = list(t.frame.columns)
    for c in cols:      # case differences: accept, rename to the canonical name
        if c not in known and c.lower() in known and c.lower() not in cols:
            t.frame = t.frame.rename(columns={c: c.lower()})
    cols = list(t.frame.columns)
    unknown = [c for c in cols if c not in known]
    for c in required:
        if c not in cols:
            guess = difflib.get_close_matches(c, unknown, n=1, cutoff=0.6)
            hint = f"; column {guess[0]!r} looks like a misspelling of it" if guess else ""
            raise DataError(t.path, t.header_line, c, None,
                            f"required column is missing (columns found: {', '.join(cols)}){hint}")
    for c in unknown:
        close = difflib.get_close_matches(c.lower(), known, n=1, cutoff=0.75)
        if close and close[0] not in cols:
            raise DataError(t.path, t.header_line, c, None,
                            f"unknown column; did you mean {close[0]!r}? (known columns: "
                            f"{', '.join(known)}; other unknown columns are kept as notes)")


def _all_known() -> tuple[str, ...]:
    out = list(BASE_COLUMNS + PROVENANCE_COLUMNS)
    for kind in KIND_COLUMNS:
        out += KIND_COLUMNS[kind] + OPTIONAL[kind]
    return tuple(dict.fromkeys(out))


def detect_table_kind(columns: Iterable[str], path="<table>", line="line 1") -> str:
    """Kind of an outcome table from its header (see the module docstring)."""
    cols = {str(c).strip().lower() for c in columns}
    if {"events_treat", "events_ctrl"} & cols or {"total_treat", "total_ctrl"} & cols:
        return "binary"
    if {"mean_treat", "mean_ctrl", "sd_treat", "sd_ctrl"} & cols:
        return "continuous"
    if any(c.endswith(("_pre", "_post")) for c in cols):
        return "prepost"
    if {"events", "total"} & cols:
        return "proportion"
    if "yi" in cols:
        return "generic"
    sets = "; ".join(f"{k}: {', '.join(v + OPTIONAL[k][:4])}" for k, v in KIND_COLUMNS.items())
    close = [c for c in cols if difflib.get_close_matches(c, _all_known(), n=1, cutoff=0.75)
             and c not in _all_known()]
    hint = (f" Column {close[0]!r} looks misspelt{_suggest(close[0], _all_known())}" if close else "")
    raise DataError(path, line, None, None,
                    "cannot tell which kind of outcome data this table holds from its columns "
                    f"({', '.join(sorted(cols))}). Expected study, outcome, source, status plus one of "
                    f"- {sets}.{hint}")


def _check_counts(t: _Table, ev_col, tot_col) -> tuple[np.ndarray, np.ndarray]:
    ev = t.numbers(ev_col, required=True)
    tot = t.numbers(tot_col, required=True)
    for col, x in ((ev_col, ev), (tot_col, tot)):
        i = t.first(x < 0)
        if i is not None:
            t.fail(i, col, t.frame[col].iloc[i], "counts must be whole numbers >= 0")
        i = t.first(x != np.round(x))
        if i is not None:
            t.fail(i, col, t.frame[col].iloc[i], "counts must be whole numbers")
    i = t.first(tot < 1)
    if i is not None:
        t.fail(i, tot_col, t.frame[tot_col].iloc[i], "the total must be at least 1")
    i = t.first(ev > tot)
    if i is not None:
        t.fail(i, ev_col, t.frame[ev_col].iloc[i], f"{ev_col} must not exceed {tot_col} "
                                                    f"({t.frame[tot_col].iloc[i]})")
    return ev, tot


def _check_positive(t: _Table, col, x, what):
    i = t.first(np.isfinite(x) & (x <= 0))
    if i is not None:
        t.fail(i, col, t.frame[col].iloc[i], what)


def _check_n(t: _Table, col, x):
    i = t.first(np.isfinite(x) & ((x < 2) | (x != np.round(x))))
    if i is not None:
        t.fail(i, col, t.frame[col].iloc[i], "a whole number >= 2 (a mean change or SD needs two patients)")


def _prepost_side(t: _Table, side: str, n: np.ndarray, out: dict) -> np.ndarray:
    """Means/SDs of one side; fill them from medians where missing.  Returns a 'converted' mask."""
    f = t.frame
    num = {c: (t.numbers(c, required=False) if c in f.columns else np.full(len(f), np.nan))
           for c in (f"mean_{side}", f"sd_{side}", f"median_{side}", f"q1_{side}", f"q3_{side}",
                     f"min_{side}", f"max_{side}")}
    mean, sd, med = num[f"mean_{side}"], num[f"sd_{side}"], num[f"median_{side}"]
    q1, q3, lo, hi = num[f"q1_{side}"], num[f"q3_{side}"], num[f"min_{side}"], num[f"max_{side}"]
    has_range = np.isfinite(lo) & np.isfinite(hi)
    has_iqr = np.isfinite(q1) & np.isfinite(q3)
    can_convert = np.isfinite(med) & (has_range | has_iqr)
    need = ~(np.isfinite(mean) & np.isfinite(sd))
    i = t.first(need & ~can_convert)
    if i is not None:
        col = f"mean_{side}" if not np.isfinite(mean[i]) else f"sd_{side}"
        val = f.at[f.index[i], col] if col in f.columns else ""
        t.fail(i, col, val, f"give mean_{side} and sd_{side}, or median_{side} with min_{side}/max_{side} "
                            f"and/or q1_{side}/q3_{side} (converted to a mean and SD)")
    _check_positive(t, f"sd_{side}", sd, "the SD must be > 0")
    order = [(f"min_{side}", lo), (f"q1_{side}", q1), (f"median_{side}", med), (f"q3_{side}", q3),
             (f"max_{side}", hi)]
    for a in range(5):
        for b in range(a + 1, 5):
            bad = np.isfinite(order[a][1]) & np.isfinite(order[b][1]) & (order[a][1] > order[b][1])
            i = t.first(bad)
            if i is not None:
                t.fail(i, order[b][0], f.at[f.index[i], order[b][0]],
                       f"must be >= {order[a][0]} ({f.at[f.index[i], order[a][0]]}): the summary "
                       "must satisfy min <= q1 <= median <= q3 <= max")
    conv = need & can_convert
    if conv.any():
        nn = np.where(conv & np.isfinite(n), n, 2.0)
        m_est, s_est = median_to_mean_sd(np.where(conv, med, np.nan), q1=q1, q3=q3,
                                         minimum=lo, maximum=hi, n=nn)
        label = conversion_label(q1=q1, q3=q3, minimum=lo, maximum=hi)
        i = t.first(conv & ~(s_est > 0))
        if i is not None:
            col = f"max_{side}" if has_range[i] else f"q3_{side}"
            t.fail(i, col, f.at[f.index[i], col], "the range/IQR must be > 0 to estimate an SD")
        mean = np.where(conv, m_est, mean)
        sd = np.where(conv, s_est, sd)
        out.setdefault("labels", {})[side] = np.where(conv, label, "")
    out[f"mean_{side}"], out[f"sd_{side}"] = mean, sd
    return conv


def _validate_kind(t: _Table, kind: str) -> pd.DataFrame:
    """Check the kind-specific columns; return the frame with numeric columns as floats."""
    f = t.frame
    numeric = {}
    if kind == "proportion":
        numeric["events"], numeric["total"] = _check_counts(t, "events", "total")
    elif kind == "binary":
        numeric["events_treat"], numeric["total_treat"] = _check_counts(t, "events_treat", "total_treat")
        numeric["events_ctrl"], numeric["total_ctrl"] = _check_counts(t, "events_ctrl", "total_ctrl")
    elif kind == "continuous":
        for c in KIND_COLUMNS["continuous"]:
            numeric[c] = t.numbers(c, required=True)
        for c in ("sd_treat", "sd_ctrl"):
            _check_positive(t, c, numeric[c], "the SD must be > 0")
        for c in ("n_treat", "n_ctrl"):
            _check_n(t, c, numeric[c])
    elif kind == "prepost":
        n = t.numbers("n", required=True)
        _check_n(t, "n", n)
        numeric["n"] = n
        out: dict = {}
        conv = _prepost_side(t, "pre", n, out) | _prepost_side(t, "post", n, out)
        for c in ("mean_pre", "sd_pre", "mean_post", "sd_post"):
            numeric[c] = out[c]
        for c in MEDIAN_COLUMNS:
            if c in f.columns:
                numeric[c] = t.numbers(c, required=False)
        if "r" in f.columns:
            r = t.numbers("r", required=False)
            i = t.first(np.isfinite(r) & ((r < -1) | (r > 1)))
            if i is not None:
                t.fail(i, "r", f["r"].iloc[i], "a correlation between -1 and 1")
            numeric["r"] = r
        if conv.any():
            labels = out.get("labels", {})
            lab = labels.get("pre", np.full(len(f), "")) if "pre" in labels else np.full(len(f), "")
            lab = np.where(lab == "", labels.get("post", np.full(len(f), "")), lab)
            old = f["conversion"].fillna("") if "conversion" in f.columns else pd.Series("", index=f.index)
            f["conversion"] = np.where(conv & (old == ""), lab, old)
            note = f["note"].fillna("") if "note" in f.columns else pd.Series("", index=f.index)
            f["note"] = np.where(conv & ~note.str.contains("converted"),
                                 (note + "; ").where(note != "", "") + "converted from median: "
                                 + pd.Series(lab, index=f.index), note)
    elif kind == "generic":
        yi = t.numbers("yi", required=True)
        numeric["yi"] = yi
        have = {c: t.numbers(c, required=False) for c in ("vi", "sei", "ci_lb", "ci_ub", "n")
                if c in f.columns}
        numeric.update(have)
        nan = np.full(len(f), np.nan)
        ok = (np.isfinite(have.get("vi", nan)) | np.isfinite(have.get("sei", nan))
              | (np.isfinite(have.get("ci_lb", nan)) & np.isfinite(have.get("ci_ub", nan))))
        i = t.first(~ok)
        if i is not None:
            t.fail(i, "vi", f["vi"].iloc[i] if "vi" in f.columns else "",
                   "give vi, sei or both ci_lb and ci_ub for a precomputed effect size")
        if "vi" in have:
            _check_positive(t, "vi", have["vi"], "the variance must be > 0")
        if "sei" in have:
            _check_positive(t, "sei", have["sei"], "the standard error must be > 0")
        if "ci_lb" in have and "ci_ub" in have:
            i = t.first(have["ci_lb"] >= have["ci_ub"])
            if i is not None:
                t.fail(i, "ci_ub", f["ci_ub"].iloc[i], f"must be greater than ci_lb ({f['ci_lb'].iloc[i]})")
        if "n" in have:
            _check_n(t, "n", have["n"])
    f = f.copy()
    for c, x in numeric.items():
        f[c] = x
    return f


# --------------------------------------------------------------------------- schemas
def _schema_dir() -> Path | None:
    d = Path(__file__).resolve().parent.parent / "workflow" / "schemas"
    return d if d.is_dir() else None


def _apply_schema(path, frame: pd.DataFrame, lines, key: str, schema_dir=None):
    """Validate records against the table's JSON schema; raise DataError on the first problem."""
    d = Path(schema_dir) if schema_dir else _schema_dir()
    name = SCHEMA_FILES.get(key)
    if d is None or name is None or not (d / name).exists():
        return
    import jsonschema
    import yaml

    schema = yaml.safe_load((d / name).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    for pos, rec in enumerate(frame.to_dict(orient="records")):
        rec = {k: _json_value(v) for k, v in rec.items()}
        rec = {k: v for k, v in rec.items() if v is not None}
        err = next(iter(sorted(validator.iter_errors(rec), key=lambda e: list(e.path))), None)
        if err is not None:
            col = err.path[0] if err.path else (re.findall(r"'([^']+)'", err.message) or [None])[0]
            raise DataError(path, lines[pos], col, rec.get(col) if col else None,
                            f"{err.message} (schema {name})")


def _json_value(v):
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, str) and v == "":
        return None
    return v


# --------------------------------------------------------------------------- public API
def load_studies(path, *, schema_dir=None) -> pd.DataFrame:
    """Read and validate the study table.

    Returns a DataFrame with one row per study (``study`` unique), ``year``, ``n`` and
    ``n_control`` as numbers (NaN where empty), text columns stripped.

    Raises
    ------
    DataError
        Naming file, line, column and value (see the module docstring).
    """
    frame, lines = read_csv_table(path)
    t = _Table(path, frame, lines)
    _check_columns(t, ("study",), STUDY_COLUMNS)
    s = _check_text(t, "study", what="a study key is required")
    dup = s.duplicated(keep="first")
    i = t.first(dup)
    if i is not None:
        j = int(np.flatnonzero((s == s.iloc[i]).to_numpy())[0])
        t.fail(i, "study", s.iloc[i], f"each study appears once; it is already on line {lines[j]}")
    out = t.frame.copy()
    for c in STUDY_NUMERIC:
        if c in out.columns:
            x = t.numbers(c, required=False)
            if c != "year":
                i = t.first(np.isfinite(x) & ((x < 1) | (x != np.round(x))))
                if i is not None:
                    t.fail(i, c, out[c].iloc[i], "a whole number of patients >= 1 (or empty if not reported)")
            out[c] = x
    out = out.replace({"": np.nan})
    _apply_schema(path, out, lines, "studies", schema_dir)
    return out.reset_index(drop=True)


def _check_column_sets(t: _Table, kind: str):
    """Header-level alternatives: generic needs vi, sei or a CI; pre/post needs means or medians."""
    cols = set(t.frame.columns)
    unknown = [c for c in cols if c not in _all_known()]
    if kind == "generic":
        sets = [("vi",), ("sei",), ("ci_lb", "ci_ub")]
    elif kind == "prepost":
        for side in SIDES:
            if not ({f"mean_{side}", f"sd_{side}"} <= cols or f"median_{side}" in cols):
                absent = f"sd_{side}" if f"mean_{side}" in cols else f"mean_{side}"
                _missing_set(t, f"mean_{side}, sd_{side} (or median_{side} with min/max or q1/q3)",
                             absent, unknown)
        return
    else:
        return
    if not any(set(s) <= cols for s in sets):
        _missing_set(t, " or ".join(", ".join(s) for s in sets), sets[0][0], unknown)


def _missing_set(t: _Table, what: str, column: str, unknown):
    guess = difflib.get_close_matches(column, unknown, n=1, cutoff=0.6)
    hint = f"; column {guess[0]!r} looks like a misspelling of it" if guess else ""
    raise DataError(t.path, t.header_line, column, None,
                    f"required column is missing: give {what} (columns found: "
                    f"{', '.join(t.frame.columns)}){hint}")


def _load_one(path, frame: pd.DataFrame, lines, header_line="line 1", schema_dir=None) -> pd.DataFrame:
    kind = detect_table_kind(frame.columns, path, header_line)
    t = _Table(path, frame, lines, header_line)
    known = tuple(dict.fromkeys(BASE_COLUMNS + PROVENANCE_COLUMNS + KIND_COLUMNS[kind] + OPTIONAL[kind]))
    _check_columns(t, BASE_COLUMNS + KIND_COLUMNS[kind], known)
    _check_column_sets(t, kind)
    _check_text(t, "study", what="a study key is required")
    _check_text(t, "outcome", pattern=_OUTCOME_RE,
                what="an outcome key of letters, digits and '_' (the key used in config.yaml outcomes)")
    _check_text(t, "source", what="a source (citation and table/page or URL): a number whose origin is "
                                  "not written down does not enter the data")
    _check_text(t, "status", allowed_values=STATUSES)
    out = _validate_kind(t, kind)
    out = out.replace({"": np.nan})
    _apply_schema(path, out, lines, kind, schema_dir)
    out.insert(0, "kind", kind)
    out["table"] = str(path)
    out["line"] = list(lines)
    return out


def _extra_frames(extra_rows, label="config.yaml extra_studies"):
    """Inline rows (list of mappings) grouped by kind, each with 'item N' locations."""
    if not extra_rows:
        return []
    groups: dict[tuple, list] = {}
    for i, row in enumerate(extra_rows, start=1):
        if not isinstance(row, Mapping):
            raise DataError(label, f"item {i}", None, row, "each extra study is a mapping of column: value")
        rec = {str(k).strip(): ("" if v is None else str(v)) for k, v in row.items()}
        groups.setdefault(tuple(sorted(rec)), []).append((i, rec))
    frames = []
    for cols, items in groups.items():
        frame = pd.DataFrame([r for _, r in items], columns=list(cols), dtype=object)
        frames.append((label, frame, [f"item {i}" for i, _ in items]))
    return frames


def load_tables(paths, extra_rows=None, *, studies: pd.DataFrame | None = None, extra=None,
                schema_dir=None) -> pd.DataFrame:
    """Read, validate and stack the outcome tables (plus inline rows) into one long DataFrame.

    Parameters
    ----------
    paths : str or sequence of str
        CSV files (``tables`` in config.yaml).
    extra_rows : list of mappings, optional
        Inline outcome rows (``extra_studies`` in config.yaml), same columns as the tables; located
        in messages as ``config.yaml extra_studies, item N``.  ``extra`` is an alias.
    studies : DataFrame, optional
        The study table; when given, every outcome row's study must be in it.
    schema_dir : path, optional
        Folder of the table JSON schemas (default: ``workflow/schemas`` next to the package).

    Returns
    -------
    DataFrame
        One row per study x outcome with a ``kind`` column (proportion, binary, continuous,
        prepost, generic), ``table`` and ``line`` (where the row came from), numeric columns as
        floats, ``status`` lower-case; pre/post means/SDs converted from medians where needed
        (``conversion`` names the method, ``note`` says "converted").

    Raises
    ------
    DataError
        See the module docstring for the checks.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    extra_rows = extra_rows if extra_rows is not None else extra
    parts = []
    for path in paths:
        frame, lines = read_csv_table(path)
        parts.append(_load_one(path, frame, lines, schema_dir=schema_dir))
    for label, frame, lines in _extra_frames(extra_rows):
        parts.append(_load_one(label, frame, lines, header_line=lines[0], schema_dir=schema_dir))
    if not parts:
        raise DataError("config.yaml tables", allowed="no outcome tables given")
    rows = pd.concat(parts, ignore_index=True, sort=False)
    _check_across(rows, studies)
    return rows


def _check_across(rows: pd.DataFrame, studies: pd.DataFrame | None):
    key = rows["study"].astype(str) + "\x00" + rows["outcome"].astype(str)
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        j = int(np.flatnonzero((key == key.iloc[i]).to_numpy())[0])
        first = f"{rows['table'].iloc[j]}, {_where(rows['line'].iloc[j])}"
        raise DataError(rows["table"].iloc[i], rows["line"].iloc[i], "study", rows["study"].iloc[i],
                        f"study {rows['study'].iloc[i]!r} already has a row for outcome "
                        f"{rows['outcome'].iloc[i]!r} ({first}); one row per study x outcome "
                        "(an overlapping cohort enters once)")
    kinds = rows.groupby("outcome")["kind"].nunique()
    mixed = kinds[kinds > 1]
    if len(mixed):
        o = mixed.index[0]
        sub = rows[rows["outcome"] == o].drop_duplicates("kind")
        where = "; ".join(f"{k} in {tb}, {_where(ln)}" for k, tb, ln in
                          zip(sub["kind"], sub["table"], sub["line"]))
        raise DataError(sub["table"].iloc[-1], sub["line"].iloc[-1], "outcome", o,
                        f"an outcome holds one kind of data, but {o!r} has {where}; give the "
                        "outcomes different keys (e.g. x and x_rr)")
    if studies is not None:
        known = set(studies["study"].astype(str))
        missing = ~rows["study"].astype(str).isin(known)
        if missing.any():
            i = int(np.flatnonzero(missing.to_numpy())[0])
            s = rows["study"].iloc[i]
            raise DataError(rows["table"].iloc[i], rows["line"].iloc[i], "study", s,
                            "the study is not in the study table; add a row for it there"
                            + _suggest(s, sorted(known), 0.6).replace("; did you mean", "; or did you mean"))


def _where(line) -> str:
    return line if isinstance(line, str) else f"line {line}"


def outcome_frame(tables: pd.DataFrame, outcome: str, kind: str | None = None) -> pd.DataFrame:
    """The rows of one outcome with the columns that have values (input for ``effects.escalc``).

    Parameters
    ----------
    tables : DataFrame
        Result of :func:`load_tables`.
    outcome : str
        Outcome key.
    kind : str, optional
        Expected kind; a DataError names the outcome's actual kind when it differs.

    Raises
    ------
    DataError
        No rows for the outcome, or rows of another kind.
    """
    sel = tables[tables["outcome"].astype(str) == outcome]
    if sel.empty:
        keys = sorted(tables["outcome"].astype(str).unique())
        raise DataError("outcome tables", None, "outcome", outcome,
                        f"no rows have this outcome key{_suggest(outcome, keys, 0.6)} "
                        f"(keys found: {', '.join(keys)})")
    kinds = sorted(sel["kind"].unique())
    if kind is not None and kinds != [kind]:
        raise DataError(sel["table"].iloc[0], sel["line"].iloc[0], "outcome", outcome,
                        f"expected {kind} data, but the rows are {', '.join(kinds)}")
    return sel.dropna(axis=1, how="all").reset_index(drop=True)


def load_targets(path, *, schema_dir=None) -> pd.DataFrame:
    """Read and validate the published-targets table (estimate, CI, decimals numeric)."""
    frame, lines = read_csv_table(path)
    t = _Table(path, frame, lines)
    _check_columns(t, ("target_id", "outcome", "estimate"), TARGET_COLUMNS + (
        "published_measure", "p", "i2", "k", "n", "as_printed", "note"))
    _check_text(t, "target_id", what="a target id is required")
    out = t.frame.copy()
    for c in ("estimate", "ci_lb", "ci_ub", "decimals"):
        if c in out.columns:
            out[c] = t.numbers(c, required=False)
    if "decimals" in out.columns:
        d = out["decimals"].to_numpy()
        i = t.first(np.isfinite(d) & ((d < 0) | (d != np.round(d))))
        if i is not None:
            t.fail(i, "decimals", frame["decimals"].iloc[i], "a whole number of printed decimals >= 0")
    out = out.replace({"": np.nan})
    _apply_schema(path, out, lines, "targets", schema_dir)
    return out
