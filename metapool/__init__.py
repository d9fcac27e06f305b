"""metapool: meta-analysis statistics validated against R metafor.

Layers (no module imports one above it): ``data``, ``effects``, ``transforms``, ``tau2``
at the bottom; ``models`` above them; analyses (``counts``, ``glmm``, ``sensitivity``,
``bias``, ``subgroups``, ``metareg``) above models; presentation (``plots``, ``report``) on top.
"""
from .results import EffectSizes, MetaResult, OutcomeAnalysis

__version__ = "0.1.0"
__all__ = ["EffectSizes", "MetaResult", "OutcomeAnalysis", "__version__"]
