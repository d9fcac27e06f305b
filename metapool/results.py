"""Immutable result objects shared by every layer.

One :class:`EffectSizes` holds the per-study effect sizes of one outcome; one
:class:`MetaResult` holds one pooled model fitted to them.  Tables, JSON files and
figures are all produced from these objects, so a figure can never disagree with
its table.

Scales
------
Every number in a :class:`MetaResult` is on the *analysis* scale (logit, log ratio,
Freeman-Tukey, ...).  The reporting scale (proportion, ratio) is obtained with
:meth:`MetaResult.reporting`, which applies :func:`metapool.transforms.back_transform`
to the estimate, the confidence interval and the prediction interval.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd


def _frozen_array(x) -> np.ndarray:
    a = np.array(x, dtype=float, copy=True)
    a.setflags(write=False)
    return a


def _jsonable(v: Any) -> Any:
    """Convert numpy scalars/arrays and NaN to plain JSON-compatible values (NaN -> None)."""
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) else f
    return v


@dataclass(frozen=True)
class EffectSizes:
    """Per-study effect sizes of one outcome, on the analysis scale.

    Attributes
    ----------
    measure : str
        Effect-size measure (PR, PLO, PAS, PFT, RR, OR, RD, MD, SMD, SMCR, SMCC, GEN).
    kind : str
        Input kind read from the columns: ``proportion``, ``binary``, ``continuous``,
        ``prepost`` or ``generic``.
    study : tuple of str
        Study labels, in input order (after dropping studies, see ``dropped``).
    yi, vi : ndarray
        Effect sizes and their sampling variances.
    ni : ndarray or None
        Total sample size per study (used by the Freeman-Tukey back-transform and
        Peters' test); None when unknown (generic input).
    data : pandas.DataFrame
        The input rows that were used, in the same order as ``study`` (raw columns such as
        events/total or mean/sd/n, for forest-plot columns).
    notes : tuple of str
        Human-readable notes on choices made (continuity correction applied to which
        studies, the pre/post correlation used and its source, conversions).
    dropped : tuple of (str, str)
        Studies left out and why (e.g. double-zero studies).
    """

    measure: str
    kind: str
    study: tuple
    yi: np.ndarray
    vi: np.ndarray
    ni: np.ndarray | None = None
    data: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    notes: tuple = ()
    dropped: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "study", tuple(str(s) for s in self.study))
        object.__setattr__(self, "yi", _frozen_array(self.yi))
        object.__setattr__(self, "vi", _frozen_array(self.vi))
        if self.ni is not None:
            object.__setattr__(self, "ni", _frozen_array(self.ni))
        if not (len(self.study) == self.yi.shape[0] == self.vi.shape[0]):
            raise ValueError("study, yi and vi must have the same length")

    @property
    def k(self) -> int:
        return len(self.study)

    @property
    def sei(self) -> np.ndarray:
        return np.sqrt(self.vi)

    def to_frame(self) -> pd.DataFrame:
        """One row per study: ``study, yi, vi, sei`` (+ ``ni`` when known)."""
        df = pd.DataFrame({"study": self.study, "yi": self.yi, "vi": self.vi, "sei": self.sei})
        if self.ni is not None:
            df["ni"] = self.ni
        return df


@dataclass(frozen=True)
class MetaResult:
    """One fitted fixed- or random-effects model (analysis scale).

    Field names follow ``results/summary.csv`` (see DESIGN.md) and the ``expected``
    keys of ``tests/metafor_cases.json``.  Quantities that do not apply to a model
    (tau² of a fixed-effect model, the prediction interval of a Mantel-Haenszel fit)
    are NaN.

    Attributes
    ----------
    measure, method, test : str
        Effect measure; estimator (FE, DL, REML, ML, PM, HE, SJ, EB, HS, MH, PETO, GLMM);
        inference (``z`` normal, ``knha`` Hartung-Knapp-Sidik-Jonkman t(k-1)).
    level : float
        Confidence level, e.g. 0.95.
    pi_method : str
        Prediction-interval convention: ``metafor`` (normal quantile under z, t(k-1)
        under knha) or ``higgins`` (t(k-2)).
    study : tuple of str
        Labels of the studies in the fit.
    yi, vi : ndarray
        Effect sizes and variances the model was fitted to.
    weights : ndarray
        Per-study weights in percent (sum to 100).
    ni : ndarray or None
        Per-study total n (for the Freeman-Tukey back-transform).
    k, estimate, se, stat, pval, ci_lb, ci_ub, df : numbers
        Pooled estimate and its inference; ``df`` is the t degrees of freedom (NaN for z).
    pi_lb, pi_ub : float
        Prediction interval (analysis scale).
    tau2, tau2_ci_lb, tau2_ci_ub, I2, I2_ci_lb, I2_ci_ub, H2, H2_ci_lb, H2_ci_ub : float
        Heterogeneity; CIs by the Q-profile method.
    Q, Q_df, Q_pval : float
        Cochran's Q test of heterogeneity.
    notes : tuple of str
        Choices and warnings (e.g. "REML did not converge by Fisher scoring; maximum
        found by bounded search").
    """

    measure: str
    method: str
    test: str
    level: float
    study: tuple
    yi: np.ndarray
    vi: np.ndarray
    weights: np.ndarray
    k: int
    estimate: float
    se: float
    stat: float
    pval: float
    ci_lb: float
    ci_ub: float
    pi_lb: float = math.nan
    pi_ub: float = math.nan
    df: float = math.nan
    tau2: float = math.nan
    tau2_ci_lb: float = math.nan
    tau2_ci_ub: float = math.nan
    I2: float = math.nan
    I2_ci_lb: float = math.nan
    I2_ci_ub: float = math.nan
    H2: float = math.nan
    H2_ci_lb: float = math.nan
    H2_ci_ub: float = math.nan
    Q: float = math.nan
    Q_df: float = math.nan
    Q_pval: float = math.nan
    pi_method: str = "metafor"
    ni: np.ndarray | None = None
    notes: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "study", tuple(str(s) for s in self.study))
        for name in ("yi", "vi", "weights"):
            object.__setattr__(self, name, _frozen_array(getattr(self, name)))
        if self.ni is not None:
            object.__setattr__(self, "ni", _frozen_array(self.ni))

    @property
    def is_random(self) -> bool:
        return self.method not in ("FE", "EE", "MH", "PETO")

    def reporting(self) -> dict:
        """Estimate, CI and PI on the reporting scale (see :mod:`metapool.transforms`)."""
        from .transforms import back_transform

        keys = ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub")
        vals = np.array([getattr(self, k) for k in keys], dtype=float)
        back = back_transform(self.measure, vals, ni=self.ni)
        return dict(zip(keys, (float(x) for x in back)))

    def to_dict(self) -> dict:
        """All fields as plain JSON-compatible values, plus ``reporting`` (back-transformed)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["reporting"] = self.reporting()
        return _jsonable(d)

    def to_frame(self) -> pd.DataFrame:
        """One-row frame of the scalar fields (analysis scale) and ``*_back`` reporting values."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("study", "yi", "vi", "weights", "ni", "notes")}
        d["notes"] = "; ".join(self.notes)
        for k, v in self.reporting().items():
            d[f"{k}_back"] = v
        return pd.DataFrame([d])

    def study_frame(self) -> pd.DataFrame:
        """Per-study rows: ``study, yi, vi, ci_lb, ci_ub, weight`` (analysis scale, normal CI)."""
        from scipy.stats import norm

        z = norm.ppf(0.5 + self.level / 2)
        se = np.sqrt(self.vi)
        return pd.DataFrame({"study": self.study, "yi": self.yi, "vi": self.vi,
                             "ci_lb": self.yi - z * se, "ci_ub": self.yi + z * se,
                             "weight": self.weights})


def _array_or_none(v):
    return None if v is None else np.array([math.nan if x is None else x for x in v], dtype=float)


def effects_from_dict(d: Mapping) -> EffectSizes:
    """Rebuild an :class:`EffectSizes` from :meth:`EffectSizes.to_dict` output."""
    data = pd.DataFrame(d["data"]) if d.get("data") is not None else None
    return EffectSizes(measure=d["measure"], kind=d["kind"], study=tuple(d["study"]),
                       yi=_array_or_none(d["yi"]), vi=_array_or_none(d["vi"]),
                       ni=_array_or_none(d.get("ni")), data=data,
                       notes=tuple(d.get("notes", ())),
                       dropped=tuple(tuple(x) for x in d.get("dropped", ())))


def _effects_to_dict(self: EffectSizes) -> dict:
    d = {"measure": self.measure, "kind": self.kind, "study": list(self.study),
         "yi": self.yi, "vi": self.vi, "ni": self.ni, "notes": list(self.notes),
         "dropped": [list(x) for x in self.dropped],
         "data": None if self.data is None else self.data.to_dict(orient="records")}
    return _jsonable(d)


EffectSizes.to_dict = _effects_to_dict


def result_from_dict(d: Mapping) -> MetaResult:
    """Rebuild a :class:`MetaResult` from :meth:`MetaResult.to_dict` output."""
    names = {f.name for f in dataclasses.fields(MetaResult)}
    kw = {}
    for k, v in d.items():
        if k not in names:
            continue
        if k in ("yi", "vi", "weights", "ni"):
            v = _array_or_none(v)
        elif k in ("study", "notes"):
            v = tuple(v)
        elif v is None:
            v = math.nan
        kw[k] = v
    return MetaResult(**kw)


@dataclass(frozen=True)
class OutcomeAnalysis:
    """Everything computed for one outcome: the one object that tables, JSON and figures read.

    Attributes
    ----------
    outcome : str
        Outcome key (the ``{outcome}`` wildcard).
    label : str
        Human-readable outcome label.
    effects : EffectSizes
        Per-study effect sizes.
    fits : tuple of MetaResult
        Pooled models, fixed effect(s) first, then random effects. The first random-effects
        fit is the primary model.
    extras : dict
        JSON-compatible results of further analyses (subgroups, sensitivity, bias, ...),
        keyed by analysis name.
    """

    outcome: str
    label: str
    effects: EffectSizes
    fits: tuple
    extras: Mapping = field(default_factory=dict)

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

    def to_dict(self) -> dict:
        return _jsonable({"outcome": self.outcome, "label": self.label,
                          "effects": self.effects.to_dict(),
                          "fits": [f.to_dict() for f in self.fits],
                          "extras": dict(self.extras)})

    @classmethod
    def from_dict(cls, d: Mapping) -> "OutcomeAnalysis":
        return cls(outcome=d["outcome"], label=d["label"],
                   effects=effects_from_dict(d["effects"]),
                   fits=tuple(result_from_dict(f) for f in d["fits"]),
                   extras=d.get("extras", {}))
