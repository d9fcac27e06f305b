"""Immutable, typed result objects shared by every layer, and their JSON round trip.

Every result is a frozen dataclass that inherits :class:`Record`: ``to_dict()`` gives plain JSON
data (NaN as ``None``, arrays as lists, nested results as objects) and ``from_dict()`` rebuilds an
equal object from it, guided by the field types.  One :class:`EffectSizes` holds the per-study
effect sizes of one outcome; one :class:`MetaResult` one pooled model; :class:`NotRun` stands in
for an analysis that could not run, with the reason (never parsed back out of text).  The further
analyses define their own records (:mod:`metapool.sensitivity`, :mod:`metapool.bias`,
:mod:`metapool.subgroups`, :mod:`metapool.metareg`), and :class:`metapool.analysis.OutcomeAnalysis`
holds them all.

Scales
------
Every number in a :class:`MetaResult` is on the *analysis* scale (logit, log ratio,
Freeman-Tukey, ...).  The reporting scale (proportion, ratio) is obtained with
:meth:`MetaResult.reporting`, which applies :func:`metapool.transforms.back_transform`.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

import numpy as np

__all__ = ["Record", "NotRun", "EffectSizes", "MetaResult", "result_from_dict", "effects_from_dict",
           "array_field", "frozen_array", "jsonable"]


# --------------------------------------------------------------------------- JSON helpers
def frozen_array(x, dtype=float) -> np.ndarray:
    a = np.array(x, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


_frozen_array = frozen_array        # older name, used by the analysis modules


def jsonable(v: Any) -> Any:
    """Plain JSON-compatible values: numpy scalars/arrays -> Python, NaN/inf -> None, records -> dicts."""
    if isinstance(v, Record) or (dataclasses.is_dataclass(v) and hasattr(v, "to_dict")):
        return v.to_dict()
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()]
    if isinstance(v, NumberedStudies):
        return list(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if not math.isfinite(f) else f
    return v


_jsonable = jsonable


def array_field(dtype=float, **kw):
    """A dataclass field holding a read-only numpy array of ``dtype`` (float, bool, int or object)."""
    return field(metadata={"dtype": dtype}, **kw)


def _hints(cls) -> dict:
    cache = cls.__dict__.get("_hints_cache")
    if cache is None:
        cache = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
        setattr(cls, "_hints_cache", cache)
    return cache


def _decode(tp, v, f: dataclasses.Field | None = None):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return v
    if origin in (Union, types.UnionType):
        if v is None:
            if type(None) in args:
                return None
            return math.nan if float in args else None
        recs = [a for a in args if isinstance(a, type) and issubclass(a, Record)]
        if recs and isinstance(v, Mapping):
            if NotRun in recs and "not_run" in v:
                return NotRun.from_dict(v)
            others = [a for a in recs if a is not NotRun]
            return others[0].from_dict(v)
        rest = [a for a in args if a is not type(None)]
        return _decode(rest[0], v, f)
    if isinstance(tp, type) and (issubclass(tp, Record) or hasattr(tp, "from_dict")):
        return None if v is None else tp.from_dict(v)
    if tp is np.ndarray:
        if v is None:
            return None
        dtype = (f.metadata.get("dtype", float) if f is not None else float)
        if dtype is float:
            v = [[math.nan if x is None else x for x in row] if isinstance(row, list) else
                 (math.nan if row is None else row) for row in v]
        return frozen_array(v, dtype)
    if origin is tuple or tp is tuple:
        if v is None:
            return ()
        if args and isinstance(args[0], type) and issubclass(args[0], Record):
            return tuple(args[0].from_dict(x) for x in v)
        return tuple(tuple(x) if isinstance(x, list) else x for x in v)
    if tp is float:
        return math.nan if v is None else float(v)
    if tp is int:
        return None if v is None else int(v)
    if tp is bool:
        return bool(v)
    if origin in (dict, Mapping) or tp in (dict, Mapping) or origin is typing.Mapping:
        return {} if v is None else dict(v)
    return v


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class Record:
    """Mixin for frozen result dataclasses: ``to_dict()`` / ``from_dict()`` from the field types.

    Arrays are declared with :func:`array_field` (float unless a dtype is given); fields typed as
    another record, a tuple of records or ``A | NotRun | None`` are encoded and decoded recursively.
    ``from_dict(to_dict(x))`` equals ``x`` (tests/test_analysis.py checks it on every analysis of a full outcome).
    """

    def to_dict(self) -> dict:
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping):
        hints = _hints(cls)
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                kw[f.name] = _decode(hints[f.name], d[f.name], f)
        return cls(**kw)

    def same_as(self, other) -> bool:
        """Field-by-field equality (arrays compared elementwise, NaN equal to NaN)."""
        return type(self) is type(other) and _same(self.to_dict(), other.to_dict())

    def _freeze_arrays(self):
        for f in dataclasses.fields(self):
            if "dtype" in f.metadata:
                v = getattr(self, f.name)
                if v is not None:
                    object.__setattr__(self, f.name, frozen_array(v, f.metadata["dtype"]))

    def __post_init__(self):
        self._freeze_arrays()


@dataclass(frozen=True)
class NotRun(Record):
    """An analysis that did not run, and why (e.g. ``"k = 2 < 3"``); JSON ``{"not_run": reason}``."""

    reason: str

    def to_dict(self) -> dict:
        return {"not_run": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping):
        return cls(str(d["not_run"]))

    def __str__(self) -> str:
        return f"not run: {self.reason}"


# --------------------------------------------------------------------------- study labels
class NumberedStudies(tuple):
    """The default study labels ``("1", "2", ..., "k")`` without building k strings up front.

    A tuple subclass holding nothing until a label is read: an analysis of a million rows given
    without labels (``fit(yi, vi)``) does not pay for a million strings it may never show.  It
    compares, iterates, indexes and serialises as the tuple of labels it stands for.
    """

    def __new__(cls, k: int):
        obj = super().__new__(cls)
        obj._k = int(k)
        return obj

    def __len__(self):
        return self._k

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(str(j + 1) for j in range(self._k)[i])
        if i < 0:
            i += self._k
        if not 0 <= i < self._k:
            raise IndexError("study index out of range")
        return str(i + 1)

    def __iter__(self):
        return map(str, range(1, self._k + 1))

    def __eq__(self, other):
        return isinstance(other, tuple) and len(other) == self._k and all(a == b for a, b in zip(self, other))

    def __ne__(self, other):
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self):
        return f"NumberedStudies({self._k})"

    def __reduce__(self):
        return (NumberedStudies, (self._k,))


def _labels(study) -> tuple:
    """Study labels as a tuple of str (a :class:`NumberedStudies` is kept as it is)."""
    if isinstance(study, NumberedStudies):
        return study
    if type(study) is tuple and all(type(s) is str for s in study):
        return study
    return tuple(str(s) for s in study)


# --------------------------------------------------------------------------- effect sizes
@dataclass(frozen=True)
class EffectSizes(Record):
    """Per-study effect sizes of one outcome, on the analysis scale.

    Attributes
    ----------
    measure : str
        Effect-size measure (PR, PLO, PAS, PFT, RR, OR, RD, MD, SMD, SMCR, SMCC, MC, GEN).
    kind : str
        Input kind read from the columns: ``proportion``, ``binary``, ``continuous``,
        ``prepost`` or ``generic``.
    study : tuple of str
        Study keys, in input order (after dropping studies, see ``dropped``).
    yi, vi : ndarray
        Effect sizes and their sampling variances.
    ni : ndarray or None
        Total sample size per study (Freeman-Tukey back-transform, Peters' test); None when
        unknown (generic input).
    data : tuple of dict
        The input rows that were used, aligned with ``study`` (raw columns such as events/total
        or mean/sd/n for the forest plot; pre/post means converted from medians filled in, with
        the method in ``conversion``).
    notes : tuple of str
        Choices made (continuity correction applied to which studies, the pre/post correlation
        used and its source, conversions).
    dropped : tuple of (str, str)
        Studies left out and why (e.g. double-zero studies).
    """

    measure: str
    kind: str
    study: tuple
    yi: np.ndarray = array_field()
    vi: np.ndarray = array_field()
    ni: np.ndarray | None = array_field(default=None)
    data: tuple = field(default=(), compare=False, repr=False)
    notes: tuple = ()
    dropped: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "study", tuple(str(s) for s in self.study))
        object.__setattr__(self, "data", tuple(dict(r) for r in (self.data or ())))
        object.__setattr__(self, "dropped", tuple(tuple(x) for x in self.dropped))
        self._freeze_arrays()
        if not (len(self.study) == self.yi.shape[0] == self.vi.shape[0]):
            raise ValueError("study, yi and vi must have the same length")

    @property
    def k(self) -> int:
        return len(self.study)

    @property
    def sei(self) -> np.ndarray:
        return np.sqrt(self.vi)

    def column(self, name: str) -> np.ndarray:
        """A numeric column of ``data`` aligned with ``study`` (NaN where missing)."""
        from .rows import numbers

        return numbers(self.data, name)

    def to_frame(self):
        """One row per study: ``study, yi, vi, sei`` (+ ``ni`` when known); needs pandas."""
        import pandas as pd

        df = pd.DataFrame({"study": self.study, "yi": self.yi, "vi": self.vi, "sei": self.sei})
        if self.ni is not None:
            df["ni"] = self.ni
        return df


def effects_from_dict(d: Mapping) -> EffectSizes:
    """Rebuild an :class:`EffectSizes` from :meth:`EffectSizes.to_dict` output."""
    return EffectSizes.from_dict(d)


# --------------------------------------------------------------------------- one model
@dataclass(frozen=True)
class MetaResult(Record):
    """One fitted fixed- or random-effects model (analysis scale).

    Field names follow ``results/summary.csv`` and the ``expected`` keys of
    ``tests/metafor_cases.json``.  Quantities that do not apply to a model (tau² of a
    fixed-effect model, the prediction interval of a Mantel-Haenszel fit) are NaN.

    Attributes
    ----------
    measure, method, test : str
        Effect measure; estimator (FE, DL, REML, ML, PM, HE, SJ, EB, HS, MH, PETO, GLMM);
        inference (``z`` normal, ``knha`` Hartung-Knapp-Sidik-Jonkman t(k-1)).
    level : float
        Confidence level, e.g. 0.95.
    pi_method : str
        Prediction-interval convention: ``metafor`` (normal quantile under z, t(k-1) under knha)
        or ``higgins`` (t(k-2)).
    study : tuple of str
    yi, vi : ndarray
        Effect sizes and variances the model was fitted to.
    weights : ndarray
        Per-study weights in percent (sum to 100; NaN for the GLMM).
    ni : ndarray or None
        Per-study total n (for the Freeman-Tukey back-transform).
    k, estimate, se, stat, pval, ci_lb, ci_ub, df : numbers
        Pooled estimate and its inference; ``df`` is the t degrees of freedom (NaN for z).
    pi_lb, pi_ub : float
        Prediction interval (analysis scale).
    tau2, tau2_ci_lb, tau2_ci_ub, I2, I2_ci_lb, I2_ci_ub, H2, H2_ci_lb, H2_ci_ub : float
        Heterogeneity; CIs by the Q-profile method.
    Q, Q_df, Q_pval : float
        Cochran's Q test of heterogeneity (NaN with one study: nothing to test).
    notes : tuple of str
    """

    measure: str
    method: str
    test: str
    level: float
    study: tuple
    yi: np.ndarray = array_field()
    vi: np.ndarray = array_field()
    weights: np.ndarray = array_field()
    k: int = 0
    estimate: float = math.nan
    se: float = math.nan
    stat: float = math.nan
    pval: float = math.nan
    ci_lb: float = math.nan
    ci_ub: float = math.nan
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
    ni: np.ndarray | None = array_field(default=None)
    notes: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "study", _labels(self.study))
        object.__setattr__(self, "notes", tuple(self.notes))
        self._freeze_arrays()

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
        d = super().to_dict()
        d["reporting"] = jsonable(self.reporting())
        return d

    def to_frame(self):
        """One-row frame of the scalar fields (analysis scale) and ``*_back`` values; needs pandas."""
        import pandas as pd

        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("study", "yi", "vi", "weights", "ni", "notes")}
        d["notes"] = "; ".join(self.notes)
        for k, v in self.reporting().items():
            d[f"{k}_back"] = v
        return pd.DataFrame([d])

    def study_frame(self) -> dict:
        """Per-study columns: ``study, yi, vi, ci_lb, ci_ub, weight`` (analysis scale, normal CI)."""
        from scipy.special import ndtri

        z = ndtri(0.5 + self.level / 2)
        se = np.sqrt(self.vi)
        return {"study": list(self.study), "yi": self.yi, "vi": self.vi,
                "ci_lb": self.yi - z * se, "ci_ub": self.yi + z * se, "weight": self.weights}


def result_from_dict(d: Mapping) -> MetaResult:
    """Rebuild a :class:`MetaResult` from :meth:`MetaResult.to_dict` output."""
    return MetaResult.from_dict(d)
