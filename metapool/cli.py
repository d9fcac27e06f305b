"""Command line: pool one outcome table without the workflow.

::

    metapool pool DATA.csv --measure PFT --method REML [--method FE] [--ci z|hksj]
                  [--level 0.95] [--format csv|json|md] [--outcome NAME]

prints one summary row per model (the columns of :func:`metapool.tables.summary_frame`) to
stdout.  The kind of data (single-arm counts, two-arm counts, two-group means, pre/post,
precomputed ``yi, vi``) is read from the column names (:func:`metapool.effects.detect_kind`).
When the table has an ``outcome`` column, each outcome is pooled separately (or only the one
named with ``--outcome``).  Errors are reported on one line on stderr with exit code 2.

Validated against
-----------------
The CLI only routes: effect sizes by :func:`metapool.effects.escalc`, pooling by
:func:`metapool.models.fit` (R metafor ``rma.uni``) and :mod:`metapool.counts` (``rma.mh``,
``rma.peto``); ``tests/test_cli.py`` checks the printed numbers against metafor reference cases.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

import pandas as pd

from . import __version__

__all__ = ["main", "build_parser", "pool_table", "METHODS", "RE_METHODS", "COUNT_METHODS"]

#: Inverse-variance methods (FE and the tau² estimators of :mod:`metapool.tau2`).
RE_METHODS = ("FE", "DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")
#: Methods that pool 2x2 tables directly (two-arm counts only).
COUNT_METHODS = ("MH", "PETO")
METHODS = RE_METHODS + COUNT_METHODS
_CI = {"z": "z", "hksj": "knha", "knha": "knha"}


class CliError(Exception):
    """A user error: printed on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage block), exit code 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``metapool`` argument parser."""
    p = _Parser(prog="metapool", description="Meta-analysis validated against R metafor.")
    p.add_argument("--version", action="version", version=f"metapool {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pool = sub.add_parser("pool", help="pool one outcome table and print the summary row(s)",
                          description="Pool a table of studies (one row per study) and print one "
                                      "summary row per model.")
    pool.add_argument("data", help="CSV file: a `study` column plus the columns of one data kind "
                                   "(events,total | events_treat,total_treat,events_ctrl,total_ctrl | "
                                   "mean/sd/n per group | mean_pre,sd_pre,mean_post,sd_post,n | yi,vi)")
    pool.add_argument("--measure", help="effect measure: PR PLO PAS PFT | RR OR RD PETO | MD SMD | "
                                        "SMCR SMCC MC | GEN (default GEN for yi/vi tables)")
    pool.add_argument("--method", action="append", metavar="METHOD",
                      help=f"{' '.join(METHODS)}; repeat or comma-separate for several (default REML)")
    pool.add_argument("--ci", default="z", help="z (normal, default) or hksj (Hartung-Knapp-Sidik-Jonkman)")
    pool.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    pool.add_argument("--format", default="csv", choices=("csv", "json", "md"), help="output format")
    pool.add_argument("--digits", type=int, default=None,
                      help="digits: significant for csv (default 12), decimals for md (default 4)")
    pool.add_argument("--outcome", help="pool only this outcome (tables with an `outcome` column)")
    from .audit import add_cli_parser  # `metapool audit` (metapool/audit.py)
    add_cli_parser(sub)
    return p


def _methods(values) -> list[str]:
    names = [m.strip().upper() for v in (values or ["REML"]) for m in str(v).split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise CliError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def _read(path: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise CliError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a CSV file") from None
    except pd.errors.EmptyDataError:
        raise CliError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise CliError(f"cannot read {path} as CSV: {_one_line(exc)}") from None
    if len(df) == 0:
        raise CliError(f"{path} has a header but no rows")
    return df


def _one_line(exc) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _kind_and_measure(df: pd.DataFrame, measure: str | None) -> tuple[str, str]:
    from .effects import MEASURES, check_measure, detect_kind

    if "study" not in df.columns:
        raise CliError("the table has no `study` column (columns: " + ", ".join(map(str, df.columns)) + ")")
    try:
        kind = detect_kind([c for c in df.columns if df[c].notna().any()])
    except ValueError as exc:
        raise CliError(_one_line(exc)) from None
    if measure is None:
        if kind != "generic":
            raise CliError(f"--measure is required for {kind} data; choose from {', '.join(MEASURES[kind])}")
        measure = "GEN"
    known = sorted({m for ms in MEASURES.values() for m in ms})
    if measure.upper() not in known:
        raise CliError(f"unknown measure {measure!r}; choose from {', '.join(known)}")
    try:
        return kind, check_measure(measure, kind)
    except ValueError as exc:
        raise CliError(_one_line(exc)) from None


def _fit(method: str, rows: pd.DataFrame, kind: str, measure: str, test: str, level: float, cache):
    from . import counts
    from .effects import escalc
    from .models import fit

    if method in COUNT_METHODS:
        if kind != "binary":
            raise CliError(f"method {method} pools two-arm counts (events_treat, total_treat, events_ctrl, "
                           f"total_ctrl); this table holds {kind} data")
        if test != "z":
            raise CliError(f"method {method} has a normal-theory CI only; use --ci z")
        if method == "PETO":
            if measure not in ("OR", "PETO"):
                raise CliError(f"PETO pools odds ratios; use --measure OR or PETO (not {measure})")
            return counts.peto(rows, level=level)
        if measure not in counts.MH_MEASURES:
            raise CliError(f"MH pools OR, RR or RD; not {measure}")
        return counts.mantel_haenszel(rows, measure, level=level)
    if measure not in cache:
        cache[measure] = escalc(measure, rows, kind=kind)
    es = cache[measure]
    if es.k < 2 and method != "FE":
        raise CliError(f"{method} needs at least 2 studies with an effect size (have {es.k})")
    return fit(es, method=method, test=test, level=level)


def pool_table(df: pd.DataFrame, *, measure: str | None, methods: Sequence[str], ci: str = "z",
               level: float = 0.95, outcome: str | None = None) -> pd.DataFrame:
    """Pool a table (per outcome when it has an ``outcome`` column); returns the summary frame."""
    from .tables import summary_frame

    test = _CI.get(str(ci).lower())
    if test is None:
        raise CliError(f"unknown --ci {ci!r}; choose z or hksj")
    if not (0 < level < 1):
        raise CliError(f"--level must be between 0 and 1 (e.g. 0.95), got {level:g}")
    kind, measure = _kind_and_measure(df, measure)
    if "outcome" in df.columns and df["outcome"].notna().any():
        groups = [(str(o), g) for o, g in df.groupby(df["outcome"].astype(str), sort=False)]
        if outcome is not None:
            groups = [(o, g) for o, g in groups if o == outcome]
            if not groups:
                raise CliError(f"outcome {outcome!r} not in the table (have: "
                               + ", ".join(df["outcome"].astype(str).unique()) + ")")
    elif outcome is not None:
        raise CliError("--outcome given but the table has no `outcome` column")
    else:
        groups = [("", df)]
    frames = []
    for name, rows in groups:
        cache: dict = {}
        rows = rows.reset_index(drop=True)
        try:
            results = [_fit(m, rows, kind, measure, test, level, cache) for m in methods]
        except CliError as exc:
            raise CliError(f"outcome {name!r}: {exc}" if name else str(exc)) from None
        except ValueError as exc:
            where = f"outcome {name!r}: " if name else ""
            raise CliError(where + _one_line(exc)) from None
        frames.append(summary_frame(results, outcome=name, label=name))
    return pd.concat(frames, ignore_index=True)


def _render(df: pd.DataFrame, fmt: str, digits: int | None) -> str:
    from .tables import csv_text, to_markdown

    if fmt == "csv":
        return csv_text(df, 12 if digits is None else digits)
    if fmt == "md":
        return to_markdown(df, 4 if digits is None else digits)
    records = []
    for rec in df.astype(object).to_dict(orient="records"):
        clean = {}
        for key, value in rec.items():
            if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                value = None
            elif hasattr(value, "item"):
                value = value.item()
            clean[key] = value
        records.append(clean)
    return json.dumps(records, indent=2, allow_nan=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``metapool`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command == "audit":
        from .audit import cli_main
        return cli_main(args)
    try:
        methods = _methods(args.method)
        df = _read(args.data)
        out = pool_table(df, measure=args.measure, methods=methods, ci=args.ci, level=args.level,
                         outcome=args.outcome)
    except CliError as exc:
        print(f"metapool {args.command}: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(_render(out, args.format, args.digits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
