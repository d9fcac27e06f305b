"""Tables of results as records, byte-stable CSV and Markdown (no pandas needed).

:func:`summary_rows` turns :class:`~metapool.analysis.OutcomeAnalysis` objects into the rows of
``results/summary.csv`` (columns :data:`SUMMARY_COLUMNS`); :func:`effects_rows` gives the rows of
``results/effects/{outcome}.csv``.  :func:`csv_text` writes records with fixed float formatting, so
two runs on the same input give byte-identical files, and neutralises text cells that a
spreadsheet would run as a formula; :func:`to_markdown` renders a GitHub-flavoured Markdown table.

Two presentation rules live here and nowhere else:

* heterogeneity statistics (tau², I², H², Q) of a single-study fit are left empty: one study has
  no between-study variation to describe;
* a p-value is given only with its null hypothesis (``null``: 0 for differences, 1 for ratios on
  the reporting scale, the configured reference proportion for single-arm proportions, which
  otherwise get none).

Validated against
-----------------
Nothing is computed here: every number is copied from a ``MetaResult`` (validated against R
metafor 3.8-1) or back-transformed by :meth:`MetaResult.reporting`; ``tests/test_tables.py``
checks the copy field by field.
"""
from __future__ import annotations

import csv
import io
import math
import re
from typing import Iterable, Mapping, Sequence

from .registry import MEASURES

__all__ = ["SUMMARY_COLUMNS", "EFFECTS_COLUMNS", "summary_rows", "summary_row", "effects_rows", "csv_text",
           "write_csv", "to_markdown", "md_escape", "format_number", "neutralise", "HETEROGENEITY",
           "null_test"]

#: Columns of ``results/summary.csv``: estimate .. pi_ub on the reporting scale (back-transformed),
#: estimate_analysis .. pval on the analysis scale.
SUMMARY_COLUMNS = (
    "outcome", "label", "measure", "scale", "model", "method", "ci_method", "level", "k", "n",
    "estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "pi_method",
    "estimate_analysis", "se", "null", "stat", "pval",
    "tau2", "tau2_ci_lb", "tau2_ci_ub", "I2", "I2_ci_lb", "I2_ci_ub", "H2", "Q", "Q_df", "Q_pval",
)
HETEROGENEITY = ("tau2", "tau2_ci_lb", "tau2_ci_ub", "I2", "I2_ci_lb", "I2_ci_ub", "H2", "Q", "Q_df", "Q_pval")
EFFECTS_COLUMNS = ("study", "label", "measure", "yi", "vi", "ci_lb", "ci_ub", "estimate", "estimate_ci_lb",
                   "estimate_ci_ub", "status", "pooled", "source")
_CI_METHOD = {"z": "z", "knha": "hksj"}
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?inf\s*$", re.IGNORECASE)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _total_n(ni) -> float:
    if ni is None:
        return math.nan
    vals = [float(x) for x in ni if math.isfinite(float(x))]
    return float(sum(vals)) if vals else math.nan


def null_test(fit, spec=None) -> tuple:
    """``(null, stat, pval)`` of a fit's test of no effect, on the reporting scale's null value.

    Differences: null 0; ratios: null 1 (the fit's own z/t test on the log scale); single-arm
    proportions: the configured ``reference_proportion`` (its test on the analysis scale,
    computed in the outcome job and stored in the analysis), else no test at all (NaN).
    """
    m = MEASURES.get(fit.measure)
    if m is None or m.family != "proportion":
        return (m.null if m else 0.0), fit.stat, fit.pval
    return math.nan, math.nan, math.nan


def summary_row(res, *, outcome: str = "", label: str = "", reference=None) -> dict:
    """One ``summary.csv`` row for one fitted model (``reference``: (null, stat, pval) of a
    single-arm proportion's test against the configured reference proportion)."""
    rep = res.reporting()
    null, stat, pval = reference if reference is not None else null_test(res)
    row = {"outcome": outcome, "label": label, "measure": res.measure,
           "scale": MEASURES[res.measure].label if res.measure in MEASURES else res.measure,
           "model": "random" if res.is_random else "fixed", "method": res.method,
           "ci_method": _CI_METHOD.get(res.test, res.test), "level": res.level, "k": int(res.k),
           "n": _total_n(res.ni), **rep, "pi_method": res.pi_method if res.is_random else "",
           "estimate_analysis": res.estimate, "se": res.se, "null": null, "stat": stat, "pval": pval}
    for name in HETEROGENEITY:
        row[name] = getattr(res, name) if res.k > 1 else math.nan
    if res.k == 1 or not res.is_random:
        row["pi_lb"] = row["pi_ub"] = math.nan
    return {name: row[name] for name in SUMMARY_COLUMNS}


def summary_rows(analyses: Iterable) -> list:
    """The ``results/summary.csv`` rows: one per fitted model of each outcome analysis."""
    out = []
    for a in analyses:
        refs = {t.method: (t.null, t.stat, t.pval) for t in getattr(a, "reference_tests", ())}
        for f in a.fits:
            out.append(summary_row(f, outcome=a.outcome, label=a.label, reference=refs.get(f.method)))
    return out


def effects_rows(analysis) -> list:
    """Per study of the primary pool: ``study`` (key), ``label`` ("He 2020"), analysis-scale
    ``yi, vi`` and 95% CI, reporting-scale ``estimate`` and CI, ``weight_<method>`` per model, the
    row's ``status`` and ``source``; then the rows left out of the primary pool (``pooled`` False),
    e.g. inferred numbers, with their effect sizes from the sensitivity analysis."""
    import numpy as np

    from .dist import norm_ppf
    from .results import NotRun
    from .transforms import back_transform

    es = analysis.effects
    prov = {p["study"]: p for p in analysis.provenance}
    fits = [f for f in analysis.fits if len(f.weights) == len(f.study) and np.isfinite(f.weights).any()]

    def rows_of(effects, pooled):
        z = float(norm_ppf(0.975))
        se = np.sqrt(effects.vi)
        lb, ub = effects.yi - z * se, effects.yi + z * se
        ni = effects.ni if effects.ni is not None and len(effects.ni) == effects.k else None
        back = [back_transform(effects.measure, x, ni=ni) for x in (effects.yi, lb, ub)]
        out = []
        for i, s in enumerate(effects.study):
            if not pooled and prov.get(s, {}).get("pooled", True):
                continue
            r = {"study": s, "label": analysis.label_of(s), "measure": effects.measure, "yi": effects.yi[i],
                 "vi": effects.vi[i], "ci_lb": lb[i], "ci_ub": ub[i], "estimate": back[0][i],
                 "estimate_ci_lb": back[1][i], "estimate_ci_ub": back[2][i],
                 "status": prov.get(s, {}).get("status", ""), "pooled": pooled,
                 "source": prov.get(s, {}).get("source", "")}
            for f in fits:
                w = dict(zip(f.study, f.weights))
                r[f"weight_{f.method}"] = float(w[s]) if (pooled and s in w) else math.nan
            out.append(r)
        return out

    rows = rows_of(es, True)
    sens = analysis.inferred_sensitivity
    if sens is not None and not isinstance(sens, NotRun) and sens.effects is not None:
        rows += rows_of(sens.effects, False)
    return rows


# ----------------------------------------------------------------------------- formatting
def format_number(x, digits: int = 12, *, fixed: bool = False) -> str:
    """Deterministic text of a number: '' for missing, integers without a decimal point.

    ``fixed=False`` uses ``digits`` significant digits (``%.{digits}g``, for CSV files);
    ``fixed=True`` uses ``digits`` decimals, switching to scientific notation for non-zero
    values that would round to zero (for Markdown tables).
    """
    if x is None:
        return ""
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        return str(bool(x))
    if isinstance(x, int) or type(x).__name__.startswith("int"):
        return str(int(x))
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if fixed:
        if x != 0 and abs(x) < 0.5 * 10.0 ** -digits:
            return f"{x:.{max(digits - 1, 1)}e}"
        text = f"{x:.{digits}f}"
        return "0" if float(text) == 0 and digits == 0 else text
    text = f"{x:.{digits}g}"
    return "0" if text == "-0" else text


def neutralise(text: str) -> str:
    """Prefix ``'`` to text that starts like a spreadsheet formula (=, +, -, @) and is no number."""
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) or type(x).__name__ in ("float64", "float32", "int64", "int32", "bool_")


def _cell(x, digits) -> str:
    if isinstance(x, str):
        return neutralise(x)
    if x is None or _is_number(x):
        return format_number(x, digits)
    return neutralise(str(x))


def _records_and_columns(rows, columns):
    from .rows import as_records, columns_of

    rows = as_records(rows)
    return rows, list(columns) if columns is not None else columns_of(rows)


def csv_text(rows, columns: Sequence[str] | None = None, digits: int = 12) -> str:
    """CSV text of ``rows`` (records, or a DataFrame) with fixed float formatting
    (``%.{digits}g``), '' for NaN, ``\\n`` line ends; text cells starting with ``=``, ``+``, ``-``,
    ``@`` (or tab/CR) that are not numbers get a leading ``'`` (CSV/formula injection).  The same
    rows always give the same bytes."""
    rows, columns = _records_and_columns(rows, columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([neutralise(str(c)) for c in columns])
    for r in rows:
        writer.writerow([_cell(r.get(c), digits) for c in columns])
    return buf.getvalue()


def write_csv(path, rows, columns: Sequence[str] | None = None, digits: int = 12):
    """Write :func:`csv_text` to ``path`` atomically (see :mod:`metapool.io`)."""
    from .io import write_text

    return write_text(path, csv_text(rows, columns, digits))


_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~&!#$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_escape(text: str) -> str:
    """Text for one Markdown table cell: shown literally, never as markup or HTML.

    Backslash-escapes the characters that CommonMark/GitHub Markdown would read as markup or
    raw HTML (``\\ ` * [ ] < > | ~ & ! # $`` and ``_`` at a word boundary; ``_`` inside a word,
    as in ``ln_remission``, is literal already) and turns line breaks into spaces.  So a study
    named ``<script>alert(1)</script> | *x*`` stays one cell and reads as typed.
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def to_markdown(rows, columns: Sequence[str] | None = None, digits: int = 3,
                formats: Mapping | None = None) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned, ``digits`` decimals).

    Missing values are blank; integers are written without decimals; text is escaped with
    :func:`md_escape` (no cell can break the table or act as markup/HTML).  ``formats`` maps a
    column to a function that formats its value (its text is escaped as well).
    """
    rows, columns = _records_and_columns(rows, columns)
    formats = formats or {}
    numeric = [c not in formats and all(r.get(c) is None or _is_number(r.get(c)) for r in rows)
               and any(_is_number(r.get(c)) for r in rows) for c in columns]
    lines = ["| " + " | ".join(md_escape(str(c)) for c in columns) + " |",
             "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"]
    for r in rows:
        cells = []
        for c in columns:
            x = r.get(c)
            if c in formats:
                cells.append(md_escape(formats[c](x, r)))
            elif isinstance(x, str):
                cells.append(md_escape(x))
            elif x is None or _is_number(x):
                cells.append(format_number(x, digits, fixed=True))
            else:
                cells.append(md_escape(str(x)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
