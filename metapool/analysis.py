"""One outcome, end to end: select rows, compute effect sizes, fit every configured model.

:func:`analyse_outcome` is what the workflow's per-outcome job calls.  It returns one
:class:`~metapool.results.OutcomeAnalysis`, the object that ``results/pooled/{outcome}.json``,
the tables and the figures are all made from.

Further analyses (subgroups, leave-one-out, small-study tests, ...) are plug-ins: a function
``f(ctx: AnalysisContext, options: dict) -> dict`` registered in :data:`EXTRA_ANALYSES` under a
name, switched on per outcome (or in ``defaults``) in ``config.yaml``::

    defaults:  {analyses: {leave_one_out: true}}
    outcomes:
      treg: {label: Treg, measure: SMCR, analyses: {egger: {min_k: 3}}}

Its JSON-compatible result lands in ``OutcomeAnalysis.extras[name]``.  Register a new one with
:func:`register_analysis` (one line at the bottom of this module).

Validated against
-----------------
The statistics are delegated to :mod:`metapool.effects`, :mod:`metapool.models` and
:mod:`metapool.counts`, which are validated against R metafor 3.8-1 (``escalc``, ``rma``,
``rma.mh``, ``rma.peto``; ``tests/metafor_cases.json``).  This module only selects rows and
orders the fits; ``tests/test_pipeline.py`` checks it end to end.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from .results import EffectSizes, MetaResult, OutcomeAnalysis

__all__ = ["analyse_outcome", "resolve_spec", "select_rows", "fit_variant", "register_analysis",
           "EXTRA_ANALYSES", "AnalysisContext", "FIXED_METHODS", "DEFAULTS", "AnalysisError"]

#: Fixed (common) effect methods; they are fitted and listed before the random-effects fits.
FIXED_METHODS = ("FE", "EE", "MH", "PETO")
#: Methods that pool 2x2 tables directly (need two-arm counts).
COUNT_METHODS = ("MH", "PETO")
#: Methods that model the counts of single-arm proportions directly (binomial-normal, logit link).
GLMM_METHODS = ("GLMM",)
#: Built-in defaults; ``config.yaml``'s ``defaults`` block and each outcome override them.
DEFAULTS = {"methods": ["FE", "REML"], "test": "z", "level": 0.95, "pi_method": "metafor",
            "r": 0.5, "continuity": {"to": "only0", "drop00": False},
            "status": ["reported", "derived", "secondary"], "analyses": {}}


class AnalysisError(ValueError):
    """An outcome cannot be analysed as configured (message says which outcome and why)."""


@dataclass
class AnalysisContext:
    """What an extra analysis receives: the outcome's spec, rows, study table and main fits."""

    outcome: str
    spec: dict
    rows: pd.DataFrame
    studies: pd.DataFrame
    effects: EffectSizes
    fits: tuple
    extras: dict = field(default_factory=dict)

    @property
    def primary(self) -> MetaResult:
        return next((f for f in self.fits if f.is_random), self.fits[0])


#: name -> function(ctx, options) -> JSON-compatible dict (stored in ``extras[name]``).
EXTRA_ANALYSES: dict[str, Callable[[AnalysisContext, dict], dict]] = {}


def register_analysis(name: str, func: Callable[[AnalysisContext, dict], dict]) -> None:
    """Make ``func`` available as ``analyses: {name: ...}`` in ``config.yaml``."""
    EXTRA_ANALYSES[name] = func


def _merge(base: Mapping, override: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in (override or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_spec(spec: Mapping, defaults: Mapping | None = None) -> dict:
    """The outcome's settings: built-in :data:`DEFAULTS` < ``defaults`` block < outcome entry."""
    return _merge(_merge(DEFAULTS, defaults or {}), spec)


def _as_frames(tables) -> list[pd.DataFrame]:
    if tables is None:
        return []
    if isinstance(tables, pd.DataFrame):
        return [tables]
    if isinstance(tables, Mapping):
        return [t for t in tables.values() if isinstance(t, pd.DataFrame)]
    return [t for t in tables if isinstance(t, pd.DataFrame)]


def select_rows(outcome: str, tables) -> pd.DataFrame:
    """All rows of ``outcome`` from one or several outcome tables (columns not used dropped)."""
    parts = []
    for t in _as_frames(tables):
        if "outcome" not in t.columns:
            continue
        sel = t[t["outcome"].astype(str) == outcome]
        if len(sel):
            parts.append(sel.dropna(axis=1, how="all"))
    if not parts:
        return pd.DataFrame(columns=["study", "outcome"])
    return pd.concat(parts, ignore_index=True, sort=False).dropna(axis=1, how="all")


def _fit_order(methods: Iterable[str]) -> list[str]:
    methods = list(dict.fromkeys(methods))
    return [m for m in methods if m in FIXED_METHODS] + [m for m in methods if m not in FIXED_METHODS]


def _escalc(measure: str, rows: pd.DataFrame, spec: Mapping) -> EffectSizes:
    from .effects import escalc

    cc = spec.get("continuity", {})
    return escalc(measure, rows, add=cc.get("add"), to=cc.get("to", "only0"),
                  drop00=cc.get("drop00", False), r=spec.get("r"),
                  r_source=f"assumed (config r = {spec.get('r')})")


def _fit_one(method: str, effects: EffectSizes, rows: pd.DataFrame, spec: Mapping) -> MetaResult:
    level = spec.get("level", 0.95)
    used = rows[rows["study"].astype(str).isin(effects.study)] if "study" in rows else rows
    if method in COUNT_METHODS:
        from . import counts

        if effects.kind != "binary":
            raise AnalysisError(f"method {method} needs two-arm counts (events_treat, total_treat, "
                                f"events_ctrl, total_ctrl); this outcome's rows are {effects.kind!r}")
        cc = spec.get("continuity", {})
        kw = {"level": level, "to": cc.get("to", "only0")}
        if cc.get("add") is not None:
            kw["add"] = cc["add"]
        if method == "MH":
            if effects.measure not in ("OR", "RR", "RD"):
                raise AnalysisError(f"MH pools OR, RR or RD, not {effects.measure}")
            return counts.mantel_haenszel(used, effects.measure, **kw)
        return counts.peto(used, **kw)
    if method in GLMM_METHODS:
        from .glmm import glmm_proportion

        if effects.kind != "proportion" or effects.measure != "PLO":
            raise AnalysisError("GLMM (binomial-normal model) needs single-arm counts and measure PLO, "
                                f"not {effects.kind} data with {effects.measure}")
        return glmm_proportion(used["events"].to_numpy(float), used["total"].to_numpy(float),
                               level=level, study=used["study"].astype(str).tolist())
    from .models import fit

    return fit(effects, method=method, test=spec.get("test", "z"), level=level,
               pi_method=spec.get("pi_method", "metafor"))


def _provenance(rows: pd.DataFrame) -> list[dict]:
    cols = [c for c in ("study", "status", "source", "note", "conversion") if c in rows.columns]
    return rows[cols].astype(object).where(rows[cols].notna(), None).to_dict(orient="records")


def _row_notes(rows: pd.DataFrame, excluded: pd.DataFrame, allowed) -> list[str]:
    notes = []
    if len(excluded):
        notes.append("Left out (status not in " + ", ".join(allowed) + "): " + "; ".join(
            f"{s} ({st})" for s, st in zip(excluded["study"], excluded.get("status", ""))))
    if "status" in rows.columns:
        inferred = rows.loc[rows["status"] == "inferred", "study"].astype(str).tolist()
        if inferred:
            notes.append("Inferred numbers entered (an assumption, see source): " + ", ".join(inferred))
    if "conversion" in rows.columns:
        conv = rows[rows["conversion"].notna() & (rows["conversion"].astype(str) != "")]
        for s, c in zip(conv["study"], conv["conversion"]):
            notes.append(f"{s}: mean/SD converted from median and IQR/range ({c})")
    return notes


def _fit_all(methods, effects, rows, spec, outcome) -> tuple[list[MetaResult], list[str]]:
    fits, notes = [], []
    for m in _fit_order(methods):
        if effects.k < 2 and m not in FIXED_METHODS:
            notes.append(f"{m} not fitted: k = {effects.k} (a random-effects model needs 2 studies)")
            continue
        try:
            fits.append(_fit_one(m, effects, rows, spec))
        except AnalysisError as exc:
            raise AnalysisError(f"outcome {outcome!r}: {exc}") from None
    if not fits:
        raise AnalysisError(f"outcome {outcome!r}: no model could be fitted (k = {effects.k})")
    return fits, notes


def analyse_outcome(outcome: str, spec: Mapping, tables, studies: pd.DataFrame | None = None,
                    defaults: Mapping | None = None) -> OutcomeAnalysis:
    """Analyse one outcome as configured.

    Parameters
    ----------
    outcome : str
        Outcome key (``outcome`` column of the tables; ``{outcome}`` wildcard).
    spec : mapping
        The outcome's entry of ``config.yaml`` (``label``, ``measure``, optional ``methods``,
        ``status``, ``subgroup``, ``analyses``, ...).
    tables : DataFrame, list or dict of DataFrames
        Outcome data tables; only rows with ``outcome == outcome`` are used.
    studies : DataFrame, optional
        Study table (``study`` key plus attributes such as ``dose_regimen`` for subgroups).
    defaults : mapping, optional
        The ``defaults`` block of ``config.yaml``.

    Returns
    -------
    OutcomeAnalysis
        ``fits`` has the fixed-effect fits first, then the random-effects fits, in config order.
        ``extras`` holds ``spec`` (resolved settings), ``notes`` (row selection, inferred and
        converted numbers, models not fitted), ``provenance`` (study, status, source per row)
        and one entry per extra analysis switched on.
    """
    spec = resolve_spec(spec, defaults)
    allowed = list(spec["status"])
    rows = select_rows(outcome, tables)
    if "status" in rows.columns:
        keep = rows["status"].astype(str).str.lower().isin(allowed)
        rows, excluded = rows[keep].reset_index(drop=True), rows[~keep]
    else:
        excluded = rows.iloc[0:0]
    if rows.empty:
        raise AnalysisError(f"outcome {outcome!r}: no data rows with status in {allowed} "
                            f"({len(excluded)} row(s) left out by status)")
    effects = _escalc(spec["measure"], rows, spec)
    fits, fit_notes = _fit_all(spec["methods"], effects, rows, spec, outcome)
    notes = _row_notes(rows, excluded, allowed) + fit_notes
    if effects.dropped:
        notes += [f"{s} left out: {why}" for s, why in effects.dropped]
    studies = studies if studies is not None else pd.DataFrame(columns=["study"])
    ctx = AnalysisContext(outcome, spec, rows, studies, effects, tuple(fits))
    extras = {"spec": spec, "notes": notes, "provenance": _provenance(rows)}
    if spec.get("subgroup"):
        labels = _group_labels(ctx, spec["subgroup"])
        if labels.nunique() >= 2:
            extras["subgroups"] = subgroup_analysis(ctx, {"by": spec["subgroup"]})
        else:
            notes.append(f"No subgroups by {spec['subgroup']}: all {effects.k} studies have "
                         f"{spec['subgroup']} = {labels.iloc[0]!r}")
    for name, options in (spec.get("analyses") or {}).items():
        if options is False:
            continue
        if name not in EXTRA_ANALYSES:
            raise AnalysisError(f"outcome {outcome!r}: unknown analysis {name!r} "
                                f"(known: {', '.join(sorted(EXTRA_ANALYSES)) or 'none'})")
        extras[name] = EXTRA_ANALYSES[name](ctx, options if isinstance(options, dict) else {})
    return OutcomeAnalysis(outcome=outcome, label=spec.get("label", outcome), effects=effects,
                           fits=tuple(fits), extras=extras)


# --------------------------------------------------------------------------- subgroups
def _group_labels(ctx: AnalysisContext, by: str) -> pd.Series:
    """Subgroup label per study in ``ctx.effects.study`` (outcome rows first, then study table)."""
    study = pd.Series(ctx.effects.study, name="study")
    if by in ctx.rows.columns:
        lab = ctx.rows.drop_duplicates("study").set_index(ctx.rows["study"].astype(str)
                                                          .drop_duplicates())[by]
    elif by in ctx.studies.columns:
        lab = ctx.studies.assign(study=ctx.studies["study"].astype(str)).set_index("study")[by]
    else:
        raise AnalysisError(f"outcome {ctx.outcome!r}: subgroup column {by!r} is neither in the "
                            f"outcome rows nor in the study table")
    return study.map(lab).fillna("not reported").astype(str)


def _subgroup_method(ctx: AnalysisContext) -> str:
    """The first inverse-variance model among the fits (random first), e.g. REML; else FE."""
    iv = [f.method for f in ctx.fits if f.method not in COUNT_METHODS + GLMM_METHODS]
    return next((m for m in iv if m not in FIXED_METHODS), iv[0] if iv else "FE")


def subgroup_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """Pool per subgroup and test for subgroup differences (:mod:`metapool.subgroups`).

    The grouping column (``options["by"]``) is read from the outcome rows or the study table;
    studies without a value form the group "not reported".  The model is the outcome's first
    inverse-variance random-effects method (FE if none), with separate tau² per subgroup.
    """
    from .subgroups import subgroup_analysis as _subgroups

    by = options["by"]
    labels = _group_labels(ctx, by)
    return _subgroups(ctx.effects, groups=labels.tolist(), method=_subgroup_method(ctx),
                      test=ctx.spec.get("test", "z"), level=ctx.spec.get("level", 0.95), by=by)


# --------------------------------------------------------------------------- variants
def fit_variant(analysis: OutcomeAnalysis, measure: str | None = None, method: str | None = None,
                studies: Iterable[str] | None = None, level: float | None = None) -> MetaResult:
    """Fit ``analysis``'s data again with another measure, method or a subset of studies.

    Used by the reproduction check: a published target may have pooled raw proportions (PR)
    where the outcome is analysed on the logit scale, or one dose subgroup only.  The rows are
    the ones that entered ``analysis`` (``effects.data``); settings come from
    ``analysis.extras["spec"]``.
    """
    spec = dict(analysis.extras.get("spec") or DEFAULTS)
    if level is not None:
        spec["level"] = level
    measure = measure or analysis.effects.measure
    method = method or analysis.primary.method
    rows = analysis.effects.data
    if rows is None:
        raise AnalysisError(f"outcome {analysis.outcome!r}: the per-study rows are not stored")
    if studies is not None:
        keep = set(map(str, studies))
        rows = rows[rows["study"].astype(str).isin(keep)].reset_index(drop=True)
    if rows.empty:
        raise AnalysisError(f"outcome {analysis.outcome!r}: no studies left for this variant")
    if (measure == analysis.effects.measure and studies is None and level is None
            and method in [f.method for f in analysis.fits]):
        return analysis.fit(method)
    effects = _escalc(measure, rows, spec)
    if effects.k < 2 and method not in FIXED_METHODS:
        method = "FE"   # with one study every model returns the study's own estimate
    return _fit_one(method, effects, rows, spec)
