"""Small seeded coverage simulation (the full one is benchmarks/bench_coverage.py).

Asserts the qualitative facts of the literature with margins wide enough for Monte Carlo
noise (4,000 replicates: SE of a coverage near 95% is 0.35 percentage points) but tight enough
to fail if a method is broken (a wrong t quantile, a missing tau² in the weights, a Knapp-Hartung
factor applied twice, ...):

* IntHout, Ioannidis & Borm (2014): DL with a normal quantile under-covers with few studies and
  heterogeneity; Hartung-Knapp-Sidik-Jonkman is close to nominal for trials of similar size.
* Fixed effect covers at the nominal rate when tau² = 0 and badly when tau² > 0.
* Partlett & Riley (2017): prediction intervals under-cover unless heterogeneity is large;
  Higgins' t(k-2) interval is wider than the normal-quantile one.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from metapool.models import fit_batch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_coverage.py"
_spec = importlib.util.spec_from_file_location("bench_coverage", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

REPS = 4000
TAU2 = 0.1   # I² about 71% for a trial of n = 100


@pytest.fixture(scope="module")
def cells():
    """(k, tau2) -> (Y, V), varied trial sizes, seeded."""
    out = {}
    for k in (5, 10):
        for tau2 in (0.0, TAU2):
            rng = np.random.default_rng([7, k, int(tau2 * 1000)])
            out[k, tau2] = bench.simulate(k, tau2, REPS, rng, "varied")
    return out


def cov(cells, k, tau2, method, test):
    return bench.ci_coverage(*cells[k, tau2], method, test)


@pytest.mark.parametrize("k", (5, 10))
def test_hksj_is_close_to_nominal(cells, k):
    for tau2 in (0.0, TAU2):
        c = cov(cells, k, tau2, "REML", "knha")
        assert 0.92 <= c <= 0.98, f"HKSJ coverage {c:.3f} at k={k}, tau2={tau2}"


def test_dl_z_undercovers_with_few_heterogeneous_studies(cells):
    dl, hksj = cov(cells, 5, TAU2, "DL", "z"), cov(cells, 5, TAU2, "REML", "knha")
    assert 0.80 <= dl <= 0.92, f"DL-z coverage {dl:.3f} at k=5"
    assert dl < hksj - 0.03, f"DL-z {dl:.3f} not below HKSJ {hksj:.3f}"
    # more studies: DL-z gets closer to nominal
    assert cov(cells, 10, TAU2, "DL", "z") > dl
    # REML-z behaves like DL-z here (same weights up to the tau² estimate)
    assert abs(cov(cells, 5, TAU2, "REML", "z") - dl) < 0.03


def test_fixed_effect_nominal_without_heterogeneity_and_poor_with_it(cells):
    for k in (5, 10):
        c0 = cov(cells, k, 0.0, "FE", "z")
        assert 0.935 <= c0 <= 0.965, f"FE coverage {c0:.3f} at k={k}, tau2=0"
        assert cov(cells, k, TAU2, "FE", "z") < 0.80
    # with tau² = 0 the random-effects CIs are conservative, never far below nominal
    assert cov(cells, 5, 0.0, "DL", "z") >= 0.94


def test_prediction_intervals(cells):
    Y, V = cells[10, TAU2]
    z = bench.pi_coverage(Y, V, "REML", "z", "metafor", TAU2)
    hk = bench.pi_coverage(Y, V, "REML", "knha", "metafor", TAU2)
    hi = bench.pi_coverage(Y, V, "REML", "z", "higgins", TAU2)
    assert 0.80 <= z <= 0.94, f"PI REML-z coverage {z:.3f}"
    assert 0.85 <= hk <= 0.97, f"PI HKSJ coverage {hk:.3f}"
    assert 0.85 <= hi <= 0.97, f"PI Higgins coverage {hi:.3f}"
    assert hi > z and hk > z   # t quantiles widen the interval
    # no heterogeneity: the metafor PI equals the CI plus nothing, at least nominal coverage
    Y0, V0 = cells[10, 0.0]
    assert bench.pi_coverage(Y0, V0, "REML", "z", "metafor", 0.0) >= 0.94


def test_exact_pi_coverage_matches_drawing_new_studies(cells):
    """The analytic P(lb <= theta_new <= ub) used above agrees with simulated new studies."""
    Y, V = cells[5, TAU2]
    exact = bench.pi_coverage(Y, V, "REML", "knha", "metafor", TAU2)
    f = fit_batch(Y, V, method="REML", test="knha")
    theta_new = np.random.default_rng(11).normal(0.0, np.sqrt(TAU2), size=(20, Y.shape[0]))
    drawn = np.mean((f.pi_lb <= theta_new) & (theta_new <= f.pi_ub))
    assert abs(drawn - exact) < 0.01, (drawn, exact)


def test_simulation_has_the_intended_heterogeneity(cells):
    """Sanity check of the generator: the mean DL tau² estimate is near the true tau²."""
    Y, V = cells[10, TAU2]
    t2 = fit_batch(Y, V, method="DL").tau2
    assert abs(t2.mean() - TAU2) < 0.015
    q = fit_batch(Y, V, method="FE").Q
    # Q under tau² > 0 exceeds its chi²(k-1) null distribution most of the time
    assert np.mean(q > stats.chi2.isf(0.05, 9)) > 0.5
