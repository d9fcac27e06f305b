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
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from .glmm import GLMMError
from .results import EffectSizes, MetaResult, OutcomeAnalysis

__all__ = ["analyse_outcome", "resolve_spec", "select_rows", "fit_variant", "register_analysis",
           "EXTRA_ANALYSES", "AnalysisContext", "FIXED_METHODS", "DEFAULTS", "AnalysisError",
           "study_labels", "variant_rows", "SENSITIVITY_STATUSES"]

#: Fixed (common) effect methods; they are fitted and listed before the random-effects fits.
FIXED_METHODS = ("FE", "EE", "MH", "PETO")
#: Methods that pool 2x2 tables directly (need two-arm counts).
COUNT_METHODS = ("MH", "PETO")
#: Methods that model the counts of single-arm proportions directly (binomial-normal, logit link).
GLMM_METHODS = ("GLMM",)
#: Built-in defaults; ``config.yaml``'s ``defaults`` block and each outcome override them.
DEFAULTS = {"methods": ["FE", "REML"], "test": "z", "level": 0.95, "pi_method": "metafor",
            "r": 0.5, "continuity": {"to": "only0", "drop00": False},
            "status": ["reported", "derived", "secondary"],
            "analyses": {"inferred_sensitivity": True}}
#: Evidence statuses kept out of the primary pools and refitted as a sensitivity analysis
#: (EVIDENCE.md: INFERRED numbers depend on an assumption; "use for sensitivity analyses only").
SENSITIVITY_STATUSES = ("inferred",)


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
    #: rows of the outcome left out by the status filter (the inferred-sensitivity analysis adds them)
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["study"]))

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
                  r_source="assumed in config.yaml" if spec.get("r") is not None else None)


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
        except (GLMMError, ValueError) as exc:
            if m not in GLMM_METHODS:
                raise
            notes.append(f"{m} not fitted: {exc}")   # the inverse-variance models go on
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
        left = sorted(set(excluded["status"].astype(str))) if "status" in excluded else []
        only = (f"; its only rows are {', '.join(left)} ({', '.join(excluded['study'].astype(str))}), "
                "which the evidence rules keep to sensitivity analyses: there is no primary pool. "
                "To show them anyway, add the status to the outcome's `status` list (the report then "
                "marks the outcome as pooling inferred numbers)") if left else ""
        raise AnalysisError(f"outcome {outcome!r}: no data rows with status in {allowed} "
                            f"({len(excluded)} row(s) left out by status){only}")
    effects = _escalc(spec["measure"], rows, spec)
    fits, fit_notes = _fit_all(spec["methods"], effects, rows, spec, outcome)
    notes = _row_notes(rows, excluded, allowed) + fit_notes
    if effects.dropped:
        notes += [f"{s} left out: {why}" for s, why in effects.dropped]
    studies = studies if studies is not None else pd.DataFrame(columns=["study"])
    ctx = AnalysisContext(outcome, spec, rows, studies, effects, tuple(fits), excluded=excluded)
    notes += _boundary_notes(effects)
    extras = {"spec": spec, "notes": notes, "provenance": _provenance(rows),
              "study_labels": study_labels(studies, [*rows["study"].astype(str),
                                                     *excluded["study"].astype(str)])}
    if any(m in GLMM_METHODS for m in spec["methods"]):
        extras["glmm"] = _glmm_status(ctx, fit_notes)
    if spec.get("subgroup"):
        extras["subgroups"] = subgroup_analysis(ctx, {"by": spec["subgroup"]})
        if extras["subgroups"].get("status", "ok") != "ok":
            notes.append(f"No subgroup comparison by {spec['subgroup']}: "
                         f"{extras['subgroups']['status'].removeprefix('not run: ')}")
    for name, options in (spec.get("analyses") or {}).items():
        if options is False:
            continue
        if name not in EXTRA_ANALYSES:
            raise AnalysisError(f"outcome {outcome!r}: unknown analysis {name!r} "
                                f"(known: {', '.join(sorted(EXTRA_ANALYSES)) or 'none'})")
        extras[name] = EXTRA_ANALYSES[name](ctx, options if isinstance(options, dict) else {})
    extras["figures"] = figure_kinds(extras)
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
    inverse-variance random-effects method (FE if none).  The top level holds the fits with a
    separate tau² per subgroup (drawn in the forest plot); ``common_tau2`` holds the same
    analysis with one tau² shared by all subgroups (random effects only).  ``levels`` counts
    the studies per value; with fewer than two values ``status`` says why nothing was compared.
    """
    from .subgroups import subgroup_analysis as _subgroups

    by = options["by"]
    labels = _group_labels(ctx, by)
    levels = {str(k): int(v) for k, v in labels.value_counts(sort=False).sort_index().items()}
    if len(levels) < 2:
        only = next(iter(levels), "none")
        return {"by": by, "status": f"not run: all {ctx.effects.k} studies have {by} = {only!r}",
                "levels": levels, "groups": []}
    method = _subgroup_method(ctx)
    kw = {"groups": labels.tolist(), "method": method, "test": ctx.spec.get("test", "z"),
          "level": ctx.spec.get("level", 0.95), "by": by}
    out = {"status": "ok", **_subgroups(ctx.effects, **kw), "levels": levels}
    if method not in FIXED_METHODS:
        try:
            out["common_tau2"] = _subgroups(ctx.effects, tau2="common", **kw)
        except ValueError as exc:
            out["common_tau2"] = {"status": f"not run: {exc}"}
    return out


# --------------------------------------------------------------------------- further analyses
#: Fewest studies each analysis needs (``analyses: {name: {min_k: ...}}`` raises it).
MIN_K = {"leave_one_out": 3, "cumulative": 3, "influence": 3, "gosh": 3, "small_study": 3,
         "metareg": 4}
#: Figure kinds drawn from the extras (``results/figures/{outcome}_{kind}.{png,svg}``).
FIGURE_KINDS = ("loo", "cumulative", "influence", "baujat", "gosh", "bubble")
_FIGURE_SOURCE = {"loo": "leave_one_out", "cumulative": "cumulative", "influence": "influence",
                  "baujat": "influence", "gosh": "gosh", "bubble": "metareg"}


def figure_kinds(extras: Mapping) -> list[str]:
    """The diagnostic figures that apply: those whose analysis ran (bubble: one numeric moderator)."""
    out = []
    for kind in FIGURE_KINDS:
        res = extras.get(_FIGURE_SOURCE[kind])
        if not isinstance(res, Mapping) or res.get("status") != "ok":
            continue
        if kind == "bubble" and not res.get("bubble"):
            continue
        out.append(kind)
    return out


def _min_k(name: str, options: Mapping) -> int:
    return max(int(options.get("min_k", MIN_K[name])), MIN_K[name])


def _not_run(k: int, min_k: int) -> dict | None:
    """``{"status": "not run: k = 2 < 3", ...}`` when there are too few studies, else None."""
    if k < min_k:
        return {"status": f"not run: k = {k} < {min_k}", "k": int(k), "min_k": int(min_k)}
    return None


def _iv_fit(ctx: AnalysisContext) -> MetaResult:
    """The inverse-variance model the sensitivity analyses refit: the first random-effects
    inverse-variance fit, else the first fixed one (MH, Peto and GLMM are not refitted)."""
    iv = [f for f in ctx.fits if f.method not in COUNT_METHODS + GLMM_METHODS]
    if iv:
        return next((f for f in iv if f.is_random), iv[0])
    from .models import fit

    return fit(ctx.effects, method="REML", test=ctx.spec.get("test", "z"),
               level=ctx.spec.get("level", 0.95), pi_method=ctx.spec.get("pi_method", "metafor"))


def _study_column(ctx: AnalysisContext, column: str) -> pd.Series:
    """Values of ``column`` per study of ``ctx.effects`` (outcome rows first, then study table);
    missing values stay missing."""
    study = pd.Series(ctx.effects.study, name="study")
    for table in (ctx.rows, ctx.studies):
        if column in table.columns and "study" in table.columns:
            lab = table.drop_duplicates("study").set_index(
                table["study"].astype(str).drop_duplicates())[column]
            return study.map(lab)
    raise AnalysisError(f"outcome {ctx.outcome!r}: column {column!r} is neither in the outcome rows "
                        f"nor in the study table")


def _numeric(values: pd.Series) -> pd.Series | None:
    """The values as numbers if every non-missing value is one, else None."""
    num = pd.to_numeric(values, errors="coerce")
    return num if (num.notna() == values.notna()).all() else None


def leave_one_out_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """Leave-one-out refits of the primary inverse-variance model (metafor ``leave1out``)."""
    from .sensitivity import leave_one_out, records

    fit = _iv_fit(ctx)
    skip = _not_run(fit.k, _min_k("leave_one_out", options))
    if skip:
        return skip
    return {"status": "ok", "method": fit.method, "k": fit.k, "table": records(leave_one_out(fit))}


def cumulative_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """Cumulative meta-analysis ordered by ``options["order"]`` (default the study-table ``year``;
    studies without a value are added last, in input order), metafor ``cumul``."""
    from .sensitivity import cumulative, records

    fit = _iv_fit(ctx)
    skip = _not_run(fit.k, _min_k("cumulative", options))
    if skip:
        return skip
    by = options.get("order", "year")
    decreasing = bool(options.get("decreasing", False))
    key = _study_column(ctx, by)
    key = _numeric(key) if _numeric(key) is not None else key.astype(object)
    missing = [s for s, m in zip(fit.study, key.isna()) if m]
    notes = []
    if missing:
        notes.append(f"no {by} for {', '.join(missing)}: added last")
        if key.dtype.kind == "f":
            key = key.fillna(-np.inf if decreasing else np.inf)
        else:
            key = key.where(key.notna(), "\uffff").astype(str)
    table = cumulative(fit, order=key.to_numpy(), decreasing=decreasing)
    if missing:
        table["order"] = table["order"].where(~table["study"].isin(missing), None)
    return {"status": "ok", "method": fit.method, "k": fit.k, "order_by": by, "decreasing": decreasing,
            "notes": notes, "table": records(table)}


def influence_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """Case-deletion diagnostics (metafor ``influence``) with the influential studies flagged,
    and the Baujat coordinates (metafor ``baujat``)."""
    from .sensitivity import baujat, influence, records

    fit = _iv_fit(ctx)
    skip = _not_run(fit.k, _min_k("influence", options))
    if skip:
        return skip
    inf = influence(fit)
    return {"status": "ok", "method": fit.method, "k": fit.k, "tau2": fit.tau2, "Q": fit.Q,
            "influential": [str(s) for s in inf.loc[inf["inf"], "study"]],
            "table": records(inf), "baujat": records(baujat(fit))}


def _stored_fit(analysis: OutcomeAnalysis, method: str) -> MetaResult:
    """The fit an analysis was run on (refitted when it was not one of the stored fits)."""
    stored = [f for f in analysis.fits if f.method == method]
    if stored:
        return stored[0]
    from .models import fit

    spec = analysis.extras.get("spec") or DEFAULTS
    return fit(analysis.effects, method=method, test=spec.get("test", "z"),
               level=spec.get("level", 0.95), pi_method=spec.get("pi_method", "metafor"))


#: GOSH defaults for the pipeline: all subsets up to k = 16 (2**16 - 1 = 65,535 fits, one batched
#: call, about 0.3 s with DL and 2 s with REML), else a seeded sample of as many subsets.
GOSH_SUBSETS = 65_535


def gosh_result(analysis_or_ctx, options: Mapping | None = None):
    """The :class:`metapool.sensitivity.GoshResult` of an analysis (recomputed, deterministic:
    the same subsets and seed as stored in ``extras["gosh"]``)."""
    from .sensitivity import gosh

    if isinstance(analysis_or_ctx, OutcomeAnalysis):
        stored = analysis_or_ctx.extras.get("gosh") or {}
        options = {"subsets": stored.get("subsets", GOSH_SUBSETS), "seed": stored.get("seed_option", 1)}
        fit = _stored_fit(analysis_or_ctx, stored.get("fit_method"))
        return gosh(fit, subsets=options["subsets"], seed=options["seed"])
    fit = _iv_fit(analysis_or_ctx)
    options = options or {}
    return gosh(fit, subsets=int(options.get("subsets", GOSH_SUBSETS)), seed=int(options.get("seed", 1)))


def gosh_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """GOSH (metafor ``gosh``): the model fitted to all subsets (k <= 16) or a seeded random sample
    of ``subsets`` (default 65,535) subsets; the JSON keeps a compact summary."""
    fit = _iv_fit(ctx)
    skip = _not_run(fit.k, _min_k("gosh", options))
    if skip:
        return skip
    subsets, seed = int(options.get("subsets", GOSH_SUBSETS)), int(options.get("seed", 1))
    g = gosh_result(ctx, {"subsets": subsets, "seed": seed})
    return {"status": "ok", "fit_method": fit.method, "subsets": subsets, "seed_option": seed,
            **g.to_dict()}


def small_study_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """Small-study effects (:mod:`metapool.bias`): Egger's test (classical weighted regression),
    Peters' test (two-arm counts), Begg's rank test and trim-and-fill (L0, the primary model's
    estimator).  With k < 10 ``power_note`` says the tests have little power."""
    from . import bias

    fit = _iv_fit(ctx)
    skip = _not_run(fit.k, _min_k("small_study", options))
    if skip:
        return skip
    y, v = np.asarray(fit.yi, float), np.asarray(fit.vi, float)
    level = ctx.spec.get("level", 0.95)
    model = options.get("model", "lm")
    out = {"status": "ok", "method": fit.method, "k": fit.k, "power_note": bias._power_note(fit.k)}
    tests = {"egger": lambda: bias.egger_test(y, v, model=model, method=fit.method, level=level),
             "begg": lambda: bias.begg_test(y, v),
             "trim_and_fill": lambda: bias.trim_and_fill(
                 y, v, estimator=options.get("estimator", "L0"), method=fit.method, test=fit.test,
                 level=level, measure=fit.measure, study=fit.study, ni=fit.ni)}
    if ctx.effects.kind == "binary" and fit.ni is not None:
        tests["peters"] = lambda: bias.peters_test(y, v, fit.ni, model=model, method=fit.method,
                                                   level=level)
    for name, run in tests.items():
        try:
            out[name] = {"status": "ok", **run().to_dict()}
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            out[name] = {"status": f"not run: {exc}"}
    return out


def _moderators(ctx: AnalysisContext, names) -> tuple[pd.DataFrame, list[str]]:
    """Moderator table per study (numbers where every value is one) and the studies lacking one."""
    table = pd.DataFrame({n: _study_column(ctx, n) for n in names})
    table.index = list(ctx.effects.study)
    for n in names:
        num = _numeric(table[n])
        table[n] = num if num is not None else table[n].astype(object)
    missing = [s for s, row in table.iterrows() if row.isna().any()]
    return table, missing


def metareg_result(analysis_or_ctx, options: Mapping | None = None):
    """(MetaRegression or None, {"status": "not run: ...", ...} or "", moderator table) for
    ``options["moderators"]``; the moderator columns come from the rows or the study table."""
    from .metareg import meta_regression

    if isinstance(analysis_or_ctx, OutcomeAnalysis):
        stored = analysis_or_ctx.extras.get("metareg") or {}
        table = pd.DataFrame(stored.get("data", []))
        fit = _stored_fit(analysis_or_ctx, stored.get("fit_method"))
        keep = np.isin(np.asarray(fit.study), table["study"].astype(str))
        reg = meta_regression(np.asarray(fit.yi)[keep], np.asarray(fit.vi)[keep],
                              table[list(stored["moderators"])], method=fit.method, test=fit.test,
                              level=fit.level, study=table["study"].astype(str).tolist())
        return reg, "", table
    ctx = analysis_or_ctx
    names = list(options.get("moderators") or [])
    if not names:
        raise AnalysisError(f"outcome {ctx.outcome!r}: analyses/metareg needs moderators: [column, ...]")
    fit = _iv_fit(ctx)
    table, missing = _moderators(ctx, names)
    keep = ~table.index.isin(missing)
    k = int(keep.sum())
    min_k = _min_k("metareg", options)
    n_coef = 1 + sum(1 if pd.api.types.is_numeric_dtype(table[n]) else
                     max(table.loc[keep, n].nunique() - 1, 0) for n in names)
    min_k = max(min_k, n_coef + 2)
    if k < min_k:
        why = f"k = {k} < {min_k}" + (f" ({len(missing)} without {'/'.join(names)})" if missing else "")
        return None, {"status": f"not run: {why}", "k": k, "min_k": int(min_k)}, table
    flat = [n for n in names if table.loc[keep, n].nunique() < 2]
    if flat:
        return None, {"status": f"not run: {', '.join(flat)} takes one value only", "k": k}, table
    reg = meta_regression(np.asarray(fit.yi)[keep], np.asarray(fit.vi)[keep], table.loc[keep, names],
                          method=fit.method, test=fit.test, level=fit.level,
                          study=[s for s, m in zip(fit.study, keep) if m])
    return reg, "", table.loc[keep]


def metareg_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """Mixed-effects meta-regression on ``options["moderators"]`` (study-table or row columns;
    :func:`metapool.metareg.meta_regression`, the primary model's tau² estimator): coefficients,
    QM, residual tau², R²; ``bubble`` is true for a single numeric moderator."""
    fit = _iv_fit(ctx)
    reg, why, table = metareg_result(ctx, options)
    names = list(options.get("moderators") or [])
    if reg is None:
        return {**why, "moderators": names}
    numeric = len(names) == 1 and pd.api.types.is_numeric_dtype(table[names[0]])
    dropped = [s for s in fit.study if s not in set(reg.study)]
    data = table.reset_index().rename(columns={"index": "study"})
    return {"status": "ok", "fit_method": fit.method, "bubble": bool(numeric and reg.p == 2),
            "dropped": dropped, "data": data.astype(object).where(data.notna(), None).to_dict("records"),
            **reg.to_dict()}


def _glmm_status(ctx: AnalysisContext, fit_notes) -> dict:
    if any(f.method in GLMM_METHODS for f in ctx.fits):
        return {"status": "ok"}
    why = next((n.split(": ", 1)[1] for n in fit_notes if n.startswith("GLMM not fitted")),
               "needs single-arm counts and measure PLO")
    return {"status": f"not run: {why}"}


def _boundary_notes(effects: EffectSizes) -> list[str]:
    """Single-arm studies with 0 or n events: the observed proportion and its exact
    (Clopper-Pearson) interval, since a continuity-corrected logit does not show 0% or 100%."""
    if effects.kind != "proportion" or effects.data is None or effects.measure not in ("PLO", "PR", "PAS"):
        return []
    from scipy import stats

    d = effects.data
    x, n = d["events"].to_numpy(float), d["total"].to_numpy(float)
    edge = (x == 0) | (x == n)
    out = []
    for s, xi, ni in zip(d.loc[edge, "study"], x[edge], n[edge]):
        lo = 0.0 if xi == 0 else stats.beta.ppf(0.025, xi, ni - xi + 1)
        hi = 1.0 if xi == ni else stats.beta.ppf(0.975, xi + 1, ni - xi)
        out.append(f"{s}: {int(xi)}/{int(ni)} observed = {100 * xi / ni:.0f}% (exact 95% CI "
                   f"{100 * lo:.1f}% to {100 * hi:.1f}%); the {effects.measure} effect size adds a "
                   f"continuity correction, so its study estimate is not exactly {100 * xi / ni:.0f}%")
    return out


# --------------------------------------------------------------------------- labels
_INITIALS = re.compile(r"^[A-Z]{1,3}\.?$")


def _surname(author) -> str:
    """``"He J"`` -> ``"He"``, ``"von Spee-Mayer C"`` -> ``"von Spee-Mayer"``; "" for NR/empty."""
    text = "" if author is None or (isinstance(author, float) and np.isnan(author)) else str(author)
    text = text.split(",")[0].strip()
    if text.upper() in ("", "NR", "NA", "NAN"):
        return ""
    words = text.split()
    while len(words) > 1 and _INITIALS.match(words[-1]):
        words.pop()
    return " ".join(words)


def study_labels(studies: pd.DataFrame | None, ids: Iterable[str]) -> dict[str, str]:
    """Readable study labels ("He 2020") from the study table's ``author`` and ``year``.

    The surname is the author field without trailing initials; a missing year gives "n.d.";
    a study without an author (or not in the table) keeps its id.  Labels shared by several
    studies of the table get a, b, ... in table order ("Humrich 2016a"), so the same table
    always gives the same labels.  Returns ``{id: label}`` for ``ids``.
    """
    ids = [str(i) for i in dict.fromkeys(ids)]
    if studies is None or not len(studies) or "author" not in studies.columns:
        return {i: i for i in ids}
    table = studies.drop_duplicates("study")
    years = (pd.to_numeric(table["year"], errors="coerce") if "year" in table.columns
             else pd.Series(np.nan, index=table.index))
    base = {}
    for sid, author, year in zip(table["study"].astype(str), table["author"], years):
        name = _surname(author)
        if name:
            base[sid] = f"{name} {int(year)}" if np.isfinite(year) else f"{name} n.d."
    groups: dict[str, list[str]] = {}
    for sid, lab in base.items():
        groups.setdefault(lab, []).append(sid)
    out = {}
    for lab, members in groups.items():
        for j, sid in enumerate(members):
            out[sid] = lab if len(members) == 1 else f"{lab}{chr(ord('a') + j % 26)}"
    return {i: out.get(i, i) for i in ids}


# --------------------------------------------------------------------------- inferred sensitivity
def _added_rows(ctx: AnalysisContext, statuses) -> pd.DataFrame:
    ex = ctx.excluded
    if "status" not in ex.columns or ex.empty:
        return ex.iloc[0:0]
    return ex[ex["status"].astype(str).str.lower().isin(statuses)].reset_index(drop=True)


def _records(frame: pd.DataFrame) -> list[dict]:
    frame = frame.dropna(axis=1, how="all")
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def inferred_sensitivity_analysis(ctx: AnalysisContext, options: Mapping) -> dict:
    """Every configured model refitted with the rows the status filter left out as INFERRED.

    The evidence dossier keeps INFERRED numbers (a denominator not printed, a qualitative
    statement turned into a count) out of the primary pools and allows them in sensitivity
    analyses only.  This refits the outcome's models (same measure, methods and settings) on
    the primary rows plus the outcome's rows whose status is in ``options["statuses"]``
    (default :data:`SENSITIVITY_STATUSES`).  The fits are the same functions as the primary
    analysis (validated against R metafor 3.8-1 ``rma``/``rma.mh``/``rma.glmm``); this only
    chooses the rows.  ``fits`` holds ``MetaResult.to_dict()``; ``added`` the studies added with
    their status, source and note; ``rows`` their data (used by :func:`fit_variant`).  Without
    such rows: ``{"status": "not run: no inferred rows"}``.
    """
    extra = [str(s).lower() for s in options.get("statuses", SENSITIVITY_STATUSES)]
    statuses = list(dict.fromkeys([*ctx.spec["status"], *extra]))
    added = _added_rows(ctx, extra)
    if added.empty:
        return {"status": f"not run: no {'/'.join(extra)} rows", "statuses": statuses}
    rows = pd.concat([ctx.rows, added], ignore_index=True, sort=False)
    effects = _escalc(ctx.spec["measure"], rows, ctx.spec)
    fits, notes = _fit_all(ctx.spec["methods"], effects, rows, ctx.spec, ctx.outcome)
    notes += [f"{s} left out: {why}" for s, why in effects.dropped]
    return {"status": "ok", "statuses": statuses, "k": int(effects.k), "k_primary": int(ctx.effects.k),
            "added": _provenance(added), "rows": _records(added), "notes": notes,
            "fits": [f.to_dict() for f in fits]}


def sensitivity_fits(analysis: OutcomeAnalysis) -> list[MetaResult]:
    """The stored fits of the inferred-sensitivity analysis (empty when it did not run)."""
    from .results import result_from_dict

    res = analysis.extras.get("inferred_sensitivity") or {}
    return [result_from_dict(f) for f in res.get("fits", [])] if res.get("status") == "ok" else []


# --------------------------------------------------------------------------- variants
def variant_rows(analysis: OutcomeAnalysis, statuses: Iterable[str] | None = None) -> pd.DataFrame:
    """The rows a variant fit uses: those that entered ``analysis``, or, with ``statuses``, the
    rows of the outcome whose status is in ``statuses`` (the primary rows plus the rows the
    inferred-sensitivity analysis stored).  Raises :class:`AnalysisError` when ``statuses`` asks
    for rows that were left out and not stored."""
    rows = analysis.effects.data
    if rows is None:
        raise AnalysisError(f"outcome {analysis.outcome!r}: the per-study rows are not stored")
    if statuses is None:
        return rows
    want = {str(s).strip().lower() for s in statuses if str(s).strip()}
    primary = [str(s).lower() for s in (analysis.extras.get("spec") or DEFAULTS).get("status", [])]
    sens = analysis.extras.get("inferred_sensitivity") or {}
    stored = set(primary) | {str(s).lower() for s in sens.get("statuses", [])}
    missing = sorted(want - stored)
    if missing:
        raise AnalysisError(f"outcome {analysis.outcome!r}: rows with status {', '.join(missing)} are "
                            f"not stored (primary statuses {', '.join(primary)}; switch on "
                            f"analyses/inferred_sensitivity with statuses: [{', '.join(missing)}])")
    parts = [rows]
    if sens.get("rows"):
        parts.append(pd.DataFrame.from_records(sens["rows"]))
    allrows = pd.concat(parts, ignore_index=True, sort=False)
    if "status" not in allrows.columns:
        return allrows
    return allrows[allrows["status"].astype(str).str.lower().isin(want)].reset_index(drop=True)


def fit_variant(analysis: OutcomeAnalysis, measure: str | None = None, method: str | None = None,
                studies: Iterable[str] | None = None, level: float | None = None,
                statuses: Iterable[str] | None = None) -> MetaResult:
    """Fit ``analysis``'s data again with another measure, method, subset of studies or set of
    evidence statuses.

    Used by the reproduction check: a published target may have pooled raw proportions (PR)
    where the outcome is analysed on the logit scale, one dose subgroup only, or a row the
    primary analysis leaves out (``statuses`` including ``inferred``: the rows stored by the
    inferred-sensitivity analysis, see :func:`variant_rows`).  Without ``statuses`` the rows are
    the ones that entered ``analysis`` (``effects.data``); settings come from
    ``analysis.extras["spec"]``.  The fit itself is :mod:`metapool.models` / :mod:`metapool.counts`
    / :mod:`metapool.glmm` (validated against R metafor 3.8-1).
    """
    spec = dict(analysis.extras.get("spec") or DEFAULTS)
    if level is not None:
        spec["level"] = level
    measure = measure or analysis.effects.measure
    method = method or analysis.primary.method
    primary_set = {str(s).lower() for s in spec.get("status", [])}
    if statuses is not None and {str(s).strip().lower() for s in statuses if str(s).strip()} == primary_set:
        statuses = None
    rows = variant_rows(analysis, statuses)
    if studies is not None:
        keep = set(map(str, studies))
        rows = rows[rows["study"].astype(str).isin(keep)].reset_index(drop=True)
    if rows.empty:
        raise AnalysisError(f"outcome {analysis.outcome!r}: no studies left for this variant")
    if (measure == analysis.effects.measure and studies is None and level is None and statuses is None
            and method in [f.method for f in analysis.fits]):
        return analysis.fit(method)
    effects = _escalc(measure, rows, spec)
    if effects.k < 2 and method not in FIXED_METHODS:
        method = "FE"   # with one study every model returns the study's own estimate
    return _fit_one(method, effects, rows, spec)


register_analysis("leave_one_out", leave_one_out_analysis)
register_analysis("cumulative", cumulative_analysis)
register_analysis("influence", influence_analysis)
register_analysis("gosh", gosh_analysis)
register_analysis("small_study", small_study_analysis)
register_analysis("metareg", metareg_analysis)
register_analysis("inferred_sensitivity", inferred_sensitivity_analysis)
