"""Read and validate the study table, the outcome tables and the published targets.

One reader serves the workflow (while Snakemake parses it, before any job) and the command line.
It imports only the standard library, so a run with nothing to do stays fast; rows come back as
plain records (``dict`` per row: numbers as ``float``, text as ``str``, empty cells as ``None``).

Every problem is a :class:`DataError` whose message names the file, the line as a spreadsheet or
editor shows it (the header is line 1), the column, the value and what is allowed, e.g.::

    data/raw/proportions.csv, line 7, column 'events': value '31' is not allowed: events must
    not exceed total (29)

Tables
------
Study table (:func:`load_studies`): ``study`` (unique key) plus descriptive columns
(:data:`STUDY_COLUMNS`).

Outcome tables (:func:`load_tables`), one row per study x outcome; the *kind* of a table is read
from its columns (:data:`KIND_COLUMNS`):

============= =============================================================================
proportion    ``events, total``
binary        ``events_treat, total_treat, events_ctrl, total_ctrl``
continuous    ``mean_treat, sd_treat, n_treat, mean_ctrl, sd_ctrl, n_ctrl``
prepost       ``n`` and, for each of ``pre``/``post``, ``mean_*, sd_*`` or ``median_*`` with
              ``min_*, max_*`` and/or ``q1_*, q3_*`` (converted to a mean and SD when the
              effect sizes are computed, :mod:`metapool.convert`); optional ``r``
generic       ``yi`` with ``vi``, ``sei`` or ``ci_lb, ci_ub``
============= =============================================================================

Every outcome row also needs ``study``, ``outcome``, ``source`` and ``status`` (one of
:data:`STATUSES`, case-insensitive); ``note``, ``quote``, ``timepoint`` and ``conversion`` are
kept as provenance.

File format: UTF-8 CSV with a header line.  A byte-order mark (Excel "CSV UTF-8") is accepted.  A
semicolon-separated file (Excel in locales with a decimal comma) is accepted when its header line
has semicolons and no commas; numbers must still use a decimal point, and a decimal comma is
reported with that hint.  Column names are matched case-insensitively (``Events`` is ``events``);
two columns that differ only by case are an error.

Checks (each a :class:`DataError`): file missing, not a file, larger than :data:`MAX_FILE_BYTES`,
not UTF-8, empty, header only; empty, duplicated or case-duplicated column names; rows with too
many or too few cells; cells longer than :data:`MAX_CELL_CHARS` or holding control characters (NUL);
missing or misspelt columns (closest name suggested); empty required cells; non-numeric or
non-finite numbers; negative, fractional or implausibly large counts (> :data:`MAX_COUNT`); events >
total; total < 1; SD <= 0; n < 2; variance <= 0; r outside [-1, 1]; CI bounds out of order; median
summaries out of order or incomplete; duplicate study x outcome rows (across all tables); an
outcome row whose study is not in the study table; a status outside the allowed set; the same
outcome in tables of different kinds; target rows with a bad id, number, measure, model or status.

Validated against: ``tests/test_data.py`` (one small bad file per check) and
``tests/test_fuzz_data.py`` (generated tables: every rejection is a located DataError).
"""
from __future__ import annotations

import csv
import difflib
import io
import math
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .registry import KINDS, MEASURES, METHODS, STATUSES

__all__ = ["DataError", "STATUSES", "KIND_COLUMNS", "COUNT_COLUMNS", "STUDY_COLUMNS", "TARGET_COLUMNS",
           "load_studies", "load_tables", "load_table", "load_targets", "read_csv_table",
           "detect_table_kind", "outcome_rows", "MAX_FILE_BYTES", "MAX_CELL_CHARS", "MAX_COUNT",
           "ID_PATTERN"]

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
"""Columns that every row of a table of each kind needs (besides the base columns)."""

OPTIONAL = {
    "proportion": (),
    "binary": (),
    "continuous": (),
    "prepost": ("mean_pre", "sd_pre", "mean_post", "sd_post", "r") + MEDIAN_COLUMNS,
    "generic": ("vi", "sei", "ci_lb", "ci_ub", "n", "measure"),
}
COUNT_COLUMNS = ("events", "total", "events_treat", "total_treat", "events_ctrl", "total_ctrl")
N_COLUMNS = ("n", "n_treat", "n_ctrl")
NUMERIC_COLUMNS = tuple(dict.fromkeys(
    c for k in KINDS for c in KIND_COLUMNS[k] + OPTIONAL[k] if c != "measure"))

STUDY_COLUMNS = ("study", "label", "author", "year", "design", "disease", "dose_regimen", "regimen", "n",
                 "n_control", "country", "registration", "source", "note")
STUDY_NUMERIC = ("year", "n", "n_control")

TARGET_COLUMNS = ("target_id", "paper", "outcome", "subgroup", "model", "measure", "published_measure",
                  "estimate", "ci_lb", "ci_ub", "decimals", "p", "i2", "k", "n", "statuses",
                  "assumption", "missing", "as_printed", "source", "note", "duplicate_of")
TARGET_NUMERIC = ("estimate", "ci_lb", "ci_ub", "decimals")

MAX_FILE_BYTES = 20 * 1024 * 1024
"""Largest data file read (a bigger one is refused at once, before it is read)."""
MAX_CELL_CHARS = 20_000
"""Longest cell (a quote or note); a longer one is refused (it would bloat every output)."""
MAX_COUNT = 1e9
"""Largest count or sample size accepted (a billion patients is not a trial; 1e308 would overflow)."""
MAX_ABS = 1e12
"""Largest absolute value of a mean, SD, median or effect size accepted."""
ID_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")
"""Outcome keys and target ids become file names: letters, digits, '_' (matched in full)."""
_MISSING = {"", "NA", "NAN", "NR", "N/A"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
    if s.strip() == "":
        return "'' (empty)"
    return repr(s if len(s) <= 60 else s[:57] + "...")      # repr shows control characters as \x00


def _suggest(name: str, candidates: Iterable[str], cutoff: float = 0.75) -> str:
    by_lower = {str(c).lower(): str(c) for c in candidates}
    close = difflib.get_close_matches(str(name).strip().lower(), list(by_lower), n=1, cutoff=cutoff)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def _where(line) -> str:
    return line if isinstance(line, str) else f"line {line}"


# --------------------------------------------------------------------------- reading
class CsvTable:
    """A CSV file read as text: header, cells (stripped strings) and the editor line of each row."""

    def __init__(self, path, header: list, rows: list, lines: list, header_line="line 1"):
        self.path, self.header, self.rows, self.lines = str(path), header, rows, lines
        self.header_line = header_line

    def fail(self, i, column, value, allowed):
        raise DataError(self.path, self.lines[i], column, value, allowed)

    def col(self, name) -> list:
        j = self.header.index(name)
        return [r[j] for r in self.rows]

    def has(self, name) -> bool:
        return name in self.header

    def cell(self, i, name) -> str:
        return self.rows[i][self.header.index(name)] if name in self.header else ""


def read_csv_table(path) -> CsvTable:
    """Read a CSV file as stripped strings with the editor line number of each row.

    Accepts a UTF-8 byte-order mark and a semicolon delimiter (see the module docstring).
    Raises DataError for a missing, oversized, empty or unreadable file, a header without data
    rows, empty, duplicated or case-duplicated column names, rows with too many or too few cells,
    and cells that are too long or hold control characters.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(path, allowed="file not found")
    if not p.is_file():
        raise DataError(path, allowed="a file, not a directory")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(path, allowed=f"the file has {size:,} bytes; data files up to "
                                      f"{MAX_FILE_BYTES // 2**20} MiB are read")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(path, allowed=f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the "
                                      "file as 'CSV UTF-8'") from None
    return parse_csv_text(path, text)


def parse_csv_text(path, text: str) -> CsvTable:
    """The parsing half of :func:`read_csv_table` (``text`` already decoded)."""
    if not text.strip():
        raise DataError(path, allowed="the file is empty; expected a header line and one row per record")
    first = text.lstrip("\r\n").splitlines()[0]
    delim = ";" if (";" in first and "," not in first) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    records, lines, start = [], [], 1
    header, header_line = None, 1
    try:
        for rec in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in rec):
                continue                                   # blank line
            if header is None:
                header, header_line = [c.strip() for c in rec], line
                continue
            records.append(rec)
            lines.append(line)
    except csv.Error as exc:
        raise DataError(path, start, None, None, f"not readable as CSV ({exc})") from None
    if header is None:
        raise DataError(path, allowed="the file is empty; expected a header line")
    for i, name in enumerate(header):
        if not name:
            raise DataError(path, header_line, None, None,
                            f"column {i + 1} of the header has no name (an empty or stray "
                            f"'{delim}' in the header?)")
        bad = _cell_problem(name)
        if bad:
            raise DataError(path, header_line, None, name, bad)
    lower = [h.lower() for h in header]
    for i, name in enumerate(lower):
        if lower.index(name) != i:
            first_name = header[lower.index(name)]
            if first_name == header[i]:
                raise DataError(path, header_line, header[i], None, "the column name appears more than once")
            raise DataError(path, header_line, header[i], None,
                            f"the column names {first_name!r} and {header[i]!r} differ only by case; "
                            "column names are case-insensitive, so keep one of them")
    if not records:
        raise DataError(path, allowed="the file has a header but no data rows")
    width = len(header)
    rows = []
    for rec, line in zip(records, lines):
        if len(rec) > width and any(c.strip() for c in rec[width:]):
            extra = next(c for c in rec[width:] if c.strip())
            raise DataError(path, line, None, None,
                            f"the row has {len(rec)} cells but the header has {width} columns, so it "
                            f"is too long (the surplus starts with {_show(extra)}; a '{delim}' inside "
                            f"a value must be quoted)")
        if len(rec) < width:
            raise DataError(path, line, header[len(rec)], None,
                            f"the row has {len(rec)} cells but the header has {width} columns, so it "
                            f"is too short: column {header[len(rec)]!r} and the ones after it are "
                            f"missing (end the row with '{delim}' for each empty cell)")
        cells = [c.strip() for c in rec[:width]]
        for name, c in zip(header, cells):
            bad = _cell_problem(c)
            if bad:
                raise DataError(path, line, name, c, bad)
        rows.append(cells)
    return CsvTable(path, header, rows, lines, header_line)


def _cell_problem(text: str) -> str | None:
    if len(text) > MAX_CELL_CHARS:
        return f"a cell of at most {MAX_CELL_CHARS:,} characters (this one has {len(text):,})"
    m = _CONTROL.search(text)
    if m:
        return (f"text without control characters (found \\x{ord(m.group()):02x} at position "
                f"{m.start() + 1}; a NUL byte or similar usually means the file is damaged)")
    return None


# --------------------------------------------------------------------------- cells
def _number(t: CsvTable, i: int, column: str, *, required: bool) -> float | None:
    """The cell as a finite float (None when empty/NA/NR); non-numbers and non-finite values fail."""
    s = t.cell(i, column)
    if s.upper() in _MISSING:
        if required:
            t.fail(i, column, s, "a number is required here")
        return None
    try:
        x = float(s)
    except ValueError:
        hint = ("a number with a decimal point (this cell has a decimal comma)"
                if re.fullmatch(r"-?\d+,\d+", s) else "a number")
        t.fail(i, column, s, hint)
    if not math.isfinite(x):
        t.fail(i, column, s, "a finite number")
    if abs(x) > MAX_ABS:
        t.fail(i, column, s, f"a number between -{MAX_ABS:g} and {MAX_ABS:g}")
    return x


def _count(t, i, column, *, required=True, minimum=0.0, what="counts must be whole numbers >= 0"):
    x = _number(t, i, column, required=required)
    if x is None:
        return None
    if x < minimum or x != round(x):
        t.fail(i, column, t.cell(i, column), what)
    if x > MAX_COUNT:
        t.fail(i, column, t.cell(i, column), f"a count up to {MAX_COUNT:,.0f}")
    return x


def _text(t: CsvTable, i: int, column: str, *, what="a value is required here") -> str:
    s = t.cell(i, column)
    if not s:
        t.fail(i, column, s, what)
    return s


def _check_columns(t: CsvTable, required: Sequence[str], known: Sequence[str]):
    """Canonical (lower-case) names for known columns; missing or misspelt columns fail."""
    t.header = [h.lower() if h.lower() in known else h for h in t.header]
    cols = list(t.header)
    unknown = [c for c in cols if c not in known]
    for c in required:
        if c not in cols:
            guess = difflib.get_close_matches(c, [u.lower() for u in unknown], n=1, cutoff=0.6)
            hint = ""
            if guess:
                orig = next(u for u in unknown if u.lower() == guess[0])
                hint = f"; column {orig!r} looks like a misspelling of it"
            raise DataError(t.path, t.header_line, c, None,
                            f"required column is missing (columns found: {', '.join(cols)}){hint}")
    for c in unknown:
        close = difflib.get_close_matches(c.lower(), known, n=1, cutoff=0.75)
        if close and close[0] not in cols:
            raise DataError(t.path, t.header_line, c, None,
                            f"unknown column; did you mean {close[0]!r}? (known columns: "
                            f"{', '.join(known)}; other unknown columns are kept as notes)")


def _all_known() -> tuple:
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
    known = _all_known()
    close = [c for c in sorted(cols) if c not in known and difflib.get_close_matches(c, known, n=1, cutoff=0.75)]
    hint = f" Column {close[0]!r} looks misspelt{_suggest(close[0], known)}" if close else ""
    raise DataError(path, line, None, None,
                    "cannot tell which kind of outcome data this table holds from its columns "
                    f"({', '.join(sorted(cols))}). Expected study, outcome, source, status plus one of "
                    f"- {sets}.{hint}")


# --------------------------------------------------------------------------- per kind
def _counts(t, i, ev_col, tot_col, rec):
    ev = _count(t, i, ev_col)
    tot = _count(t, i, tot_col)
    if tot < 1:
        t.fail(i, tot_col, t.cell(i, tot_col), "the total must be at least 1")
    if ev > tot:
        t.fail(i, ev_col, t.cell(i, ev_col), f"{ev_col} must not exceed {tot_col} ({t.cell(i, tot_col)})")
    rec[ev_col], rec[tot_col] = ev, tot


def _positive(t, i, column, x, what="the SD must be > 0"):
    if x is not None and x <= 0:
        t.fail(i, column, t.cell(i, column), what)


def _n(t, i, column, *, required):
    return _count(t, i, column, required=required, minimum=2,
                  what="a whole number >= 2 (a mean change or SD needs two patients)")


def _prepost_side(t: CsvTable, i: int, side: str, rec: dict):
    """Mean/SD of one side, or a median summary that the effect-size step converts."""
    names = {s: f"{s}_{side}" for s in ("mean", "sd", "median", "q1", "q3", "min", "max")}
    v = {s: _number(t, i, c, required=False) if t.has(c) else None for s, c in names.items()}
    has_ms = v["mean"] is not None and v["sd"] is not None
    has_range = v["min"] is not None and v["max"] is not None
    has_iqr = v["q1"] is not None and v["q3"] is not None
    can_convert = v["median"] is not None and (has_range or has_iqr)
    if not has_ms and not can_convert:
        col = names["mean"] if v["mean"] is None else names["sd"]
        t.fail(i, col, t.cell(i, col), f"give mean_{side} and sd_{side}, or median_{side} with "
                                       f"min_{side}/max_{side} and/or q1_{side}/q3_{side} (converted to "
                                       f"a mean and SD)")
    for s in ("min", "max", "q1", "q3"):     # half of a pair is a typo, not a summary
        other = {"min": "max", "max": "min", "q1": "q3", "q3": "q1"}[s]
        if v[s] is not None and v[other] is None and not has_ms:
            t.fail(i, names[other], t.cell(i, names[other]),
                   f"{names[s]} is given, so {names[other]} is needed too")
    _positive(t, i, names["sd"], v["sd"])
    order = [s for s in ("min", "q1", "median", "q3", "max") if v[s] is not None]
    for a in range(len(order)):
        for b in range(a + 1, len(order)):
            if v[order[a]] > v[order[b]]:
                t.fail(i, names[order[b]], t.cell(i, names[order[b]]),
                       f"must be >= {names[order[a]]} ({t.cell(i, names[order[a]])}): the summary must "
                       "satisfy min <= q1 <= median <= q3 <= max")
    if not has_ms:
        spread = (v["max"] - v["min"]) if has_range else (v["q3"] - v["q1"])
        if spread <= 0:
            col = names["max"] if has_range else names["q3"]
            t.fail(i, col, t.cell(i, col), "the range/IQR must be > 0 to estimate an SD")
    for s, c in names.items():
        if v[s] is not None:
            rec[c] = v[s]


def _validate_row(t: CsvTable, i: int, kind: str, rec: dict):
    if kind == "proportion":
        _counts(t, i, "events", "total", rec)
    elif kind == "binary":
        _counts(t, i, "events_treat", "total_treat", rec)
        _counts(t, i, "events_ctrl", "total_ctrl", rec)
    elif kind == "continuous":
        for c in ("mean_treat", "mean_ctrl"):
            rec[c] = _number(t, i, c, required=True)
        for c in ("sd_treat", "sd_ctrl"):
            rec[c] = _number(t, i, c, required=True)
            _positive(t, i, c, rec[c])
        for c in ("n_treat", "n_ctrl"):
            rec[c] = _n(t, i, c, required=True)
    elif kind == "prepost":
        rec["n"] = _n(t, i, "n", required=True)
        for side in SIDES:
            _prepost_side(t, i, side, rec)
        if t.has("r"):
            r = _number(t, i, "r", required=False)
            if r is not None and not -1 <= r <= 1:
                t.fail(i, "r", t.cell(i, "r"), "a correlation between -1 and 1")
            rec["r"] = r
    else:
        rec["yi"] = _number(t, i, "yi", required=True)
        have = {c: _number(t, i, c, required=False) for c in ("vi", "sei", "ci_lb", "ci_ub") if t.has(c)}
        if not (have.get("vi") is not None or have.get("sei") is not None
                or (have.get("ci_lb") is not None and have.get("ci_ub") is not None)):
            t.fail(i, "vi", t.cell(i, "vi"), "give vi, sei or both ci_lb and ci_ub for a precomputed "
                                             "effect size")
        _positive(t, i, "vi", have.get("vi"), "the variance must be > 0")
        _positive(t, i, "sei", have.get("sei"), "the standard error must be > 0")
        if have.get("ci_lb") is not None and have.get("ci_ub") is not None and have["ci_lb"] >= have["ci_ub"]:
            t.fail(i, "ci_ub", t.cell(i, "ci_ub"), f"must be greater than ci_lb ({t.cell(i, 'ci_lb')})")
        if t.has("n"):
            have["n"] = _n(t, i, "n", required=False)
        if t.has("measure") and t.cell(i, "measure"):
            m = t.cell(i, "measure").upper()
            if m not in MEASURES:
                t.fail(i, "measure", t.cell(i, "measure"), "one of " + ", ".join(MEASURES)
                       + _suggest(m, MEASURES, 0.6))
            rec["measure"] = m
        rec.update({k: x for k, x in have.items() if x is not None})


def _check_column_sets(t: CsvTable, kind: str):
    """Header-level alternatives: generic needs vi, sei or a CI; pre/post needs means or medians."""
    cols = set(t.header)
    unknown = [c for c in t.header if c not in _all_known()]
    if kind == "generic":
        sets = [("vi",), ("sei",), ("ci_lb", "ci_ub")]
        if not any(set(s) <= cols for s in sets):
            _missing_set(t, " or ".join(", ".join(s) for s in sets), "vi", unknown)
    elif kind == "prepost":
        for side in SIDES:
            if not ({f"mean_{side}", f"sd_{side}"} <= cols or f"median_{side}" in cols):
                absent = f"sd_{side}" if f"mean_{side}" in cols else f"mean_{side}"
                _missing_set(t, f"mean_{side}, sd_{side} (or median_{side} with min/max or q1/q3)",
                             absent, unknown)


def _missing_set(t: CsvTable, what: str, column: str, unknown):
    guess = difflib.get_close_matches(column, unknown, n=1, cutoff=0.6)
    hint = f"; column {guess[0]!r} looks like a misspelling of it" if guess else ""
    raise DataError(t.path, t.header_line, column, None,
                    f"required column is missing: give {what} (columns found: "
                    f"{', '.join(t.header)}){hint}")


def load_table(t: CsvTable) -> list:
    """Validate one outcome table; return its rows as records (see :func:`load_tables`)."""
    kind = detect_table_kind(t.header, t.path, _where(t.header_line))
    known = tuple(dict.fromkeys(BASE_COLUMNS + PROVENANCE_COLUMNS + KIND_COLUMNS[kind] + OPTIONAL[kind]))
    _check_columns(t, BASE_COLUMNS + KIND_COLUMNS[kind], known)
    _check_column_sets(t, kind)
    out = []
    for i in range(len(t.rows)):
        rec = {c: (v or None) for c, v in zip(t.header, t.rows[i])}
        rec["study"] = _text(t, i, "study", what="a study key is required")
        key = _text(t, i, "outcome", what="an outcome key of letters, digits and '_' (the key used in "
                                          "config.yaml outcomes)")
        if not ID_PATTERN.fullmatch(key):
            t.fail(i, "outcome", key, "an outcome key of 1 to 64 letters, digits and '_' (the key used "
                                      "in config.yaml outcomes; it becomes a file name)")
        _text(t, i, "source", what="a source (citation and table/page or URL): a number whose origin "
                                   "is not written down does not enter the data")
        status = t.cell(i, "status").lower()
        if status not in STATUSES:
            t.fail(i, "status", t.cell(i, "status"), f"one of {', '.join(STATUSES)} (case-insensitive)"
                   + _suggest(status, STATUSES, 0.6))
        rec["status"] = status
        _validate_row(t, i, kind, rec)
        for c in NUMERIC_COLUMNS:        # numeric columns are numbers (or None), never text
            if c in rec and isinstance(rec[c], str):
                rec[c] = _number(t, i, c, required=False)
        rec.update(kind=kind, table=t.path, line=t.lines[i])
        out.append(rec)
    return out


def _extra_tables(extra_rows, label="config.yaml extra_studies") -> list:
    """Inline rows (list of mappings) grouped by their columns, each with 'item N' locations."""
    if not extra_rows:
        return []
    groups: dict = {}
    for i, row in enumerate(extra_rows, start=1):
        if not isinstance(row, Mapping):
            raise DataError(label, f"item {i}", None, row, "each extra study is a mapping of column: value")
        rec = {}
        for k, v in row.items():
            if isinstance(v, (dict, list)):
                raise DataError(label, f"item {i}", str(k), v, "a single value (number or text)")
            if isinstance(v, float) and not math.isfinite(v):
                raise DataError(label, f"item {i}", str(k), v, "a finite number")
            rec[str(k).strip()] = "" if v is None else str(v)
        groups.setdefault(tuple(rec), []).append((i, rec))
    tables = []
    for cols, items in groups.items():
        rows = [[r[c].strip() for c in cols] for _, r in items]
        lines = [f"item {i}" for i, _ in items]
        for (i, r), cells in zip(items, rows):
            for c, v in zip(cols, cells):
                bad = _cell_problem(v)
                if bad:
                    raise DataError(label, f"item {i}", c, v, bad)
        tables.append(CsvTable(label, list(cols), rows, lines, header_line=lines[0]))
    return tables


def load_tables(paths, extra_rows=None, *, studies: Sequence[Mapping] | None = None, extra=None) -> list:
    """Read, validate and stack the outcome tables (plus inline rows) into one list of records.

    Parameters
    ----------
    paths : str or sequence of str
        CSV files (``tables`` in config.yaml).
    extra_rows : list of mappings, optional
        Inline outcome rows (``extra_studies`` in config.yaml), same columns as the tables; located
        in messages as ``config.yaml extra_studies, item N``.  ``extra`` is an alias.
    studies : sequence of records, optional
        The study table (:func:`load_studies`); when given, every outcome row's study must be in it.

    Returns
    -------
    list of dict
        One record per study x outcome with the row's columns (numbers as float, text as str,
        empty as None), ``status`` lower-case, plus ``kind`` (proportion, binary, continuous,
        prepost, generic), ``table`` and ``line`` (where the row came from).

    Raises
    ------
    DataError
        See the module docstring for the checks.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    extra_rows = extra_rows if extra_rows is not None else extra
    rows = []
    for path in paths:
        rows += load_table(read_csv_table(path))
    for t in _extra_tables(extra_rows):
        rows += load_table(t)
    if not rows:
        raise DataError("config.yaml tables", allowed="no outcome tables given")
    _check_across(rows, studies)
    return rows


def _check_across(rows: list, studies):
    first: dict = {}
    kinds: dict = {}
    for r in rows:
        key = (r["study"], r["outcome"])
        if key in first:
            j = first[key]
            raise DataError(r["table"], r["line"], "study", r["study"],
                            f"study {r['study']!r} already has a row for outcome {r['outcome']!r} "
                            f"({j['table']}, {_where(j['line'])}); one row per study x outcome "
                            "(an overlapping cohort enters once)")
        first[key] = r
        seen = kinds.setdefault(r["outcome"], r)
        if seen["kind"] != r["kind"]:
            raise DataError(r["table"], r["line"], "outcome", r["outcome"],
                            f"an outcome holds one kind of data, but {r['outcome']!r} has {seen['kind']} "
                            f"in {seen['table']}, {_where(seen['line'])} and {r['kind']} here; give the "
                            "outcomes different keys (e.g. x and x_rr)")
    if studies is not None:
        known = {s["study"] for s in studies}
        for r in rows:
            if r["study"] not in known:
                raise DataError(r["table"], r["line"], "study", r["study"],
                                "the study is not in the study table; add a row for it there"
                                + _suggest(r["study"], sorted(known), 0.6).replace(
                                    "; did you mean", "; or did you mean"))


def outcome_rows(rows: Sequence[Mapping], outcome: str) -> list:
    """The records of one outcome (input for :func:`metapool.effects.escalc`)."""
    return [r for r in rows if r["outcome"] == outcome]


# --------------------------------------------------------------------------- study table
def load_studies(path) -> list:
    """Read and validate the study table.

    Returns one record per study (``study`` unique), ``year``, ``n`` and ``n_control`` as
    numbers (None where empty).

    Raises
    ------
    DataError
        Naming file, line, column and value (see the module docstring).
    """
    t = read_csv_table(path)
    _check_columns(t, ("study",), STUDY_COLUMNS)
    out, seen, folded = [], {}, {}
    for i in range(len(t.rows)):
        s = _text(t, i, "study", what="a study key is required")
        if s in seen:
            t.fail(i, "study", s, f"each study appears once; it is already on line {seen[s]}")
        if s.casefold() in folded:        # 'He2020' and 'he2020': one study typed twice, or a typo
            other, line = folded[s.casefold()]
            t.fail(i, "study", s, f"a key that differs from {other!r} (line {line}) in more than "
                                  "letter case (keys are compared exactly, so one study would become two)")
        seen[s] = t.lines[i]
        folded[s.casefold()] = (s, t.lines[i])
        rec = {c: (v or None) for c, v in zip(t.header, t.rows[i])}
        for c in STUDY_NUMERIC:
            if t.has(c):
                if c == "year":
                    y = _number(t, i, c, required=False)
                    if y is not None and (y != round(y) or not 1900 <= y <= 2100):
                        t.fail(i, c, t.cell(i, c), "a year between 1900 and 2100 (or empty)")
                    rec[c] = y
                else:
                    rec[c] = _count(t, i, c, required=False, minimum=1,
                                    what="a whole number of patients >= 1 (or empty if not reported)")
        out.append(rec)
    return out


# --------------------------------------------------------------------------- targets
def load_targets(path, *, outcomes: Iterable[str] | None = None, ignored: Iterable[str] = ()) -> list:
    """Read and validate the published-targets table.

    Every target id is unique and file-name safe (it names ``results/audit/{target_id}.json``);
    ``estimate``, ``ci_lb``, ``ci_ub`` are finite numbers with ``ci_lb <= estimate <= ci_ub``;
    ``decimals`` a whole number 0-10; ``measure`` and ``model`` names from the registry;
    ``statuses`` a ``;``-separated list of evidence statuses; ``outcome``, when given and
    ``outcomes`` is passed, a configured outcome or one of ``ignored`` (``ignore_outcomes``: the
    target is kept with ``ignored`` True and reported as not analysed).
    """
    t = read_csv_table(path)
    _check_columns(t, ("target_id", "paper", "outcome", "estimate"), TARGET_COLUMNS)
    outcomes = None if outcomes is None else list(outcomes)
    ignored = set(ignored)
    out, seen = [], {}
    for i in range(len(t.rows)):
        tid = _text(t, i, "target_id", what="a target id is required")
        if not ID_PATTERN.fullmatch(tid):
            t.fail(i, "target_id", tid, "1 to 64 letters, digits and '_' (it names results/audit/<id>.json)")
        if tid in seen:
            t.fail(i, "target_id", tid, f"each target id appears once; it is already on line {seen[tid]}")
        seen[tid] = t.lines[i]
        rec = {c: (v or None) for c, v in zip(t.header, t.rows[i])}
        for c in TARGET_NUMERIC:
            if t.has(c):
                rec[c] = _number(t, i, c, required=False)
        if rec.get("decimals") is not None and (rec["decimals"] != round(rec["decimals"])
                                                or not 0 <= rec["decimals"] <= 10):
            t.fail(i, "decimals", t.cell(i, "decimals"), "a whole number of printed decimals from 0 to 10")
        est, lb, ub = rec.get("estimate"), rec.get("ci_lb"), rec.get("ci_ub")
        if (lb is None) != (ub is None):
            col = "ci_ub" if ub is None else "ci_lb"
            t.fail(i, col, t.cell(i, col), "both CI bounds, or neither")
        if lb is not None and est is None:
            t.fail(i, "estimate", t.cell(i, "estimate"), "an estimate when a CI is given")
        if lb is not None and not lb <= est <= ub:
            t.fail(i, "ci_ub" if est > ub else "ci_lb", t.cell(i, "ci_ub" if est > ub else "ci_lb"),
                   f"ci_lb <= estimate <= ci_ub ({t.cell(i, 'ci_lb')} <= {t.cell(i, 'estimate')} <= "
                   f"{t.cell(i, 'ci_ub')})")
        for col, names in (("measure", MEASURES), ("model", METHODS)):
            v = (rec.get(col) or "").strip()
            if v:
                if v.upper() not in names:
                    t.fail(i, col, v, "one of " + ", ".join(names) + " (or empty)" + _suggest(v, names, 0.6))
                rec[col] = v.upper()
        st = (rec.get("statuses") or "").strip()
        if st:
            parts = [s.strip().lower() for s in re.split(r"[;,]", st) if s.strip()]
            for s in parts:
                if s not in STATUSES:
                    t.fail(i, "statuses", st, f"evidence statuses separated by ';' ({', '.join(STATUSES)})"
                           + _suggest(s, STATUSES, 0.6))
            rec["statuses"] = parts
        o = (rec.get("outcome") or "").strip()
        if o:
            if not ID_PATTERN.fullmatch(o):
                t.fail(i, "outcome", o, "an outcome key of letters, digits and '_'")
            if o in ignored:
                rec["ignored"] = True
            elif outcomes is not None and o not in outcomes:
                t.fail(i, "outcome", o, "an outcome configured in config.yaml (or empty when no outcome "
                                        "can be computed)" + _suggest(o, outcomes, 0.6))
        rec["outcome"] = o or None
        rec["line"] = t.lines[i]
        out.append(rec)
    for rec in out:
        dup = (rec.get("duplicate_of") or "").strip()
        if dup and dup not in seen:
            raise DataError(t.path, rec["line"], "duplicate_of", dup,
                            "the target_id of another row" + _suggest(dup, seen, 0.6))
    return out


# --------------------------------------------------------------------------- a plain table (command line)
def load_plain_table(path) -> tuple:
    """Read a study table for the command line: the same reader and cell checks as the workflow,
    but ``outcome``, ``source`` and ``status`` are optional and a study label may repeat.

    Returns
    -------
    (kind, rows, warnings)
        The data kind, the validated records (numbers as float) and warnings, e.g. a study label
        that appears twice (R's ``dat.raudenbush1985`` has "Pellegrini & Hicks 1972" twice; as in
        metafor, the rows are pooled as separate studies).

    Raises
    ------
    DataError
        Located as for the workflow's tables.
    """
    t = read_csv_table(path)
    kind = detect_table_kind(t.header, t.path, _where(t.header_line))
    known = tuple(dict.fromkeys(BASE_COLUMNS + PROVENANCE_COLUMNS + KIND_COLUMNS[kind] + OPTIONAL[kind]))
    _check_columns(t, ("study",) + KIND_COLUMNS[kind], known)
    _check_column_sets(t, kind)
    rows, warnings, seen = [], [], {}
    for i in range(len(t.rows)):
        rec = {c: (v or None) for c, v in zip(t.header, t.rows[i])}
        rec["study"] = _text(t, i, "study", what="a study label is required")
        key = (rec.get("outcome"), rec["study"])
        if key in seen:
            warnings.append(f"{t.path}, line {t.lines[i]}: study {rec['study']!r} also on line {seen[key]}; "
                            "pooled as separate rows, as metafor does")
        seen.setdefault(key, t.lines[i])
        if t.has("status") and t.cell(i, "status"):
            status = t.cell(i, "status").lower()
            if status not in STATUSES:
                t.fail(i, "status", t.cell(i, "status"), f"one of {', '.join(STATUSES)} (case-insensitive)"
                       + _suggest(status, STATUSES, 0.6))
            rec["status"] = status
        if t.has("outcome") and t.cell(i, "outcome") and not ID_PATTERN.fullmatch(t.cell(i, "outcome")):
            t.fail(i, "outcome", t.cell(i, "outcome"), "an outcome key of 1 to 64 letters, digits and '_'")
        _validate_row(t, i, kind, rec)
        for c in NUMERIC_COLUMNS:
            if c in rec and isinstance(rec[c], str):
                rec[c] = _number(t, i, c, required=False)
        rec["line"] = t.lines[i]
        rows.append(rec)
    return kind, rows, warnings
