"""metapool.tau2: estimators against metafor's matrix definitions and R reference values.

The ``_metafor_*`` helpers transcribe R metafor 3.8-1 ``rma.uni`` line by line with explicit
k x k projection matrices (P = W - W X (X'WX)^-1 X'W), so the O(k) sums in metapool.tau2
are checked against an independent formulation.
"""
import numpy as np
import pytest
from scipy import stats

from conftest import cases_where, load_cases
from metapool import tau2 as T
from metapool.tau2 import estimate_tau2, estimate_tau2_batch, qprofile_ci

METHODS = ("DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")


def _P(w):
    W = np.diag(w)
    X = np.ones((len(w), 1))
    return W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W


def _metafor(yi, vi, method, iters=5000):
    """rma.uni's tau2 code (intercept-only), matrices and all; Fisher scoring with stepadj 0.5."""
    k = len(yi)
    y = yi - yi.mean()  # Ymc
    Pu = np.eye(k) - np.ones((k, k)) / k
    he = (y @ Pu @ y - np.trace(Pu @ np.diag(vi))) / (k - 1)
    if method == "HE":
        return max(0.0, he)
    if method in ("DL", "HS"):
        P = _P(1 / vi)
        rss = y @ P @ y
        t = (rss - (k - 1)) / np.trace(P) if method == "DL" else (rss - k) / np.sum(1 / vi)
        return max(0.0, t)
    if method == "SJ":
        t0 = np.var(yi, ddof=1) * (k - 1) / k
        return t0 * (y @ _P(1 / (vi + t0)) @ y) / (k - 1)
    if method == "PM":
        from scipy.optimize import brentq

        def f(t):
            return y @ _P(1 / (vi + t)) @ y - (k - 1)

        return 0.0 if f(0) < 0 else brentq(f, 0, 100, xtol=1e-14)
    t = max(0.0, he)
    for _ in range(iters):
        w = 1 / (vi + t)
        P = _P(w)
        if method == "ML":
            adj = (y @ P @ P @ y - w.sum()) / np.sum(w ** 2)
        elif method == "REML":
            adj = (y @ P @ P @ y - np.trace(P)) / np.trace(P @ P)
        else:  # EB
            adj = (y @ P @ y * k / (k - 1) - k) / w.sum()
        adj *= 0.5
        while t + adj < 0:
            adj /= 2
        t += adj
        if abs(adj) < 1e-13:
            break
    return t


@pytest.fixture(scope="module")
def datasets():
    rng = np.random.default_rng(20240601)
    out = []
    for k in (3, 5, 8, 15):
        for het in (0.0, 0.05, 0.5):
            vi = rng.uniform(0.02, 0.4, k)
            out.append((rng.normal(0.3, np.sqrt(vi + het)), vi))
    return out


@pytest.mark.parametrize("method", METHODS)
def test_matches_metafor_matrix_formulation(method, datasets):
    for yi, vi in datasets:
        got, _ = estimate_tau2(yi, vi, method)
        want = _metafor(yi, vi, method)
        assert got >= 0
        assert got == pytest.approx(want, rel=1e-7, abs=1e-10), (method, yi, vi)


@pytest.mark.parametrize("case", cases_where(lambda c: c["method"] in METHODS))
def test_matches_metafor_reference_tau2(case):
    e = case["expected"]
    tau2, notes = estimate_tau2(e["yi"], e["vi"], case["method"])
    rel = 1e-8 if case["method"] in ("DL", "HE", "HS") else 1e-6
    assert tau2 == pytest.approx(e["tau2"], rel=rel, abs=1e-10)
    assert isinstance(notes, tuple)


def test_eb_equals_pm_and_solves_q_equals_df(datasets):
    for yi, vi in datasets:
        pm, _ = estimate_tau2(yi, vi, "PM")
        eb, _ = estimate_tau2(yi, vi, "EB")
        assert eb == pytest.approx(pm, rel=1e-10, abs=1e-14)
        q = T.generalized_q(yi[None], vi[None], np.ones((1, len(yi)), bool), np.array([pm]))[0]
        if pm > 0:
            assert q == pytest.approx(len(yi) - 1, rel=1e-10)
        else:
            assert q <= len(yi) - 1


def test_truncation_is_noted():
    tau2, notes = estimate_tau2([0.1, 0.11, 0.09, 0.1], [0.1] * 4, "DL")
    assert tau2 == 0.0 and any("truncated" in n for n in notes)


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_scalar_with_ragged_mask(method, datasets):
    kmax = max(len(y) for y, _ in datasets)
    Y = np.zeros((len(datasets), kmax))
    V = np.zeros((len(datasets), kmax))
    M = np.zeros((len(datasets), kmax), bool)
    for i, (y, v) in enumerate(datasets):
        Y[i, :len(y)], V[i, :len(y)], M[i, :len(y)] = y, v, True
    got = estimate_tau2_batch(Y, V, M, method)
    want = [estimate_tau2(y, v, method)[0] for y, v in datasets]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown tau2 method 'XX'"):
        estimate_tau2([0.1, 0.2], [0.1, 0.1], "XX")


# ----------------------------------------------------------------------------- Q-profile CI
def _bcg():
    case = cases_where(lambda c: c["case"] == "bcg_RR_REML_z")[0].values[0]
    return np.array(case["expected"]["yi"]), np.array(case["expected"]["vi"])


def test_qprofile_viechtbauer2007_bcg():
    # dat <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
    # confint(rma(yi, vi, data = dat), control = list(tol = 1e-12))  (metafor's ?confint example)
    yi, vi = _bcg()
    lb, ub = qprofile_ci(yi, vi)
    assert lb == pytest.approx(0.119718361141152, rel=1e-6)
    assert ub == pytest.approx(1.111479084060929, rel=1e-6)
    # level = 90
    lb, ub = qprofile_ci(yi, vi, level=0.90)
    assert lb == pytest.approx(0.141002241583160, rel=1e-6)
    assert ub == pytest.approx(0.909805471952732, rel=1e-6)


def test_qprofile_bounds_solve_the_chi2_equations():
    yi, vi = _bcg()
    k = len(yi)
    lb, ub = qprofile_ci(yi, vi, level=0.8)
    m = np.ones((1, k), bool)
    q = T.generalized_q(np.vstack([yi, yi]), np.vstack([vi, vi]), np.vstack([m, m]), np.array([lb, ub]))
    assert q[0] == pytest.approx(stats.chi2.isf(0.1, k - 1), rel=1e-10)
    assert q[1] == pytest.approx(stats.chi2.ppf(0.1, k - 1), rel=1e-10)


def test_qprofile_vectorised_and_capped():
    yi, vi = _bcg()
    Y = np.vstack([yi, yi * 3, np.full_like(yi, 0.2)])
    V = np.vstack([vi, vi, vi])
    lb, ub = qprofile_ci(Y, V)
    for i in range(3):
        assert (lb[i], ub[i]) == pytest.approx(qprofile_ci(Y[i], V[i]), rel=1e-12, abs=1e-15)
    assert lb[2] == ub[2] == 0.0  # identical effects: whole interval below 0 -> [0, 0]
    lb_c, ub_c = qprofile_ci(Y[1], V[1], tau2_max=1.0)
    assert ub_c == 1.0 and ub[1] > 1.0


def test_qprofile_needs_two_studies():
    lb, ub = qprofile_ci([0.3], [0.1])
    assert np.isnan(lb) and np.isnan(ub)


# ----------------------------------------------------------------------------- Fisher scoring details
def _halve_loop(t, adj):
    """metafor's literal ``while (tau2 + adj < tau2.min) adj <- adj / 2`` (tau2.min = 0), per row."""
    out = adj.copy()
    for i in range(t.size):
        while t[i] + out[i] < 0:
            out[i] /= 2.0
    return out


def test_step_halving_equals_metafors_loop():
    rng = np.random.default_rng(7)
    t = np.concatenate([[0.0, 0.0, 5e-324, 1e-310, 1e-300, 1e-20, 0.3, 2.0, 1.0],
                        10.0 ** rng.uniform(-30, 2, 300), np.zeros(20)])
    adj = -(10.0 ** rng.uniform(-12, 3, t.size))
    adj[:3] = (-1.0, -1e-300, -1.0)
    adj[8] = 0.5  # a positive step is left alone
    got = T._halve_into_range(t, adj)
    want = _halve_loop(t, adj)
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
    assert np.all(t + got >= 0)


def test_single_study_rows_are_not_iterated(monkeypatch):
    """Their Fisher step is 0/0; they are tau2 = 0 by definition and must not reach the step."""
    import warnings

    seen = []
    real = T._score_step_d

    def spy(d, tau2, c, reml):
        seen.append(d.n.min())
        return real(d, tau2, c, reml)

    monkeypatch.setattr(T, "_score_step_d", spy)
    Y = np.array([[0.1, 0.5, -0.2], [0.4, 0.0, 0.0], [0.3, 0.1, 0.0]])
    V = np.array([[0.1, 0.2, 0.1], [0.05, 1.0, 1.0], [0.1, 0.1, 1.0]])
    M = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], bool)
    for method in ("REML", "ML"):
        with warnings.catch_warnings(), np.errstate(all="warn", under="ignore"):
            warnings.simplefilter("error")
            got = estimate_tau2_batch(Y, V, M, method)
        assert got[1] == 0.0
        assert got[0] == estimate_tau2(Y[0], V[0], method)[0]
    assert seen and min(seen) >= 2


# ----------------------------------------------------------------------------- better-maximum check
# rma(c(-0.38, 0.12, -0.46, 0.05), c(0.057, 0.007, 0.203, 0.155), method = "ML"): tau2 = 0,
# logLik -0.645600864794625 (the score at 0 is negative: a boundary maximum); started at
# tau2.init = 0.02 metafor finds the second, higher maximum near 0.0167 (logLik -0.607122).
BIMODAL_Y = [-0.38, 0.12, -0.46, 0.05]
BIMODAL_V = [0.057, 0.007, 0.203, 0.155]


def test_higher_likelihood_maximum_is_noted():
    tau2, notes = estimate_tau2(BIMODAL_Y, BIMODAL_V, "ML")
    assert tau2 == 0.0  # as metafor
    note, = [n for n in notes if "higher maximum" in n]
    other = float(note.split("tau2 = ")[1].split()[0])
    assert other == pytest.approx(0.0167, rel=2e-3)
    Y, V, m = T._as_batch(np.array([BIMODAL_Y]), np.array([BIMODAL_V]))
    ll = T._loglik(Y, V, m, np.array([0.0]), False)
    assert ll[0] == pytest.approx(-0.645600864794625, rel=1e-12)
    assert T._loglik(Y, V, m, np.array([other]), False)[0] == pytest.approx(-0.607122399, rel=1e-8)


def test_better_maximum_check_agrees_with_the_full_search():
    """The cheap check (one grid evaluation, polish only when needed) gives the same verdict as
    polishing the best grid point every time."""
    rng = np.random.default_rng(11)
    verdicts = []
    for _ in range(300):
        k = int(rng.integers(2, 9))
        v = 10 ** rng.uniform(-3, 0, k)
        y = rng.normal(0, rng.choice([0.1, 0.4, 1.0]), k)
        d = T._prep(y[None], v[None])
        for method in ("ML", "REML"):
            reml = method == "REML"
            tau2, status = T._tau2_core(d, method)
            if status[0] == T._FALLBACK:
                continue
            best = T._ll_search(d, reml, 1e-12, 1000, n_grid=50)
            here = T._loglik_d(d, tau2, reml)[0]
            full = T._loglik_d(d, best, reml)[0] - here > 1e-9 * max(1.0, abs(here))
            cheap = T._higher_maximum(d, tau2, reml, 1e-12, 1000)
            assert (cheap is not None) == full, (method, y.tolist(), v.tolist())
            verdicts.append(full)
    assert any(verdicts) and not all(verdicts)  # both outcomes exercised


def test_better_maximum_check_is_one_grid_evaluation(monkeypatch):
    def no_polish(*args, **kwargs):
        raise AssertionError("the grid agreed with Fisher scoring; no polishing needed")

    monkeypatch.setattr(T, "_ll_refine", no_polish)
    yi, vi = _bcg()
    for method in ("REML", "ML"):
        tau2, notes = estimate_tau2(yi, vi, method)
        assert tau2 > 0 and notes == ()


# ----------------------------------------------------------------------------- blocked sums, fast paths
def _metafor_inputs():
    """(yi, vi) of every distinct reference case of tests/metafor_cases.json, with its cases."""
    out = {}
    for c in load_cases():
        e = c["expected"]
        if "yi" in e and "vi" in e and c.get("method") in METHODS:
            out.setdefault((tuple(e["yi"]), tuple(e["vi"])), []).append(c)
    return [(np.array(y, float), np.array(v, float), cs) for (y, v), cs in out.items()]


def _tiny_blocks(monkeypatch):
    """Blocks of a few studies, so that every blocked sum runs over many blocks."""
    for name, size in (("_MIN_BLOCK", 1), ("_CHUNK", 24), ("_CHUNK_1D", 3), ("_CHUNK_GEMM", 3),
                       ("_CHUNK_GRID", 40)):
        monkeypatch.setattr(T, name, size)


def _ragged(seed, B=40, kmax=12):
    rng = np.random.default_rng(seed)
    V = 10 ** rng.uniform(-2.5, 0.5, (B, kmax))
    Y = rng.normal(0.2, np.sqrt(V + rng.choice([0.0, 0.05, 0.5], (B, 1))))
    ks = rng.integers(1, kmax + 1, B)
    return Y, V, np.arange(kmax)[None, :] < ks[:, None]


@pytest.mark.parametrize("method", METHODS)
def test_blocked_sums_match_metafor_and_one_block(method, monkeypatch):
    """Sums taken over many small blocks (1-D slices, groups of analyses, slices of studies of
    several analyses) give metafor's estimates and the one-block results."""
    from metapool.models import fit

    inputs = _metafor_inputs()
    Y, V, M = _ragged(3)
    rng = np.random.default_rng(4)
    Vw = rng.uniform(0.01, 0.3, (3, 300))  # k = 300 > _CHUNK with B > 1: slices of studies
    Yw = rng.normal(0.1, np.sqrt(Vw + 0.05))
    one = ([fit(y, v, method=method) for y, v, _ in inputs], estimate_tau2_batch(Y, V, M, method),
           estimate_tau2_batch(Yw, Vw, None, method))
    _tiny_blocks(monkeypatch)
    many = ([fit(y, v, method=method) for y, v, _ in inputs], estimate_tau2_batch(Y, V, M, method),
            estimate_tau2_batch(Yw, Vw, None, method))
    for (y, v, cases), r1, r2 in zip(inputs, one[0], many[0]):
        for f in ("tau2", "estimate", "se", "tau2_ci_lb", "tau2_ci_ub"):
            assert getattr(r2, f) == pytest.approx(getattr(r1, f), rel=1e-12, abs=1e-15), f
        assert r2.notes == r1.notes
        for c in cases:
            if c["method"] == method:
                rel = 1e-8 if method in ("DL", "HE", "HS") else 1e-6
                assert r2.tau2 == pytest.approx(c["expected"]["tau2"], rel=rel, abs=1e-10), c["case"]
    np.testing.assert_allclose(many[1], one[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(many[2], one[2], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method", ("ML", "REML"))
def test_one_study_iteration_is_the_vectorised_one(method):
    """Fisher scoring and the Q root of one analysis run in floats: same numbers, bit for bit,
    as the vectorised iteration (forced here by a mask that excludes nothing)."""
    for y, v, _ in _metafor_inputs():
        d = T._prep(y[None], v[None])
        dv = T._Data(d.Y, d.V, np.ones(d.Y.shape, bool), d.n)
        got, want = T._fisher_d(d, method, 1e-12, 100), T._fisher_d(dv, method, 1e-12, 100)
        assert got[0][0] == want[0][0] and got[1][0] == want[1][0], (y, v)
        assert T._q_root_d(d, y.size - 1.0)[0][0] == T._q_root_d(dv, y.size - 1.0)[0][0]


def test_qprofile_from_the_estimate_gives_the_same_bounds():
    """Starting the Q-profile roots at the estimate (or below it on the tangent) finds the
    same roots as starting at 0, and metafor's confint() bounds."""
    for y, v, cases in _metafor_inputs():
        if y.size < 3:
            continue
        d = T._prep(y[None], v[None])
        for c in cases:
            if c["method"] not in METHODS or c["level"] != 95:
                continue
            tau2 = np.array([estimate_tau2(y, v, c["method"])[0]])
            lb, ub = T._qprofile_core(d, 0.95, 1e-12, 200, start=tau2)
            lb0, ub0 = T._qprofile_core(d, 0.95, 1e-12, 200)
            assert (lb[0], ub[0]) == pytest.approx((lb0[0], ub0[0]), rel=1e-12, abs=1e-15)
            ci = c["expected"].get("tau2_ci")
            if ci and ub[0] < T.metafor_tau2_max(tau2[0]):
                assert (lb[0], ub[0]) == pytest.approx(ci, rel=1e-6, abs=1e-10), c["case"]


# rma(y, v, method = "REML") stops ("Fisher scoring algorithm did not converge"); with
# control = list(threshold = 1e-12, tol = 1e-12, maxiter = 10000, stepadj = 0.5):
# tau2 0.0011281164719890437.  The bounded search lands exactly on a zero of the score there.
ROOT_Y = [-0.035109087428955604, 0.29753779642218936, 0.17166495754789746, 0.20829969733288542,
          0.12167034040815983, 0.21261220778166723]
ROOT_V = [0.1275375754562329, 0.0035866518821142486, 0.03146619016758505, 0.01551269682028404,
          0.009776477931258073, 0.015246209487353082]


def test_bounded_search_stays_on_an_exact_root():
    tau2, notes = estimate_tau2(ROOT_Y, ROOT_V, "REML")
    assert any("did not converge" in n for n in notes)
    assert tau2 == pytest.approx(0.0011281164719890437, rel=1e-10)
    # in a batch too (the search then runs on several rows)
    Y, V, M = _ragged(5, B=6, kmax=6)
    Y[2], V[2], M[2] = ROOT_Y, ROOT_V, True
    assert estimate_tau2_batch(Y, V, M, "REML")[2] == pytest.approx(0.0011281164719890437, rel=1e-10)


# ----------------------------------------------------------------------------- pruned likelihood grid
def test_grid_bound_is_above_the_likelihood():
    """The bound that lets the grid skip points is an upper bound of the exact likelihood."""
    rng = np.random.default_rng(12)
    for _ in range(40):
        k = int(rng.integers(2, 30))
        v = 10 ** rng.uniform(-3, 1, k)
        y = rng.normal(0, rng.choice([0.05, 0.5, 2.0]), k)
        d = T._prep(y[None], v[None])
        a, b = np.sort(10 ** rng.uniform(-6, 1, 2))
        t = np.linspace(a, b, 15)
        c = np.array([rng.normal()])
        st = T._ll_stats(d, np.array([a, b]), c)
        for reml in (False, True):
            bound = T._ll_bound(st[:, 0:1], st[:, 1:2], a, b, t, float(k), reml)
            exact = T._loglik_d(T._Data(np.repeat(d.Y, t.size, 1), np.repeat(d.V, t.size, 1), None,
                                        np.repeat(d.n, t.size)), t, reml)
            assert np.all(bound >= exact - 1e-12 * np.abs(exact)), (y, v, a, b)
            assert bound[-1] == pytest.approx(exact[-1], rel=1e-9)  # exact at t = b


def _grid_cases():
    rng = np.random.default_rng(13)
    out = [(y, v) for y, v, _ in _metafor_inputs()]
    out += [(np.array(BIMODAL_Y), np.array(BIMODAL_V)), (np.array(ROOT_Y), np.array(ROOT_V))]
    for k, tau2 in ((3000, 0.0), (3000, 0.01), (5000, 0.2)):
        v = rng.uniform(0.01, 0.2, k)
        out.append((rng.normal(0.3, np.sqrt(v + tau2)), v))
    return out


@pytest.mark.parametrize("method", ("ML", "REML"))
def test_pruned_grid_finds_the_full_grids_best_point(method, monkeypatch):
    """Skipping provably worse grid points changes neither the best point nor its value."""
    monkeypatch.setattr(T, "_GRID_PRUNE_MIN_K", 0)  # prune at every k
    evaluated = []
    real = T._ll_stats

    def spy(d, g, c, *args):
        evaluated.append(g.size)
        return real(d, g, c, *args)

    monkeypatch.setattr(T, "_ll_stats", spy)
    reml = method == "REML"
    skipped = 0
    for y, v in _grid_cases():
        if y.size < 2:
            continue
        d = T._prep(y[None], v[None])
        tau2, _ = T._tau2_core(d, method)
        mu = T._wmean(d, tau2)[0]
        evaluated.clear()
        _, _, j, ll = T._grid_best_pruned(d, reml, 50, mu, float(tau2[0]))
        skipped += 51 - sum(evaluated)
        _, _, j_full, ll_full = T._ll_grid_best(d, reml, 50, c=mu)
        assert j[0] == j_full[0], (method, y.size)
        assert ll[0] == pytest.approx(ll_full[0], rel=1e-12)
    assert skipped > 0


def test_higher_maximum_found_with_the_pruned_grid(monkeypatch):
    monkeypatch.setattr(T, "_GRID_PRUNE_MIN_K", 0)
    tau2, notes = estimate_tau2(BIMODAL_Y, BIMODAL_V, "ML")
    note, = [n for n in notes if "higher maximum" in n]
    assert float(note.split("tau2 = ")[1].split()[0]) == pytest.approx(0.0167, rel=2e-3)


# A simulated k = 10 data set (benchmarks' seed) on which Fisher scoring oscillates and the
# bounded search's Newton step lands on a point where the REML score is exactly 0.0 in the
# analysis-major sums of earlier versions, which then returned the bracket's midpoint
# (0.011657, 2% off).  rma(y, v, method = "REML", control = list(threshold = 1e-12,
# maxiter = 10000, stepadj = 0.5)): tau2 0.011877578125776934.
SCORE0_Y = [0.22236415338715998, -0.8701730324628089, 0.82827770555992, 0.7882977370098417,
            0.3080776889611714, 0.39885077291284393, 0.3483436595712811, -0.10047896617146324,
            0.30591311518996406, 0.662750923586337]
SCORE0_V = [0.11902697801047082, 0.15180142928407112, 0.16781236467503238, 0.17200744486145067,
            0.06444848534093844, 0.02077549458416494, 0.03274074877107335, 0.19114940405445266,
            0.09659754184975568, 0.048011546979449864]


def test_bounded_search_matches_metafor_where_the_score_hits_zero():
    tau2, notes = estimate_tau2(SCORE0_Y, SCORE0_V, "REML")
    assert any("did not converge" in n for n in notes)
    assert tau2 == pytest.approx(0.011877578125776934, rel=1e-8)


def test_bounded_search_keeps_a_point_where_the_score_is_zero(monkeypatch):
    """A zero of the score is the answer (the bracket update must not move away from it)."""
    real = T._score_and_slope_d
    zeros = []

    def zero_near_root(d, t, c, reml):
        sc, sl, mu = real(d, t, c, reml)
        sc = np.where(np.abs(sc) < 1e-3, 0.0, sc)
        zeros.extend(t[sc == 0])
        return sc, sl, mu

    monkeypatch.setattr(T, "_score_and_slope_d", zero_near_root)
    x = T._ll_search(T._prep([ROOT_Y], [ROOT_V]), True, 1e-12, 1000)
    assert zeros and x[0] == zeros[-1]


def test_pairwise_column_sums_are_numpys_row_sums():
    """The pooled estimate's sums follow numpy's pairwise order: bit for bit a row's .sum()."""
    rng = np.random.default_rng(14)
    for k in list(range(1, 40)) + [127, 128, 129, 300]:
        A = rng.normal(size=(k, 30)) * 10 ** rng.uniform(-6, 6, (k, 30))
        assert np.array_equal(T._colsum_pw(A), np.ascontiguousarray(A.T).sum(axis=1)), k
