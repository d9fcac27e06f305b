"""One outcome, end to end: rows -> effect sizes -> every configured model and analysis.

:func:`analyse_outcome` is what the workflow's per-outcome job calls (through
:mod:`metapool.jobs.analyse_outcome`).  It returns one :class:`OutcomeAnalysis`: a frozen, typed record of
everything computed for the outcome (every model, every further analysis, the reproduction checks
of the published targets that name the outcome).  ``results/pooled/{outcome}.json`` is its
``to_dict()``; the tables, figures and the report read it and compute nothing.

Which further analyses exist, their options and minimum k are named in :mod:`metapool.registry`;
:data:`RUNNERS` maps each name to the function that runs it, ``f(ctx, options) -> record or
NotRun``.  An analysis that cannot be computed (too few studies, a degenerate design) returns a
:class:`~metapool.results.NotRun` with the reason; the rest of the outcome goes on.

Validated against
-----------------
The statistics are delegated to :mod:`metapool.effects`, :mod:`metapool.models`,
:mod:`metapool.counts`, :mod:`metapool.glmm`, :mod:`metapool.sensitivity`, :mod:`metapool.bias`,
:mod:`metapool.subgroups` and :mod:`metapool.metareg`, each validated against R metafor 3.8-1.
This module selects rows and orders the fits; ``tests/test_analysis.py`` checks that every stored
analysis equals the direct call of its function.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from . import registry
from .bias import RankTest, RegressionTest, TrimFill
from .metareg import MetaRegression
from .results import EffectSizes, MetaResult, NotRun, Record
from .rows import as_records
from .sensitivity import Cumulative, GoshResult, Influence, LeaveOneOut
from .spec import OutcomeSpec, resolve_spec
from .subgroups import SubgroupAnalysis

__all__ = ["analyse_outcome", "OutcomeAnalysis", "InferredSensitivity", "SmallStudy", "MetaregAnalysis",
           "AnalysisError", "AnalysisContext", "RUNNERS", "study_labels", "fit_method", "figure_kinds",
           "resolve_spec"]


class AnalysisError(ValueError):
    """An outcome cannot be analysed as configured (message says which outcome and why)."""


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class InferredSensitivity(Record):
    """Every configured model refitted with the rows the status filter left out (e.g. INFERRED).

    ``statuses``: the statuses of the rows pooled here; ``added``: provenance of the added rows;
    ``rows``: their data; ``fits``: one per configured method (same settings as the primary)."""

    statuses: tuple
    k: int
    k_primary: int
    added: tuple
    rows: tuple
    notes: tuple
    fits: tuple[MetaResult, ...]
    effects: EffectSizes | None = None

    def fit(self, method: str) -> MetaResult | None:
        return next((f for f in self.fits if f.method == method), None)


@dataclass(frozen=True)
class SmallStudy(Record):
    """Small-study effects of the primary inverse-variance model: Egger's regression test, Peters'
    test (two-arm counts), Begg's rank test and trim-and-fill; ``power_note`` when k < 10."""

    method: str
    k: int
    power_note: str | None
    egger: RegressionTest | NotRun
    begg: RankTest | NotRun
    trim_and_fill: TrimFill | NotRun
    peters: RegressionTest | NotRun | None = None


@dataclass(frozen=True)
class MetaregAnalysis(Record):
    """Meta-regression on study-level moderators, with the moderator values it used (``data``),
    the studies left out for a missing value (``dropped``) and whether a bubble plot applies."""

    fit_method: str
    moderators: tuple
    bubble: bool
    dropped: tuple
    data: tuple
    regression: MetaRegression


@dataclass(frozen=True)
class ReferenceTest(Record):
    """A single-arm proportion's test against the configured ``reference_proportion``: ``null``
    on the reporting scale, ``null_analysis`` on the fit's scale, z (or t under knha) and p."""

    method: str
    null: float
    null_analysis: float
    stat: float
    pval: float


@dataclass(frozen=True)
class OutcomeAnalysis(Record):
    """Everything computed for one outcome; ``results/pooled/{outcome}.json`` is its ``to_dict()``.

    Attributes
    ----------
    outcome, label : str
    spec : OutcomeSpec
        The resolved settings.
    effects : EffectSizes
        Per-study effect sizes of the primary pool.
    fits : tuple of MetaResult
        Fixed effect(s) first, then random effects; the first random-effects fit is the primary.
    notes : tuple of str
        Row selection, inferred and converted numbers, models not fitted.
    provenance : tuple of dict
        Every row of the outcome (``study, status, source, quote, note, conversion, timepoint``)
        with ``pooled``: True for the primary pool, False for a row left out by its status.
    study_labels : dict
        Study key -> readable label ("He 2020"), used in every table and figure.
    glmm : NotRun or None
        Why a configured GLMM could not be fitted.
    subgroups, leave_one_out, cumulative, influence, gosh, small_study, metareg,
    inferred_sensitivity : record, NotRun or None
        The further analyses (None: not switched on).
    reproduction : tuple
        :class:`metapool.reproduce.TargetCheck` of each published target naming this outcome.
    figures : tuple of str
        The figure kinds drawn for the outcome (:data:`metapool.registry.FIGURE_KINDS`).
    """

    outcome: str
    label: str
    spec: OutcomeSpec
    effects: EffectSizes
    fits: tuple[MetaResult, ...]
    notes: tuple = ()
    provenance: tuple = ()
    study_labels: dict = field(default_factory=dict)
    glmm: NotRun | None = None
    subgroups: SubgroupAnalysis | NotRun | None = None
    leave_one_out: LeaveOneOut | NotRun | None = None
    cumulative: Cumulative | NotRun | None = None
    influence: Influence | NotRun | None = None
    gosh: GoshResult | NotRun | None = None
    small_study: SmallStudy | NotRun | None = None
    metareg: MetaregAnalysis | NotRun | None = None
    inferred_sensitivity: InferredSensitivity | NotRun | None = None
    reproduction: tuple = ()
    reference_tests: tuple[ReferenceTest, ...] = ()
    figures: tuple = ()

    @classmethod
    def from_dict(cls, d: Mapping):
        from .reproduce import TargetCheck

        obj = super().from_dict({k: v for k, v in d.items() if k != "reproduction"})
        checks = tuple(TargetCheck.from_dict(x) for x in d.get("reproduction") or ())
        return dataclasses.replace(obj, reproduction=checks)

    def fit(self, method: str) -> MetaResult:
        """The fit with the given method name (e.g. ``"FE"``, ``"REML"``)."""
        for f in self.fits:
            if f.method == method:
                return f
        raise KeyError(f"outcome {self.outcome!r} has no {method} fit "
                       f"(have: {', '.join(f.method for f in self.fits)})")

    @property
    def primary(self) -> MetaResult:
        """The first random-effects fit, or the first fit if there is none."""
        return next((f for f in self.fits if f.is_random), self.fits[0])

    @property
    def k(self) -> int:
        return self.effects.k

    def label_of(self, study: str) -> str:
        return self.study_labels.get(study, study)

    def analysis(self, name: str):
        """The result of further analysis ``name`` (record, NotRun or None)."""
        return getattr(self, name)


# --------------------------------------------------------------------------- context
@dataclass
class AnalysisContext:
    """What an analysis function receives: the outcome's spec, rows, study table and main fits."""

    outcome: str
    spec: OutcomeSpec
    rows: list
    studies: list
    effects: EffectSizes
    fits: tuple
    excluded: list = field(default_factory=list)

    @property
    def primary(self) -> MetaResult:
        return next((f for f in self.fits if f.is_random), self.fits[0])

    def iv_fit(self) -> MetaResult:
        """The inverse-variance model the further analyses refit: the first random-effects
        inverse-variance fit, else the first fixed one, else a REML fit (MH, Peto and the GLMM
        are not refitted from yi/vi)."""
        iv = [f for f in self.fits if registry.METHODS[f.method].pools == "effects"]
        if iv:
            return next((f for f in iv if f.is_random), iv[0])
        from .models import fit

        return fit(self.effects, method="REML", test=self.spec.test, level=self.spec.level,
                   pi_method=self.spec.pi_method)

    def study_values(self, column: str) -> list:
        """Values of ``column`` per study of ``effects`` (outcome rows first, then the study table;
        None where missing).  Raises AnalysisError when neither has the column."""
        for table in (self.rows, self.studies):
            if any(column in r for r in table):
                values = {}
                for r in table:
                    values.setdefault(str(r.get("study")), r.get(column))
                return [_missing_to_none(values.get(s)) for s in self.effects.study]
        raise AnalysisError(f"outcome {self.outcome!r}: column {column!r} is neither in the outcome rows "
                            f"nor in the study table")


def _missing_to_none(v):
    if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
        return None
    return v


# --------------------------------------------------------------------------- fitting
def _escalc(measure: str, rows, spec: OutcomeSpec) -> EffectSizes:
    from .effects import escalc

    cc = spec.continuity
    return escalc(measure, rows, add=cc.get("add"), to=cc.get("to", "only0"), drop00=cc.get("drop00", False),
                  r=spec.r, r_source="set in config.yaml" if spec.r_given else
                  "metapool's default: no study reports r", conversion=spec.conversion)


def fit_method(method: str, effects: EffectSizes, rows, spec: OutcomeSpec, *, measure: str | None = None,
               test: str | None = None) -> MetaResult:
    """Fit one method to an outcome's effect sizes (MH/Peto on the 2x2 tables, the GLMM on the
    counts); the only place where a method name is turned into a fit."""
    measure = measure or effects.measure
    test = test or spec.test
    why = registry.method_problem(effects.kind, measure, method)
    if why:
        raise AnalysisError(why)
    kind = registry.METHODS[method].pools
    used = [r for r in as_records(rows) if str(r.get("study")) in set(effects.study)]
    if kind == "counts":
        from . import counts

        cc = spec.continuity
        kw = {"level": spec.level, "to": cc.get("to", "only0"), "add": cc.get("add", 0.5)}
        if method == "MH":
            return counts.mantel_haenszel(used, measure, **kw)
        return counts.peto(used, **kw)
    if kind == "binomial":
        from .glmm import glmm_proportion
        from .rows import numbers

        return glmm_proportion(numbers(used, "events"), numbers(used, "total"), level=spec.level,
                               study=[str(r["study"]) for r in used])
    from .models import fit

    if effects.k == 1 and test == "knha":
        res = fit(effects, method=method, test="z", level=spec.level, pi_method=spec.pi_method)
        return dataclasses.replace(res, notes=res.notes + (
            "Knapp-Hartung needs k >= 2: normal (z) inference used, as metafor does",))
    return fit(effects, method=method, test=test, level=spec.level, pi_method=spec.pi_method)


def _fit_all(effects: EffectSizes, rows, spec: OutcomeSpec, outcome: str) -> tuple:
    fits, notes, glmm = [], [], None
    for m in spec.methods:
        if effects.k < 2 and not registry.is_fixed(m):
            if registry.METHODS[m].pools == "binomial":
                glmm = NotRun(f"k = {effects.k} (random-effects models need 2 studies)")
            notes.append(f"{m} not fitted: k = {effects.k} (random-effects models need 2 studies)")
            continue
        try:
            fits.append(fit_method(m, effects, rows, spec))
        except AnalysisError as exc:
            raise AnalysisError(f"outcome {outcome!r}: {exc}") from None
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            if registry.METHODS[m].pools != "binomial":
                raise
            glmm = NotRun(str(exc))      # the GLMM failed (GLMMError is a RuntimeError)
            notes.append(f"{m} not fitted: {exc}")     # the inverse-variance models go on
    if not fits:
        fixed = next((m for m in registry.METHODS if registry.is_fixed(m)
                      and registry.method_problem(effects.kind, effects.measure, m) is None), "FE")
        fits.append(fit_method(fixed, effects, rows, spec))
        notes.append(f"{fixed} fitted to show the single study: no configured model applies with "
                     f"k = {effects.k}")
    return fits, notes, glmm


# --------------------------------------------------------------------------- provenance
_PROVENANCE = ("study", "status", "source", "quote", "note", "conversion", "timepoint")


def _provenance(rows, pooled: bool) -> list:
    return [{**{c: r.get(c) for c in _PROVENANCE if r.get(c) is not None}, "pooled": pooled}
            for r in rows]


def _row_notes(rows, excluded, spec: OutcomeSpec) -> list:
    notes = []
    if excluded:
        notes.append("Left out of the primary pool (status not in " + ", ".join(spec.status) + "): "
                     + "; ".join(f"{r['study']} ({r.get('status')})" for r in excluded))
    inferred = [r["study"] for r in rows if r.get("status") == "inferred"]
    if inferred:
        notes.append("Inferred numbers entered the primary pool (an assumption, see source): "
                     + ", ".join(inferred))
    return notes


def _boundary_notes(effects: EffectSizes) -> list:
    """Single-arm studies with 0 or n events: the observed proportion and its exact
    (Clopper-Pearson) interval, since a continuity-corrected logit does not show 0% or 100%."""
    if effects.kind != "proportion" or not effects.data or effects.measure not in ("PLO", "PR", "PAS"):
        return []
    from .dist import beta_ppf

    out = []
    for s, r in zip(effects.study, effects.data):
        xi, ni = float(r["events"]), float(r["total"])
        if xi not in (0.0, ni):
            continue
        lo = 0.0 if xi == 0 else float(beta_ppf(0.025, xi, ni - xi + 1))
        hi = 1.0 if xi == ni else float(beta_ppf(0.975, xi + 1, ni - xi))
        out.append(f"{s}: {int(xi)}/{int(ni)} observed = {100 * xi / ni:.0f}% (exact 95% CI "
                   f"{100 * lo:.1f}% to {100 * hi:.1f}%); the {effects.measure} effect size adds a "
                   f"continuity correction, so its study estimate is not exactly {100 * xi / ni:.0f}%")
    return out


# --------------------------------------------------------------------------- the outcome
def analyse_outcome(outcome: str, spec: OutcomeSpec | Mapping, rows, studies=None, *,
                    defaults: Mapping | None = None, targets: Sequence[Mapping] = ()) -> OutcomeAnalysis:
    """Analyse one outcome as configured.

    Parameters
    ----------
    outcome : str
        Outcome key (``outcome`` column of the tables; ``{outcome}`` wildcard).
    spec : OutcomeSpec or mapping
        The outcome's resolved settings, or its ``config.yaml`` entry (resolved with ``defaults``).
    rows : records, mapping of columns or DataFrame
        The outcome's data rows (all statuses; rows of other outcomes are ignored).
    studies : records or DataFrame, optional
        Study-table rows (``study`` key plus attributes such as ``dose_regimen`` for subgroups).
    targets : sequence of mappings
        Published targets naming this outcome (rows of ``published_targets.csv``): each is
        audited and compared (:mod:`metapool.reproduce`).

    Returns
    -------
    OutcomeAnalysis
    """
    if not isinstance(spec, OutcomeSpec):
        spec = resolve_spec(spec, defaults)
    rows = [r for r in as_records(rows) if r.get("outcome") in (None, outcome)]
    studies = as_records(studies)
    primary = [r for r in rows if str(r.get("status", "")).lower() in spec.status or "status" not in r]
    excluded = [r for r in rows if r not in primary]
    if not primary:
        left = sorted({str(r.get("status")) for r in excluded})
        raise AnalysisError(f"outcome {outcome!r}: no data rows with status in {list(spec.status)} "
                            f"({len(excluded)} row(s) left out by status: {', '.join(left)}); inferred "
                            f"numbers are for sensitivity analyses only")
    effects = _escalc(spec.measure, primary, spec)
    if effects.k == 0:
        raise AnalysisError(f"outcome {outcome!r}: no study has an estimable effect size ("
                            + "; ".join(f"{s}: {why}" for s, why in effects.dropped) + ")")
    fits, fit_notes, glmm = _fit_all(effects, primary, spec, outcome)
    notes = _row_notes(primary, excluded, spec) + fit_notes
    notes += [f"{s} left out: {why}" for s, why in effects.dropped]
    notes += _boundary_notes(effects)
    ctx = AnalysisContext(outcome, spec, primary, studies, effects, tuple(fits), excluded=excluded)
    results = {}
    if spec.subgroup:
        results["subgroups"] = subgroup_analysis(ctx, {"by": spec.subgroup})
    for name, options in spec.analyses.items():
        results[name] = _run(name, ctx, options)
    labels = study_labels(studies, [r["study"] for r in rows])
    refs = tuple(reference_tests(fits, spec.reference_proportion)) if spec.reference_proportion else ()
    analysis = OutcomeAnalysis(
        outcome=outcome, label=spec.label, spec=spec, effects=effects, fits=tuple(fits), notes=tuple(notes),
        provenance=tuple(_provenance(primary, True) + _provenance(excluded, False)),
        study_labels=labels, glmm=glmm, reference_tests=refs, **results)
    if targets:
        from .reproduce import check_targets

        analysis = dataclasses.replace(analysis, reproduction=tuple(check_targets(analysis, ctx, targets)))
    return dataclasses.replace(analysis, figures=tuple(figure_kinds(analysis)))


def reference_tests(fits, p0: float) -> list:
    """Each fit's test of H0: proportion = ``p0`` on its analysis scale (z, or t(k-1) under knha)."""
    from . import dist
    from .transforms import forward_transform

    out = []
    for f in fits:
        g = float(forward_transform(f.measure, p0, ni=f.ni))
        stat = (f.estimate - g) / f.se if f.se > 0 else math.nan
        if f.test == "knha" and math.isfinite(f.df):
            pval = float(2 * dist.t_sf(abs(stat), f.df))
        else:
            pval = float(2 * dist.norm_sf(abs(stat)))
        out.append(ReferenceTest(method=f.method, null=p0, null_analysis=g, stat=stat, pval=pval))
    return out


def _run(name: str, ctx: AnalysisContext, options: Mapping):
    """Run analysis ``name``; a degenerate case becomes NotRun with the reason."""
    try:
        return RUNNERS[name](ctx, options)
    except AnalysisError:
        raise
    except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return NotRun(str(exc))


def figure_kinds(analysis: OutcomeAnalysis) -> list:
    """The figures drawn for an outcome: the forest plot, the funnel plot when k >= 3, and each
    diagnostic figure whose analysis ran (bubble: one numeric moderator)."""
    out = ["forest"]
    if analysis.k >= FUNNEL_MIN_K:
        out.append("funnel")
    for kind in registry.DIAGNOSTIC_FIGURES:
        res = getattr(analysis, registry.FIGURE_SOURCE[kind])
        if res is None or isinstance(res, NotRun):
            continue
        if kind == "bubble" and not res.bubble:
            continue
        out.append(kind)
    return out


#: A funnel plot of fewer studies says nothing about small-study effects (not drawn).
FUNNEL_MIN_K = 3


# --------------------------------------------------------------------------- subgroups
def _group_labels(ctx: AnalysisContext, by: str) -> list:
    return ["not reported" if v is None else str(v) for v in ctx.study_values(by)]


def subgroup_analysis(ctx: AnalysisContext, options: Mapping):
    """Pool per subgroup and test for subgroup differences (:mod:`metapool.subgroups`).

    The grouping column (``options["by"]``) is read from the outcome rows or the study table;
    studies without a value form the group "not reported".  The model is the outcome's first
    inverse-variance random-effects method (FE if none); ``common_tau2`` holds the same analysis
    with one tau² shared by all subgroups (random effects only).  With fewer than two values:
    NotRun saying so.
    """
    from .subgroups import subgroup_analysis as _subgroups

    by = options["by"]
    labels = _group_labels(ctx, by)
    levels = {lev: labels.count(lev) for lev in sorted(set(labels))}
    if len(levels) < 2:
        only = next(iter(levels), "none")
        return NotRun(f"all {ctx.effects.k} {'study has' if ctx.effects.k == 1 else 'studies have'} "
                      f"{by} = {only!r}")
    method = ctx.iv_fit().method
    kw = {"groups": labels, "method": method, "test": ctx.spec.test, "level": ctx.spec.level, "by": by}
    res = _subgroups(ctx.effects, **kw)
    common = None
    if not registry.is_fixed(method):
        try:
            common = _subgroups(ctx.effects, tau2="common", **kw)
        except (ValueError, np.linalg.LinAlgError) as exc:
            common = NotRun(str(exc))
    return dataclasses.replace(res, levels=levels, common_tau2=common)


# --------------------------------------------------------------------------- further analyses
def _too_few(k: int, options: Mapping) -> NotRun | None:
    min_k = int(options.get("min_k", 1))
    if k < min_k:
        return NotRun(f"k = {k} < {min_k}")
    return None


def leave_one_out_analysis(ctx: AnalysisContext, options: Mapping):
    """Leave-one-out refits of the primary inverse-variance model (metafor ``leave1out``)."""
    from .sensitivity import leave_one_out

    fit = ctx.iv_fit()
    return _too_few(fit.k, options) or leave_one_out(fit)


def _numeric(values: list):
    """The values as floats if every non-missing one is a number, else None."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            try:
                out.append(float(str(v)))
            except ValueError:
                return None
    return out


def cumulative_analysis(ctx: AnalysisContext, options: Mapping):
    """Cumulative meta-analysis ordered by ``options["order"]`` (default the study-table ``year``;
    studies without a value are added last, in input order), metafor ``cumul``."""
    from .sensitivity import cumulative

    fit = ctx.iv_fit()
    skip = _too_few(fit.k, options)
    if skip:
        return skip
    by = options.get("order", "year")
    decreasing = bool(options.get("decreasing", False))
    raw = ctx.study_values(by)
    num = _numeric(raw)
    missing = [s for s, v in zip(fit.study, raw) if v is None]
    notes = [f"no {by} for {', '.join(missing)}: added last"] if missing else []
    if num is not None:
        fill = -math.inf if decreasing else math.inf
        key = np.array([fill if v is None else v for v in num], dtype=float)
    else:
        key = np.array(["\uffff" if v is None else str(v) for v in raw], dtype=object)
    return cumulative(fit, order=key, decreasing=decreasing, order_by=by, notes=notes)


def influence_analysis(ctx: AnalysisContext, options: Mapping):
    """Case-deletion diagnostics (metafor ``influence``) with the influential studies flagged,
    and the Baujat coordinates (metafor ``baujat``)."""
    from .sensitivity import influence

    fit = ctx.iv_fit()
    return _too_few(fit.k, options) or influence(fit)


def gosh_analysis(ctx: AnalysisContext, options: Mapping):
    """GOSH (metafor ``gosh``): the model fitted to all subsets (k <= 16) or a seeded random sample
    of ``subsets`` subsets."""
    from .sensitivity import gosh

    fit = ctx.iv_fit()
    return _too_few(fit.k, options) or gosh(fit, subsets=int(options.get("subsets", 65_535)),
                                            seed=int(options.get("seed", 1)))


def small_study_analysis(ctx: AnalysisContext, options: Mapping):
    """Small-study effects (:mod:`metapool.bias`): Egger's test, Peters' test (two-arm counts),
    Begg's rank test and trim-and-fill, each NotRun with the reason where it cannot be computed."""
    from . import bias

    fit = ctx.iv_fit()
    skip = _too_few(fit.k, options)
    if skip:
        return skip
    y, v = np.asarray(fit.yi, float), np.asarray(fit.vi, float)
    level, model = ctx.spec.level, options.get("model", "lm")

    def attempt(run):
        try:
            return run()
        except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as exc:
            return NotRun(str(exc))

    peters = None
    if ctx.effects.kind == "binary" and fit.ni is not None:
        peters = attempt(lambda: bias.peters_test(y, v, fit.ni, model=model, method=fit.method, level=level))
    return SmallStudy(
        method=fit.method, k=fit.k, power_note=bias._power_note(fit.k),
        egger=attempt(lambda: bias.egger_test(y, v, model=model, method=fit.method, level=level)),
        begg=attempt(lambda: bias.begg_test(y, v)),
        trim_and_fill=attempt(lambda: bias.trim_and_fill(
            y, v, estimator=options.get("estimator", "L0"), method=fit.method, test=fit.test, level=level,
            measure=fit.measure, study=fit.study, ni=fit.ni)),
        peters=peters)


def metareg_analysis(ctx: AnalysisContext, options: Mapping):
    """Mixed-effects meta-regression on ``options["moderators"]`` (study-table or row columns;
    :func:`metapool.metareg.meta_regression` with the primary model's tau² estimator)."""
    from .metareg import meta_regression

    names = list(options.get("moderators") or [])
    if not names:
        raise AnalysisError(f"outcome {ctx.outcome!r}: analyses/metareg needs moderators: [column, ...]")
    fit = ctx.iv_fit()
    values = {n: ctx.study_values(n) for n in names}
    for n in names:
        num = _numeric(values[n])
        if num is not None:
            values[n] = num
    keep = [all(values[n][i] is not None for n in names) for i in range(fit.k)]
    k = sum(keep)
    n_coef = 1 + sum(1 if _numeric(values[n]) is not None else
                     max(len({v for v, kk in zip(values[n], keep) if kk}) - 1, 0) for n in names)
    min_k = max(int(options.get("min_k", 4)), n_coef + 2)
    dropped = [s for s, kk in zip(fit.study, keep) if not kk]
    if k < min_k:
        return NotRun(f"k = {k} < {min_k}" + (f" ({len(dropped)} without {'/'.join(names)})" if dropped else ""))
    kept = {n: [v for v, kk in zip(values[n], keep) if kk] for n in names}
    flat = [n for n in names if len(set(kept[n])) < 2]
    if flat:
        return NotRun(f"{', '.join(flat)} takes one value only")
    idx = np.flatnonzero(keep)
    reg = meta_regression(np.asarray(fit.yi)[idx], np.asarray(fit.vi)[idx], kept, method=fit.method,
                          test=fit.test, level=fit.level, study=[fit.study[i] for i in idx])
    numeric = len(names) == 1 and _numeric(kept[names[0]]) is not None
    data = tuple({"study": fit.study[i], **{n: values[n][i] for n in names}} for i in idx)
    return MetaregAnalysis(fit_method=fit.method, moderators=tuple(names), bubble=bool(numeric and reg.p == 2),
                           dropped=tuple(dropped), data=data, regression=reg)


def inferred_sensitivity_analysis(ctx: AnalysisContext, options: Mapping):
    """Every configured model refitted with the rows the status filter left out as INFERRED.

    The evidence dossier keeps INFERRED numbers (a denominator not printed, a qualitative
    statement turned into a count) out of the primary pools and allows them in sensitivity
    analyses only.  This refits the outcome's models (same measure, methods and settings) on the
    primary rows plus the outcome's rows whose status is in ``options["statuses"]``.
    """
    extra = [str(s).lower() for s in options.get("statuses", registry.SENSITIVITY_STATUSES)]
    statuses = tuple(dict.fromkeys([*ctx.spec.status, *extra]))
    added = [r for r in ctx.excluded if str(r.get("status")).lower() in extra]
    if not added:
        return NotRun(f"no {'/'.join(extra)} rows")
    rows = ctx.rows + added
    effects = _escalc(ctx.spec.measure, rows, ctx.spec)
    fits, notes, _ = _fit_all(effects, rows, ctx.spec, ctx.outcome)
    notes += [f"{s} left out: {why}" for s, why in effects.dropped]
    keep = ("study", "outcome", "status", "events", "total", "events_treat", "total_treat", "events_ctrl",
            "total_ctrl", "mean_pre", "sd_pre", "mean_post", "sd_post", "n", "r", "median_pre", "q1_pre",
            "q3_pre", "min_pre", "max_pre", "median_post", "q1_post", "q3_post", "min_post", "max_post",
            "mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl", "yi", "vi", "sei",
            "ci_lb", "ci_ub", "conversion")
    return InferredSensitivity(
        statuses=statuses, k=effects.k, k_primary=ctx.effects.k, added=tuple(_provenance(added, False)),
        rows=tuple({c: r[c] for c in keep if r.get(c) is not None} for r in added), notes=tuple(notes),
        fits=tuple(fits), effects=effects)


RUNNERS = {"leave_one_out": leave_one_out_analysis, "cumulative": cumulative_analysis,
           "influence": influence_analysis, "gosh": gosh_analysis, "small_study": small_study_analysis,
           "metareg": metareg_analysis, "inferred_sensitivity": inferred_sensitivity_analysis}
"""Analysis name (:data:`metapool.registry.ANALYSES`) -> the function that runs it."""
assert set(RUNNERS) == set(registry.ANALYSES), "every registered analysis has a runner"


# --------------------------------------------------------------------------- labels
_INITIALS = re.compile(r"^[A-Z]{1,3}\.?$")


def _surname(author) -> str:
    """``"He J"`` -> ``"He"``, ``"von Spee-Mayer C"`` -> ``"von Spee-Mayer"``; "" for NR/empty."""
    text = "" if author is None or (isinstance(author, float) and math.isnan(author)) else str(author)
    text = text.split(",")[0].strip()
    if text.upper() in ("", "NR", "NA", "NAN"):
        return ""
    words = text.split()
    while len(words) > 1 and _INITIALS.match(words[-1]):
        words.pop()
    return " ".join(words)


def study_labels(studies, ids: Iterable[str]) -> dict:
    """Readable study labels ("He 2020") from the study table, the same everywhere.

    A ``label`` column wins where it has a value.  Otherwise the label is the first author's
    surname (without trailing initials) and the year ("n.d." without one); two studies of the table
    that would share a label are told apart by the initials ("Zhang JQ 2022", "Zhang X 2022"), and
    if that is not enough by a, b, ... in table order.  A study without author or label (or not in
    the table) keeps its key.  Returns ``{key: label}`` for ``ids``.
    """
    ids = [str(i) for i in dict.fromkeys(ids)]
    table = as_records(studies)
    if not table:
        return {i: i for i in ids}
    base, initials = {}, {}
    fixed = {}
    for r in table:
        sid = str(r.get("study"))
        if sid in base or sid in fixed:
            continue
        if r.get("label"):
            fixed[sid] = str(r["label"]).strip()
            continue
        name = _surname(r.get("author"))
        if not name:
            continue
        year = r.get("year")
        try:
            year = int(float(year)) if year is not None else None
        except ValueError:
            year = None
        base[sid] = (name, "n.d." if year is None else str(year))
        full = str(r.get("author") or "").split(",")[0].strip()
        initials[sid] = full[len(name):].strip()
    groups: dict = {}
    for sid, (name, year) in base.items():
        groups.setdefault(f"{name} {year}", []).append(sid)
    out = dict(fixed)
    for lab, members in groups.items():
        if len(members) == 1:
            out[members[0]] = lab
            continue
        with_initials = {sid: f"{base[sid][0]} {initials[sid]} {base[sid][1]}".replace("  ", " ")
                         for sid in members}
        if len(set(with_initials.values())) == len(members) and all(initials[s] for s in members):
            out.update(with_initials)
        else:
            for j, sid in enumerate(members):
                out[sid] = f"{lab}{chr(ord('a') + j % 26)}"
    return {i: out.get(i, i) for i in ids}
