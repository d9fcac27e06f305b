"""Command line: pool a table or audit a published estimate, without the workflow.

::

    metapool pool DATA.csv --measure PFT --method REML [--method FE] [--ci z|hksj]
                  [--level 0.95] [--format csv|json|md] [--digits N] [--outcome NAME]
    metapool audit DATA.csv --estimate 0.819 --ci 0.745 0.894 [--subsets] [--missing] [--format json|md]

``pool`` prints one summary row per model (the columns of ``results/summary.csv``).  The table is
read by the workflow's own reader (:func:`metapool.data.load_plain_table`: semicolons, a BOM and
header case are accepted; a fractional count, a duplicated column or a short row are located
errors); the kind of data is read from the column names.  When the table has an ``outcome``
column, each outcome is pooled separately (or only the one named with ``--outcome``).  An outcome
with one study gets that study's estimate (fixed effect) and a note, as in the workflow; a study
label that appears twice is pooled as two rows with a warning, as metafor does.  Which method can
pool which data is decided by :func:`metapool.registry.method_problem`, the rule the workflow uses.
Errors are one line on stderr with exit code 2; JSON output never holds NaN or Infinity (null).

Validated against
-----------------
The command line only routes: effect sizes by :func:`metapool.effects.escalc`, pooling by
:func:`metapool.analysis.fit_method` (R metafor ``rma.uni``, ``rma.mh``, ``rma.peto``, ``rma.glmm``);
``tests/test_cli.py`` checks the printed numbers against metafor reference cases.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

from . import __version__
from .registry import METHODS, measures_for, method_problem

__all__ = ["main", "build_parser", "pool_rows", "CliError"]

_CI = {"z": "z", "hksj": "knha", "knha": "knha"}


class CliError(Exception):
    """A user error: printed on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage block), exit code 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _digits(text: str) -> int:
    try:
        d = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= d <= 17:
        raise argparse.ArgumentTypeError(f"{d} is not between 0 and 17")
    return d


def _level(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < x < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (e.g. 0.95)")
    return x


def build_parser() -> argparse.ArgumentParser:
    """The ``metapool`` argument parser."""
    p = _Parser(prog="metapool", description="Meta-analysis validated against R metafor.")
    p.add_argument("--version", action="version", version=f"metapool {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pool = sub.add_parser("pool", help="pool a table of studies and print the summary row(s)",
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
    pool.add_argument("--level", type=_level, default=0.95, help="confidence level (default 0.95)")
    pool.add_argument("--format", default="csv", choices=("csv", "json", "md"), help="output format")
    pool.add_argument("--digits", type=_digits, default=None,
                      help="digits (0-17): significant for csv (default 12), decimals for md (default 4)")
    pool.add_argument("--outcome", help="pool only this outcome (tables with an `outcome` column)")
    from .audit import add_cli_parser  # `metapool audit` (metapool/audit.py)

    add_cli_parser(sub)
    return p


def _methods(values) -> list:
    names = [m.strip().upper() for v in (values or ["REML"]) for m in str(v).split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise CliError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def read_table(path: str) -> tuple:
    """``(kind, rows, warnings)`` of a study table, read as the workflow reads its tables."""
    from .data import DataError, load_plain_table

    try:
        return load_plain_table(path)
    except DataError as exc:
        raise CliError(str(exc)) from None


def _measure(kind: str, measure: str | None) -> str:
    from .registry import MEASURES

    if measure is None:
        if kind != "generic":
            raise CliError(f"--measure is required for {kind} data; choose from {', '.join(measures_for(kind))}")
        return "GEN"
    m = measure.upper()
    if m not in MEASURES:
        raise CliError(f"unknown measure {measure!r}; choose from {', '.join(MEASURES)}")
    if m not in measures_for(kind):
        raise CliError(f"measure {m} cannot be computed from {kind} data; choose from "
                       f"{', '.join(measures_for(kind))}")
    return m


def pool_rows(kind: str, rows: list, *, measure: str, methods: Sequence[str], ci: str = "z",
              level: float = 0.95, outcome: str | None = None) -> tuple:
    """Pool the rows (per outcome when they have one); returns ``(summary rows, notes)``."""
    from .analysis import fit_method
    from .effects import escalc
    from .spec import OutcomeSpec
    from .tables import summary_row

    test = _CI.get(str(ci).lower())
    if test is None:
        raise CliError(f"unknown --ci {ci!r}; choose z or hksj")
    for m in methods:
        why = method_problem(kind, measure, m)
        if why:
            raise CliError(why)
    groups: dict = {}
    for r in rows:
        groups.setdefault(r.get("outcome") or "", []).append(r)
    if outcome is not None:
        if outcome not in groups:
            raise CliError(f"outcome {outcome!r} not in the table (have: {', '.join(k for k in groups if k) or 'none'})")
        groups = {outcome: groups[outcome]}
    out, notes = [], []
    for name, mine in groups.items():
        where = f"outcome {name!r}: " if name else ""
        spec = OutcomeSpec(label=name or "pooled", measure=measure, methods=tuple(methods), test=test, level=level)
        try:
            es = escalc(measure, mine, kind=kind)
        except ValueError as exc:
            raise CliError(where + "; ".join(s.strip() for s in str(exc).splitlines() if s.strip())) from None
        if es.k == 0:
            raise CliError(where + "no study has an estimable effect size")
        notes += [where + n for n in es.notes if "appears" in n]
        for m in spec.methods:
            if es.k == 1 and METHODS[m].model == "random":
                notes.append(f"{where}{m} not fitted: k = 1 (random-effects models need 2 studies)")
                continue
            try:
                res = fit_method(m, es, mine, spec)
            except (ValueError, RuntimeError) as exc:
                raise CliError(where + str(exc)) from None
            out.append(summary_row(res, outcome=name, label=name))
        if es.k == 1 and not any(r["outcome"] == name for r in out):
            out.append(summary_row(fit_method("FE", es, mine, spec), outcome=name, label=name))
            notes.append(f"{where}k = 1: the single study's estimate is shown (fixed effect)")
    return out, notes


def _render(rows: list, fmt: str, digits: int | None) -> str:
    from .tables import SUMMARY_COLUMNS, csv_text, to_markdown

    if fmt == "csv":
        return csv_text(rows, SUMMARY_COLUMNS, 12 if digits is None else digits)
    if fmt == "md":
        return to_markdown(rows, SUMMARY_COLUMNS, 4 if digits is None else digits)
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


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
        kind, rows, warnings = read_table(args.data)
        measure = _measure(kind, args.measure)
        out, notes = pool_rows(kind, rows, measure=measure, methods=methods, ci=args.ci, level=args.level,
                               outcome=args.outcome)
    except CliError as exc:
        print(f"metapool {args.command}: error: {exc}", file=sys.stderr)
        return 2
    for w in warnings + notes:
        print(f"metapool {args.command}: note: {w}", file=sys.stderr)
    sys.stdout.write(_render(out, args.format, args.digits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
