"""Between-study variance (tau²) estimators and the Q-profile confidence interval.

Every estimator follows the definitions of R metafor's ``rma.uni`` (Viechtbauer 2010,
metafor 3.8-1) for the intercept-only random-effects model ``y_i ~ N(mu, v_i + tau²)``,
and is validated against metafor output in ``tests/test_metafor_conformance.py`` and
``tests/test_tau2.py``.  With weights ``w_i = 1/(v_i + tau²)`` and the weighted mean
``ybar_w`` the projection quantities metafor computes with k x k matrices reduce to sums:

* ``y'Py = sum w_i (y_i - ybar_w)^2`` (the generalised Q statistic),
* ``tr(P) = sum w - sum w^2 / sum w``,
* ``y'PPy = sum (w_i (y_i - ybar_w))^2`` and
  ``tr(PP) = sum w^2 - 2 sum w^3 / sum w + (sum w^2)^2 / (sum w)^2``.

Estimators (``method``):

``DL``   DerSimonian-Laird (1986) moment estimator.
``HE``   Hedges (1983) / Hedges-Olkin unweighted moment estimator.
``HS``   Hunter-Schmidt (1990): ``(Q - k) / sum w``.
``SJ``   Sidik-Jonkman (2005) with metafor's starting value ``var(y) (k-1)/k``.
``PM``   Paule-Mandel (1982): the root of ``Q(tau²) = k - 1``.
``EB``   Empirical Bayes (Morris 1983; Berkey et al. 1995); metafor's iteration
         ``tau² += (Q(tau²) k/(k-1) - k) / sum w`` has the PM root as its fixed point (0
         when ``Q(0) < k - 1``), which is what is computed.
``ML``   maximum likelihood, ``REML`` restricted maximum likelihood (Fisher scoring as
         metafor, with metafor's check against tau² = 0; a bounded scalar search when
         Fisher scoring fails).

All estimates are truncated at 0.

Layout and cost
---------------
B meta-analyses are held as studies-by-analyses arrays (:class:`_Data`: ``(k, B)``, C order,
so that every per-analysis sum is a sum over the first axis of contiguous rows), with a
boolean mask for ragged k; masked variances are stored as ``+inf`` so that their weights
``1/(v + tau²)`` are exactly 0.  Every sum is taken block by block (blocks of about
``_CHUNK`` entries, whole analyses when k is small, slices of the studies when k is large),
so temporaries stay in cache and memory is O(k B) for the data plus O(block) for the work;
nothing builds a k x k matrix.  Sums around a reference value ``c`` (``z = y - c``) give
the centred sums in one pass (``sum w (y - ybar_w)^2 = sum w z^2 - (sum w z)^2 / sum w``);
``c`` is the weighted mean itself where a result must be exact (a first pass computes it)
and the previous iterate's weighted mean inside iterations, where the difference is
negligible and shrinks to 0 as the iteration converges.  One meta-analysis (B = 1) iterates
in Python floats around numpy's blocked sums (the same operations as the vectorised
iteration, so the same numbers, without numpy's per-call cost on one-element arrays).  The
check of a single fit for a higher likelihood maximum (:func:`_higher_maximum`) evaluates its
51-point grid only where rigorous upper bounds cannot exclude a better point.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

METHODS = ("DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")
FISHER_MAXITER = 100  # metafor's default maxiter for Fisher scoring

# status codes per meta-analysis, turned into notes by estimate_tau2
_OK, _FALLBACK, _TRUNC_LL0 = 0, 1, 2

#: entries per block of a blocked sum over a (k, B) array (256 kB per float64 temporary)
_CHUNK = 1 << 15
#: entries per block when B = 1: BLAS ``ddot`` stays single-threaded up to 10,000 entries
_CHUNK_1D = 8192
#: entries per block of :func:`_moments` when B = 1: ``(4, n) @ (n, 4)`` stays single-threaded
_CHUNK_GEMM = 16384
#: entries per block of a multi-point (grid) evaluation, G points x studies x analyses
_CHUNK_GRID = 1 << 18
#: smallest block (entries)
_MIN_BLOCK = 256
#: below this many studies :func:`_grid_best_pruned` evaluates the whole grid at once
_GRID_PRUNE_MIN_K = 2000
_LOG2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- data
class _Data:
    """B meta-analyses as studies-by-analyses arrays (the layout every computation uses).

    Attributes
    ----------
    Y : ndarray (k, B)
        Effect sizes, 0 where masked.
    V : ndarray (k, B)
        Sampling variances, ``+inf`` where masked (weights ``1/(V + tau2)`` are 0 there).
    M : ndarray of bool (k, B) or None
        Which entries are studies; None when all are.
    n : ndarray of int (B,)
        Studies per meta-analysis.
    """

    __slots__ = ("Y", "V", "M", "n", "_fe", "_moments0", "_buf")

    def __init__(self, Y, V, M, n):
        self.Y, self.V, self.M, self.n = Y, V, M, n
        self._fe = None
        self._moments0 = None
        self._buf = None

    @property
    def B(self):
        return self.Y.shape[1]

    @classmethod
    def from_rows(cls, Y, V, mask):
        """From (B, k) arrays as :func:`_as_batch` returns them (no validation)."""
        mask = np.asarray(mask, dtype=bool)
        n = mask.sum(axis=1)
        if mask.all():
            return cls(np.ascontiguousarray(Y.T), np.ascontiguousarray(V.T), None, n)
        Vt = np.ascontiguousarray(np.where(mask, V, np.inf).T)
        return cls(np.ascontiguousarray(np.where(mask, Y, 0.0).T), Vt, np.ascontiguousarray(mask.T), n)

    def take(self, idx):
        """The meta-analyses ``idx`` (an index array) as a new :class:`_Data` (copies)."""
        if len(idx) == self.B and np.array_equal(idx, np.arange(self.B)):
            return self
        M = None if self.M is None else self.M[:, idx]
        return _Data(self.Y[:, idx], self.V[:, idx], M, self.n[idx])

    def parts(self):
        """Blocks ``(Y, V, M, cols)`` of about ``_CHUNK`` entries (``_CHUNK_1D`` when B = 1).

        When B = 1 the blocks are 1-D slices of the studies (sums over them are added up
        by the caller); when k is small they are groups of whole analyses (columns ``cols``);
        when k is large and B > 1, slices of the studies of all analyses.
        """
        k, B = self.Y.shape
        M = self.M
        if B == 1:
            size = max(_MIN_BLOCK, _CHUNK_1D)
            Y, V = self.Y[:, 0], self.V[:, 0]
            M1 = None if M is None else M[:, 0]
            for r in range(0, k, size):
                yield Y[r:r + size], V[r:r + size], None if M1 is None else M1[r:r + size], slice(None)
            return
        size = max(_MIN_BLOCK, _CHUNK)
        if k * B <= size:
            yield self.Y, self.V, M, slice(None)
        elif k <= size:
            cb = max(1, size // k)
            for c in range(0, B, cb):
                cs = slice(c, c + cb)
                yield self.Y[:, cs], self.V[:, cs], None if M is None else M[:, cs], cs
        else:
            rb = max(1, size // B)
            for r in range(0, k, rb):
                rs = slice(r, r + rb)
                yield self.Y[rs], self.V[rs], None if M is None else M[rs], slice(None)

    def masked(self, A, fill=0.0):
        """``A`` (k, B) with ``fill`` where masked (A itself when nothing is masked)."""
        return A if self.M is None else np.where(self.M, A, fill)


def _dot(a, b):
    """Column sums of ``a * b`` (a plain dot product for 1-D blocks)."""
    return a @ b if a.ndim == 1 else np.einsum("ij,ij->j", a, b)


class _Bufs:
    """Work arrays for the blocks of :meth:`_Data.parts` (the first block is the largest)."""

    __slots__ = ("arrays",)

    def __init__(self):
        self.arrays = None

    def get(self, shape, n):
        """``n`` work arrays of ``shape`` (views of arrays allocated once)."""
        if self.arrays is None:
            self.arrays = [np.empty(shape) for _ in range(n)]
        a0 = self.arrays[0]
        if a0.shape == shape:
            return self.arrays
        if len(shape) == 1:
            return [a[:shape[0]] for a in self.arrays]
        return [a[:shape[0], :shape[1]] for a in self.arrays]


def _transposed(A):
    out = np.empty(A.shape[::-1], dtype=A.dtype)
    np.copyto(out, A.T)
    return out


def _prep(Y, V, mask=None):
    """Validate (B, k) effect sizes, variances and mask and return a :class:`_Data`.

    Raises ValueError for non-finite effect sizes, non-positive or non-finite variances (in
    the mask) and analyses without studies, with the same messages as :func:`_as_batch`.
    When B = 1 and nothing is masked the arrays are used without copying.
    """
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    V = np.atleast_2d(np.asarray(V, dtype=float))
    if Y.shape != V.shape:
        raise ValueError(f"effect sizes and variances differ in shape: {Y.shape} vs {V.shape}")
    if Y.ndim != 2:
        raise ValueError(f"expected (B, k) arrays, got shape {Y.shape}")
    B, k = Y.shape
    m = None
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, dtype=bool), Y.shape)
        if m.all():
            m = None
    if m is None:
        if B == 1:
            Yt, Vt = Y.reshape(k, 1), V.reshape(k, 1)
        else:
            Yt, Vt = _transposed(Y), _transposed(V)
        Mt = None
        n = np.full(B, k)
        if not np.isfinite(Yt.sum()) and not np.isfinite(Yt).all():
            _bad_y()
        if not (Vt.min() > 0 and np.isfinite(Vt.sum())):
            _check_v_slow(V, None)
    else:
        Mt = _transposed(m)
        Yt = np.zeros((k, B))
        np.copyto(Yt, Y.T, where=Mt)
        n = Mt.sum(axis=0)
        if not np.isfinite(Yt.sum()) and not np.isfinite(Yt).all():
            _bad_y()
        Vt = np.full((k, B), np.inf)
        np.copyto(Vt, V.T, where=Mt)
        if not (Vt.min() > 0 and np.count_nonzero(Vt == np.inf) == k * B - n.sum()):
            _check_v_slow(V, m)
        if (n < 1).any():
            raise ValueError("every meta-analysis needs at least one study (a mask row is all False)")
    return _Data(Yt, Vt, Mt, n)


def _bad_y():
    raise ValueError("effect sizes (yi) must be finite; found NaN or infinite values")


def _check_v_slow(V, m):
    vin = V.ravel() if m is None else V[m]
    ok = np.isfinite(vin) & (vin > 0)
    if not ok.all():
        bad = vin[~ok][:3]
        raise ValueError(f"sampling variances (vi) must be finite and > 0; found {bad.tolist()}")


def _as_batch(Y, V, mask=None):
    """Validate and return float (B, k) arrays Y, V (V = 1 where masked) and a bool mask.

    The analysis-major form of the inputs (kept for callers that want plain arrays; the
    estimators work on :func:`_prep`'s :class:`_Data`).
    """
    d = _prep(Y, V, mask)
    Yb = np.ascontiguousarray(d.Y.T)
    Vb = np.ascontiguousarray(d.masked(d.V, 1.0).T)
    mask = np.ones(Yb.shape, dtype=bool) if d.M is None else np.ascontiguousarray(d.M.T)
    return Yb, Vb, mask


def _check_method(method):
    m = str(method).upper()
    if m not in METHODS:
        raise ValueError(f"unknown tau2 method {method!r}; choose one of {', '.join(METHODS)}")
    return m


# ----------------------------------------------------------------------------- blocked sums
def _wmean(d, t):
    """Weighted mean ``sum w y / sum w`` and ``sum w`` at tau2 = t (B,), w = 1/(v + t)."""
    sw = np.zeros(d.B)
    swy = np.zeros(d.B)
    bufs = _Bufs()
    for Yb, Vb, _, cs in d.parts():
        w, = bufs.get(Yb.shape, 1)
        np.add(Vb, t[cs], out=w)
        np.divide(1.0, w, out=w)
        sw[cs] += w.sum(axis=0)
        swy[cs] += _dot(w, Yb)
    return swy / sw, sw


#: rows of the 1-D work buffer of :func:`_moments`: P = [1, z, w, wz, ww, wwz]
_ONE, _Z, _W, _WZ, _WW, _WWZ = range(6)
#: where each sum sits in ``X @ Z.T`` with X = P[_W:_W + m] and Z = P[:4] (see _moments)
_MOMENT_AT = {"w": (0, 0), "wz": (0, 1), "wzz": (1, 1), "ww": (0, 2), "wwz": (0, 3),
              "wwzz": (1, 3), "www": (2, 2), "wwwz": (2, 3), "wwwzz": (3, 3)}


def _colsum_pw(A):
    """Column sums of A (n, m) in numpy's pairwise order (the order of ``A.T.sum(axis=1)``).

    numpy sums a contiguous row pairwise: eight running sums over blocks of 8 for n <= 128,
    halving above; replicated here over the first axis, so that the result is bit for bit
    what the analysis-major layout gives (and as accurate).
    """
    n = A.shape[0]
    if n < 8:
        res = 0.0 + A[0]
        for i in range(1, n):
            res += A[i]
        return res
    if n <= 128:
        r = A[:8].copy()
        i = 8
        while i < n - n % 8:
            r += A[i:i + 8]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for j in range(i, n):
            res += A[j]
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _colsum_pw(A[:n2]) + _colsum_pw(A[n2:])


def _wmean_pw(d, t):
    """:func:`_wmean` with numpy's pairwise sums (the pooled estimate and its variance).

    The sums of ``w`` and ``w y`` over each analysis's studies, in the order numpy sums an
    analysis's row, so the estimate is the plain ``sum(w * y) / sum(w)``, bit for bit (up to
    ``_CHUNK`` studies; above, the blocked sums of :func:`_wmean`).
    """
    if d.Y.shape[0] > _CHUNK:  # blocks split the studies: plain blocked sums
        return _wmean(d, t)
    if d.B == 1:
        w = 1.0 / (d.V[:, 0] + t[0])
        sw = np.sum(w)
        return np.array([np.sum(w * d.Y[:, 0]) / sw]), np.array([sw])
    sw = np.empty(d.B)
    swy = np.empty(d.B)
    bufs = _Bufs()
    for Yb, Vb, _, cs in d.parts():
        w, wy = bufs.get(Yb.shape, 2)
        np.add(Vb, t[cs], out=w)
        np.divide(1.0, w, out=w)
        np.multiply(w, Yb, out=wy)
        sw[cs] = _colsum_pw(w)
        swy[cs] = _colsum_pw(wy)
    return swy / sw, sw


def _moment_names(zz, w2, w3, w3z):
    names = ["w", "wz"]
    if zz:
        names.append("wzz")
    if w2:
        names += ["ww", "wwz", "wwzz"]
    if w3:
        names.append("www")
    if w3z:
        names += ["wwwz", "wwwzz"]
    return names


def _moments(d, t, c, *, zz=False, w2=True, w3=False, w3z=False):
    """Sums over the studies of each analysis at tau2 = t (B,), with ``z = y - c`` (B,).

    Rows of the returned (n, B) array, in this order: ``sum w``, ``sum w z``, then
    ``sum w z^2`` (``zz``), ``sum w^2, sum w^2 z, sum w^2 z^2`` (``w2``), ``sum w^3``
    (``w3``), ``sum w^3 z, sum w^3 z^2`` (``w3z``).

    For one meta-analysis (B = 1) a block's rows ``[1, z, w, wz, w^2, w^2 z]`` are written
    into one buffer P and all sums come from one small matrix product
    ``P[2:2+m] @ P[:4].T`` (entries ``sum w^a z^b``); otherwise column sums of products.
    """
    names = _moment_names(zz, w2, w3, w3z)
    if d.B == 1:
        return _moments_1d(d, float(t[0]), float(c[0]), names, 2 + (w3 or w3z) + w3z)[:, None]
    out = np.zeros((len(names), d.B))
    bufs = _Bufs()
    for Yb, Vb, _, cs in d.parts():
        w, z, wz, ww = bufs.get(Yb.shape, 4)
        np.add(Vb, t[cs], out=w)
        np.divide(1.0, w, out=w)
        np.subtract(Yb, c[cs], out=z)
        np.multiply(w, z, out=wz)
        s = [w.sum(axis=0), wz.sum(axis=0)]
        if zz:
            s.append(_dot(wz, z))
        if w2:
            s += [_dot(w, w), _dot(wz, w), _dot(wz, wz)]
        if w3 or w3z:
            np.multiply(w, w, out=ww)
            if w3:
                s.append(_dot(ww, w))
            if w3z:
                s.append(_dot(ww, wz))
                s.append(_dot(np.multiply(ww, z, out=z), wz))
        for j, v in enumerate(s):
            out[j, cs] += v
    return out


@functools.lru_cache(maxsize=16)
def _moment_index(names, m):
    """Flat indices into ``(X @ Z.T).ravel()`` (m x 4) of the sums ``names``."""
    idx = np.array([_MOMENT_AT[nm][0] * 4 + _MOMENT_AT[nm][1] for nm in names])
    idx.setflags(write=False)
    return idx


def _moments_1d(d, t, c, names, m):
    """:func:`_moments` for B = 1: ``X @ Z.T`` per block, X = rows w.. of P (m of them)."""
    Y, V = d.Y[:, 0], d.V[:, 0]
    k = Y.size
    size = min(k, _CHUNK_GEMM)
    P = d._buf
    if P is None:
        P = d._buf = np.empty((6, size))
        P[_ONE] = 1.0
    acc = None
    for r in range(0, k, size):
        n = min(size, k - r)
        Q = P if n == size else P[:, :n]
        w, z = Q[_W], Q[_Z]
        np.add(V[r:r + n], t, out=w)
        np.divide(1.0, w, out=w)
        np.subtract(Y[r:r + n], c, out=z)
        np.multiply(w, z, out=Q[_WZ])
        if m > 2:
            np.multiply(w, w, out=Q[_WW])
        if m > 3:
            np.multiply(Q[_WW], z, out=Q[_WWZ])
        R = Q[_W:_W + m] @ Q[:4].T
        acc = R if acc is None else acc + R
    return acc.ravel()[_moment_index(tuple(names), m)]


def _centred(S, c):
    """From ``sum w, sum w z, sum w^2, sum w^2 z, sum w^2 z^2``: dz = mu - c, mu, y'PPy."""
    sw, swz, sw2, sw2z, sw2z2 = S
    dz = swz / sw
    yppy = sw2z2 - 2.0 * dz * sw2z + dz * dz * sw2
    return dz, c + dz, yppy


def _q_and_slope_d(d, t, c):
    """Generalised Q at tau2 = t, its derivative ``-y'PPy`` and the weighted mean, (B,) each."""
    S = _moments(d, t, c, zz=True)
    sw, swz, swzz = S[0], S[1], S[2]
    _, mu, yppy = _centred(S[[0, 1, 3, 4, 5]], c)
    return swzz - swz * swz / sw, -yppy, mu


def _q_exact(d, t):
    """Generalised Q at tau2 = t (B,) centred at the exact weighted mean; also sum w, sum w^2."""
    mu, _ = _wmean(d, t)
    S = _moments(d, t, mu, zz=True, w2=False)
    sw, swz, swzz = S
    return swzz - swz * swz / sw, sw, mu


def _score_step_d(d, t, c, reml):
    """Fisher-scoring step of metafor's rma.uni for ML or REML, and the weighted mean, (B,).

    Rows need k >= 2 (:func:`_fisher_d` does not iterate single-study rows, whose step is
    0/0).  With sampling variances spanning ~1e8 the sum for ``tr(PP)`` can cancel to 0;
    the step is then infinite or NaN, which :func:`_fisher_d` treats as no step.
    """
    S = _moments(d, t, c, w3=reml)
    sw, sw2 = S[0], S[2]
    _, mu, yppy = _centred(S[:5], c)
    with np.errstate(divide="ignore", invalid="ignore"):  # cancelled tr(PP), see above
        if not reml:
            return (yppy - sw) / sw2, mu
        r = sw2 / sw
        trp = sw - r
        trpp = sw2 - 2.0 * S[5] / sw + r * r
        return (yppy - trp) / trpp, mu


def _score_and_slope_d(d, t, c, reml):
    """Score of the (restricted) log-likelihood (times 2), its derivative and the mean, (B,).

    ML: ``y'PPy - sum w`` and ``-2 y'PPPy + sum w^2``; REML: ``y'PPy - tr P`` and
    ``-2 y'PPPy + tr PP``, with ``y'PPPy = sum w^3 e^2 - (sum w^2 e)^2 / sum w``.
    """
    S = _moments(d, t, c, w3=True, w3z=True)
    sw, sw2, sw2z, sw3, sw3z, sw3z2 = S[0], S[2], S[3], S[5], S[6], S[7]
    dz, mu, yppy = _centred(S[:5], c)
    ypppy = (sw3z2 - 2.0 * dz * sw3z + dz * dz * sw3) - (sw2z - dz * sw2) ** 2 / sw
    if reml:
        r = sw2 / sw
        return yppy - (sw - r), -2.0 * ypppy + (sw2 - 2.0 * sw3 / sw + r * r), mu
    return yppy - sw, -2.0 * ypppy + sw2, mu


def _ll_multi(d, T, C, reml):
    """(Restricted) log-likelihood at tau2 = T (G, B), centred at C ((B,) or (G, B)): (G, B).

    metafor's ``-0.5 (k log 2 pi + sum log(v + t) + Q(t))`` (ML) and
    ``-0.5 ((k - 1) log 2 pi + sum log(v + t) + log sum w + Q(t))`` (REML); all G points are
    evaluated in one blocked pass over the data.
    """
    G = T.shape[0]
    C = np.broadcast_to(C, T.shape)
    ld = np.zeros((G, d.B))
    sw = np.zeros((G, d.B))
    swz = np.zeros((G, d.B))
    swzz = np.zeros((G, d.B))
    bufs = _Bufs()
    for Yb, Vb, Mb, cs in d.parts():
        vt, w, z = bufs.get(Yb.shape, 3)
        out_ = None if Mb is None else ~Mb
        for j in range(G):
            np.add(Vb, T[j, cs], out=vt)
            np.divide(1.0, vt, out=w)
            if out_ is not None:
                np.copyto(vt, 1.0, where=out_)  # log 1 = 0 for entries that are not studies
            ld[j, cs] += np.log(vt, out=vt).sum(axis=0)
            sw[j, cs] += w.sum(axis=0)
            np.subtract(Yb, C[j, cs], out=z)
            np.multiply(w, z, out=w)
            swz[j, cs] += w.sum(axis=0)
            swzz[j, cs] += _dot(w, z)
    rss = swzz - swz * swz / sw
    k = d.n
    if reml:
        return -0.5 * ((k - 1) * _LOG2PI + ld + np.log(sw) + rss)
    return -0.5 * (k * _LOG2PI + ld + rss)


def _loglik_d(d, t, reml):
    """metafor's (restricted) log-likelihood at tau2 = t (B,), exactly centred, shape (B,)."""
    mu, _ = _wmean(d, t)
    return _ll_multi(d, t[None, :], mu, reml)[0]


def _loglik(Y, V, mask, tau2, reml):
    """:func:`_loglik_d` for (B, k) arrays as :func:`_as_batch` returns them."""
    return _loglik_d(_Data.from_rows(Y, V, mask), np.asarray(tau2, dtype=float), reml)


def generalized_q(Y, V, mask, tau2):
    """Generalised Q ``sum w_i (y_i - ybar_w)^2`` with ``w_i = 1/(v_i + tau2)``, shape (B,).

    ``Y``, ``V``: (B, k) arrays; entries where ``mask`` is False are ignored.
    """
    mask = np.asarray(mask, dtype=bool)
    Y = np.where(mask, Y, 0.0)
    V = np.where(mask, V, 1.0)
    d = _Data.from_rows(Y, V, mask)
    return _q_exact(d, np.broadcast_to(np.asarray(tau2, dtype=float), (d.B,)).copy())[0]


# ----------------------------------------------------------------------------- closed forms
def _fe(d):
    """Fixed-effect sums (cached on ``d``): Q(0), sum w, sum w^2 and the weighted mean."""
    if d._fe is not None:
        return d._fe
    k, B = d.Y.shape
    if B == 1 or k > _CHUNK:  # blocks split the studies: the mean first, then the sums
        zero = np.zeros(B)
        mu, _ = _wmean(d, zero)
        S = _moments(d, zero, mu, zz=True)
        sw, swz, swzz, sw2 = S[0], S[1], S[2], S[3]
        d._fe = (swzz - swz * swz / sw, sw, sw2, mu + swz / sw)
        return d._fe
    q, sw, sw2, mu = np.empty(B), np.empty(B), np.empty(B), np.empty(B)
    bufs = _Bufs()
    for Yb, Vb, _, cs in d.parts():  # whole analyses per block: mean and sums in one visit
        w, e, we = bufs.get(Yb.shape, 3)
        np.divide(1.0, Vb, out=w)
        s = w.sum(axis=0)
        m = _dot(w, Yb) / s
        np.subtract(Yb, m, out=e)
        np.multiply(w, e, out=we)
        swe = we.sum(axis=0)
        q[cs] = _dot(we, e) - swe * swe / s
        sw[cs], sw2[cs], mu[cs] = s, _dot(w, w), m + swe / s
    d._fe = (q, sw, sw2, mu)
    return d._fe


def _mean_rss(d):
    """Unweighted mean and ``sum (y - mean)^2`` over the studies of each analysis."""
    if d._moments0 is None:
        sy = np.zeros(d.B)
        for Yb, _, _, cs in d.parts():
            sy[cs] += Yb.sum(axis=0)
        mean = sy / d.n
        rss = np.zeros(d.B)
        bufs = _Bufs()
        for Yb, _, Mb, cs in d.parts():
            e, = bufs.get(Yb.shape, 1)
            np.subtract(Yb, mean[cs], out=e)
            if Mb is not None:
                e *= Mb
            rss[cs] += _dot(e, e)
        d._moments0 = (mean, rss)
    return d._moments0


def _vsum(d):
    """Sum of the sampling variances of each analysis."""
    out = np.zeros(d.B)
    for _, Vb, Mb, cs in d.parts():
        out[cs] += (Vb.sum(axis=0) if Mb is None else np.where(Mb, Vb, 0.0).sum(axis=0))
    return out


def _dl(d):
    q, sw, sw2, _ = _fe(d)
    k = d.n
    trp = sw - sw2 / sw
    with np.errstate(invalid="ignore", divide="ignore"):
        return (q - (k - 1)) / trp


def _he(d):
    k = d.n
    _, rss = _mean_rss(d)
    trpv = _vsum(d) * (k - 1) / k
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rss - trpv) / (k - 1)


def _hs(d):
    q, sw, _, _ = _fe(d)
    return (q - d.n) / sw


def _sj(d):
    k = d.n
    tau0 = _mean_rss(d)[1] / k  # var(y) (k-1)/k
    q = _q_exact(d, tau0)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return tau0 * q / (k - 1)


# ----------------------------------------------------------------------------- root of Q
def _q_root_1(d, target, tol, maxiter, t, c, q0):
    """:func:`_q_root_d` for one meta-analysis without mask, in floats (same operations)."""
    names = ("w", "wz", "wzz", "ww", "wwz", "wwzz")

    def q_and_slope(t, c):
        sw, swz, swzz, sw2, sw2z, sw2z2 = _moments_1d(d, t, c, names, 2).tolist()
        dz = _sdiv(swz, sw)
        return swzz - _sdiv(swz * swz, sw), -(sw2z2 - 2.0 * dz * sw2z + dz * dz * sw2), c + dz

    if c is None:
        c = float(_wmean(d, np.array([t]))[0][0])
    if q0 is None:
        q, dq, c = q_and_slope(t, c)
    else:
        q, dq = q0
    if not q > target:
        return t, True
    for it in range(maxiter):
        if it:
            q, dq, mu = q_and_slope(t, c)
            if math.isfinite(mu):
                c = mu
        step = -_sdiv(q - target, dq)
        step = max(step, 0.0) if math.isfinite(step) else 0.0
        t = t + step
        if step <= tol * max(1.0, t):
            return t, True
    return t, False


def _q_root_d(d, target, *, tol=1e-12, maxiter=200, start=None, c=None, q0=None):
    """Solve ``Q(tau2) = target`` for each row of ``d`` (0 where ``Q(0) <= target``).

    ``Q(tau2)`` is decreasing and convex in tau2 (its derivative is ``-y'PPy`` and its
    second derivative ``2 y'PPPy >= 0``), so Newton's method started at or below the root
    increases monotonically to it.  ``start`` (B,), when given, must not exceed the root
    (a row whose ``Q(start) <= target`` returns ``start``); by default 0.  ``c`` (B,) is a
    centre for the sums (default: the weighted mean at ``start``) and ``q0``, when given,
    ``(Q, dQ/dtau2)`` at ``start`` computed with that centre.  Rows that do not converge
    within ``maxiter`` are finished by :func:`scipy.optimize.brentq`.

    Returns
    -------
    tau2 : ndarray (B,)
    converged_by_newton : ndarray of bool (B,)
    """
    B = d.B
    target = np.broadcast_to(np.asarray(target, dtype=float), (B,)).copy()
    tau2 = np.zeros(B) if start is None else np.array(start, dtype=float)
    if B == 1 and d.M is None:
        t, ok = _q_root_1(d, float(target[0]), tol, maxiter, float(tau2[0]),
                          None if c is None else float(c[0]),
                          None if q0 is None else (float(q0[0][0]), float(q0[1][0])))
        if not ok:
            t = _q_root_scalar(d, float(target[0]), t)
        return np.array([t]), np.array([ok])
    if c is None:
        c, _ = _wmean(d, tau2)
    if q0 is None:
        q, dq, c = _q_and_slope_d(d, tau2, c)
    else:
        q, dq = q0
    active = q > target
    done = ~active
    rows = np.flatnonzero(active)
    if rows.size:
        dw = d.take(rows)
        t, c, q, dq = tau2[rows], c[rows], q[rows], dq[rows]
        tg = target[rows]
        live = np.ones(rows.size, dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):  # a zero slope: non-finite step
            for it in range(maxiter):
                if it:
                    q, dq, mu = _q_and_slope_d(dw, t, c)
                    c = np.where(np.isfinite(mu), mu, c)
                step = -(q - tg) / dq
                step = np.where(live & np.isfinite(step), np.maximum(step, 0.0), 0.0)
                t = t + step
                live &= ~(step <= tol * np.maximum(1.0, t))
                n_live = np.count_nonzero(live)
                if n_live == 0:
                    break
                if n_live <= live.size // 2:  # drop finished rows from the working set
                    tau2[rows], done[rows[~live]] = t, True
                    keep = np.flatnonzero(live)
                    rows, t, c, tg, dw = rows[keep], t[keep], c[keep], tg[keep], dw.take(keep)
                    live = np.ones(keep.size, dtype=bool)
        tau2[rows] = t
        done[rows[~live]] = True
    newton_ok = done.copy()
    for i in np.flatnonzero(~done):
        tau2[i] = _q_root_scalar(d.take(np.array([i])), target[i], tau2[i])
    return tau2, newton_ok


def q_root(Y, V, mask, target, *, tol=1e-12, maxiter=200):
    """Solve ``Q(tau2) = target`` for each row of (B, k) arrays (0 where ``Q(0) <= target``).

    Newton's method from 0, monotone because Q is decreasing and convex (see
    :func:`_q_root_d`); used for Paule-Mandel, EB and the Q-profile CI (Viechtbauer 2007).
    ``Y, V, mask`` as returned by :func:`_as_batch`.

    Returns
    -------
    tau2 : ndarray (B,)
    converged_by_newton : ndarray of bool (B,)
    """
    return _q_root_d(_Data.from_rows(Y, V, mask), target, tol=tol, maxiter=maxiter)


def _q_root_scalar(d1, target, lo):
    from scipy import optimize

    def f(t):
        return float(_q_exact(d1, np.array([t]))[0][0]) - target

    y = d1.Y[:, 0] if d1.M is None else d1.Y[d1.M[:, 0], 0]
    v = d1.V[:, 0] if d1.M is None else d1.V[d1.M[:, 0], 0]
    hi = max(2.0 * lo, float(np.var(y)) + float(v.max()), 1e-8)
    while f(hi) > 0:
        hi *= 4.0
    return optimize.brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=1000)


# ----------------------------------------------------------------------------- ML / REML / EB
def _halve_into_range(t, adj):
    """metafor's step halving ``while (tau2 + adj < 0) adj <- adj / 2``, without the loop.

    Returns ``adj / 2^n`` for the smallest ``n >= 0`` with ``t + adj / 2^n >= 0`` (t >= 0).
    At ``t = 0`` a negative step halves until it underflows to ``-0.0`` (about 1075 halvings
    in R); that end point is set directly.  Otherwise the first ``n0 <= n`` halvings (from the
    binary exponents of ``adj`` and ``t``) are done at once by :func:`numpy.ldexp`, exact as
    long as the result stays a normal number (``n0`` is capped so that it does), and the rest
    one by one, so the result is bit for bit that of the loop.
    """
    neg = t + adj < 0
    if not neg.any():
        return adj
    adj = adj.copy()
    at0 = neg & (t <= 0)
    adj[at0] = -0.0
    rest = neg & ~at0
    if rest.any():
        ea = np.frexp(adj[rest])[1]
        n0 = np.minimum(ea - np.frexp(t[rest])[1] - 2, ea + 1021)  # 2**-1022: smallest normal
        adj[rest] = np.ldexp(adj[rest], -np.maximum(n0, 0))
        neg = t + adj < 0
        while neg.any():
            adj[neg] /= 2.0
            neg = t + adj < 0
    return adj


def _sdiv(a, b):
    """``a / b`` for floats with IEEE results (inf, NaN) instead of ZeroDivisionError."""
    try:
        return a / b
    except ZeroDivisionError:
        return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)


def _halve_1(t, adj):
    """:func:`_halve_into_range` for one float (the same operations, so the same bits)."""
    if not t + adj < 0:
        return adj
    if t <= 0:
        return -0.0
    ea = math.frexp(adj)[1]
    n0 = min(ea - math.frexp(t)[1] - 2, ea + 1021)
    adj = math.ldexp(adj, -max(n0, 0))
    while t + adj < 0:
        adj /= 2.0
    return adj


def _fisher_1(d, reml, tol, maxiter, t):
    """:func:`_fisher_d` for one meta-analysis without mask, from start ``t``, in floats.

    The same operations in the same order as the vectorised iteration (so the same
    numbers), without the per-call cost of numpy on arrays of one element.
    """
    names, m = (("w", "wz", "ww", "wwz", "wwzz", "www"), 3) if reml else (("w", "wz", "ww", "wwz", "wwzz"), 2)
    c = float(_wmean(d, np.array([t]))[0][0])
    for _ in range(maxiter):
        S = _moments_1d(d, t, c, names, m).tolist()
        sw, swz, sw2, sw2z, sw2z2 = S[:5]
        dz = _sdiv(swz, sw)
        mu = c + dz
        yppy = sw2z2 - 2.0 * dz * sw2z + dz * dz * sw2
        if reml:
            r = _sdiv(sw2, sw)
            trpp = sw2 - _sdiv(2.0 * S[5], sw) + r * r
            adj = _sdiv(yppy - (sw - r), trpp)
        else:
            adj = _sdiv(yppy - sw, sw2)
        if not math.isfinite(adj):
            adj = 0.0
        adj = _halve_1(t, adj)
        t = t + adj
        if math.isfinite(mu):
            c = mu
        if abs(adj) <= tol * max(1.0, t):
            return t, True, c
    return t, False, c


def _fisher_d(d, method, tol, maxiter):
    """metafor's Fisher scoring from the truncated HE start.

    Returns tau2, a convergence flag and the weighted mean of the last iteration (NaN for
    rows not iterated), each (B,).

    Single-study rows are not iterated (tau2 = 0 by definition; their score step is 0/0).
    Rows iterate together, each until its own step meets the tolerance; finished rows
    leave the working set once a quarter of it has finished, so late iterations touch
    only the rows still iterating.
    """
    reml = method == "REML"
    tau2 = np.maximum(_he(d), 0.0)
    tau2 = np.where(np.isfinite(tau2), tau2, 0.0)
    active = d.n > 1
    rows = np.flatnonzero(active)
    mu_hat = np.full(d.B, np.nan)
    if rows.size == 0 or maxiter <= 0:
        return tau2, ~active, mu_hat
    if d.B == 1 and d.M is None:
        t, ok, c = _fisher_1(d, reml, tol, maxiter, float(tau2[0]))
        return np.array([t]), np.array([ok]), np.array([c])
    dw = d.take(rows)
    t = tau2[rows]
    c, _ = _wmean(dw, t)
    live = np.ones(rows.size, dtype=bool)
    for _ in range(maxiter):
        adj, mu = _score_step_d(dw, t, c, reml)
        adj = np.where(live & np.isfinite(adj), adj, 0.0)
        adj = _halve_into_range(t, adj)  # keeps tau2 >= 0 as metafor
        t = t + adj
        c = np.where(np.isfinite(mu), mu, c)
        live &= ~(np.abs(adj) <= tol * np.maximum(1.0, t))
        n_live = np.count_nonzero(live)
        if n_live == 0:
            break
        if n_live <= 0.75 * live.size:  # drop finished rows from the working set
            tau2[rows], mu_hat[rows], active[rows[~live]] = t, c, False
            keep = np.flatnonzero(live)
            rows, t, c, dw = rows[keep], t[keep], c[keep], dw.take(keep)
            live = np.ones(keep.size, dtype=bool)
    tau2[rows], mu_hat[rows] = t, c
    active[rows[~live]] = False
    return tau2, ~active, mu_hat


def _fisher(Y, V, mask, method, tol, maxiter):
    """:func:`_fisher_d` (tau2 and the convergence flag) for (B, k) arrays as :func:`_as_batch`
    returns them."""
    return _fisher_d(_Data.from_rows(Y, V, mask), method, tol, maxiter)[:2]


def _ll_upper(d, reml):
    """An upper end of the search per row: the score is negative there (the maximum is below)."""
    k = d.n
    mean, rss = _mean_rss(d)
    var = rss / np.maximum(k - 1, 1)
    hi = 10.0 * var + d.masked(d.V).max(axis=0)
    for _ in range(200):
        S = _moments(d, hi, mean, w3=reml)
        sw, sw2 = S[0], S[2]
        _, _, yppy = _centred(S[:5], mean)
        score = yppy - ((sw - sw2 / sw) if reml else sw)
        up = score > 0
        if not up.any():
            break
        hi = np.where(up, hi * 4.0, hi)
    return hi


@functools.lru_cache(maxsize=8)
def _rel_grid(n_grid):
    """``{0} U geomspace(1e-10, 1, n_grid)`` (read-only; cached: geomspace costs ~50 us a call)."""
    rel = np.concatenate([[0.0], np.geomspace(1e-10, 1.0, n_grid)])
    rel.setflags(write=False)
    return rel


def _ll_grid_best(d, reml, n_grid, c=None):
    """Best point of a log-spaced grid ``{0} U geomspace(1e-10, 1, n_grid) * hi`` per row.

    The likelihood at all grid points is evaluated in one blocked pass (:func:`_ll_multi`),
    centred at ``c`` (B,) (default: the unweighted mean).  Returns the relative grid, the
    upper end ``hi``, the index of the best grid point (the first one on ties; NaN
    likelihoods never win) and its log-likelihood, all per row.
    """
    hi = _ll_upper(d, reml)
    rel = _rel_grid(n_grid)
    if c is None:
        c = _mean_rss(d)[0]
    ll = _ll_multi(d, rel[:, None] * hi[None, :], c, reml)
    ll = np.where(np.isnan(ll), -np.inf, ll)
    best_j = np.argmax(ll, axis=0)
    best_ll = ll[best_j, np.arange(d.B)]
    return rel, hi, best_j, best_ll


def _ll_refine(d, reml, tol, maxiter, rel, hi, best_j):
    """Polish the best grid point by a bracketed Newton iteration on the score, per row.

    The bracket is the two grid neighbours of the best point; Newton steps that leave it are
    replaced by bisection.  Rows still unconverged are finished by
    :func:`scipy.optimize.brentq` on the score.
    """
    B = d.B
    n_grid = rel.size - 1
    lo = rel[np.maximum(best_j - 1, 0)] * hi
    up_b = rel[np.minimum(best_j + 1, n_grid)] * hi
    x = rel[best_j] * hi
    zero = np.zeros(B)
    c, _ = _wmean(d, zero)
    s0 = _score_and_slope_d(d, zero, c, reml)[0]
    at_zero = (best_j == 0) & (s0 <= 0)
    x = np.where(at_zero, 0.0, x)
    active = ~at_zero
    c, _ = _wmean(d, x)
    for _ in range(maxiter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        xi = x[idx]
        sc, sl, mu = _score_and_slope_d(d.take(idx), xi, c[idx], reml)
        c[idx] = np.where(np.isfinite(mu), mu, c[idx])
        lo[idx] = np.where(sc > 0, xi, lo[idx])
        up_b[idx] = np.where(sc > 0, up_b[idx], xi)
        with np.errstate(invalid="ignore", divide="ignore"):
            newton = xi - sc / sl
        ok = (sl < 0) & (newton > lo[idx]) & (newton < up_b[idx])
        nxt = np.where(ok, newton, 0.5 * (lo[idx] + up_b[idx]))
        nxt = np.where(sc == 0, xi, nxt)  # a root: stay (the bracket's update would leave it)
        x[idx] = nxt
        scale = tol * np.maximum(1.0, nxt)
        conv = (np.abs(nxt - xi) <= scale) | (up_b[idx] - lo[idx] <= scale) | (sc == 0)
        active[idx[conv]] = False
    for i in np.flatnonzero(active):  # pragma: no cover - safeguard, not reached in tests
        from scipy import optimize

        di = d.take(np.array([i]))

        def score(t, di=di):
            tt = np.array([t])
            return float(_score_and_slope_d(di, tt, _wmean(di, tt)[0], reml)[0][0])

        if score(lo[i]) > 0 > score(up_b[i]):
            x[i] = optimize.brentq(score, lo[i], up_b[i], xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.maximum(x, 0.0)


def _ll_search(d, reml, tol, maxiter, n_grid=200):
    """Global maximiser of the (restricted) likelihood on [0, inf) for every row of ``d``.

    A log-spaced grid (evaluated in one blocked pass) locates the best point; a bracketed
    Newton iteration on the score (bisection whenever Newton leaves the bracket) then polishes
    it, vectorised over rows (:func:`_ll_refine`).
    """
    rel, hi, best_j, _ = _ll_grid_best(d, reml, n_grid)
    return _ll_refine(d, reml, tol, maxiter, rel, hi, best_j)


def _tau2_core(d, method, tol=1e-12, maxiter=1000, info=None):
    """tau2 (B,) and a status code per row (see _OK, _FALLBACK, _TRUNC_LL0) of a :class:`_Data`.

    For ML and REML, a dict ``info`` receives ``mu`` (about the weighted mean at the
    estimate: a centre for sums) and ``ll`` (the log-likelihood there; NaN where not computed).
    """
    B = d.B
    k = d.n
    status = np.full(B, _OK)
    if method == "DL":
        tau2 = _dl(d)
    elif method == "HE":
        tau2 = _he(d)
    elif method == "HS":
        tau2 = _hs(d)
    elif method == "SJ":
        tau2 = _sj(d)
    elif method in ("PM", "EB"):
        tau2, ok = _q_root_d(d, k - 1.0, tol=tol, maxiter=maxiter)
        status[~ok] = _FALLBACK
    else:  # ML, REML
        tau2, ok, mu_hat = _fisher_d(d, method, tol, min(maxiter, FISHER_MAXITER))
        reml = method == "REML"
        bad = np.flatnonzero(~ok & (k > 1))
        if bad.size:
            db = d.take(bad)
            tau2[bad] = _ll_search(db, reml, tol, maxiter)
            mu_hat[bad] = _wmean(db, tau2[bad])[0]
            status[bad] = _FALLBACK
        ll_hat = np.full(B, np.nan)
        if info is not None:
            info.update(mu=mu_hat, ll=ll_hat)
        # metafor's ll0check: a stationary point below the likelihood at tau2 = 0 is discarded
        sel = (tau2 > 0) & (k > 1)
        if sel.any():
            idx = np.flatnonzero(sel)
            ds = d.take(idx)
            T = np.stack([tau2[idx], np.zeros(idx.size)])
            C = np.stack([mu_hat[idx], _fe(d)[3][idx]])
            ll, ll0 = _ll_multi(ds, T, C, reml)
            worse = ll0 - ll > 1e-12 * np.maximum(1.0, np.abs(ll))
            ll_hat[idx] = np.where(worse, ll0, ll)
            mu_hat[idx] = np.where(worse, C[1], C[0])
            tau2[idx[worse]] = 0.0
            # only worth a note when the discarded value is not numerically zero
            status[idx[worse & (ll0 - ll > 1e-8)]] = _TRUNC_LL0
    tau2 = np.where(k <= 1, 0.0, tau2)
    tau2 = np.where(np.isfinite(tau2), np.maximum(tau2, 0.0), 0.0)
    return tau2, status


def _ll_stats(d, g, c, fourfold=False):
    """Per-point sums of the likelihood at tau2 = g (G,) for one meta-analysis (B = 1).

    Returns a (7, G) array: ``sum log(v + t)``, then ``sum w, sum w z, sum w z^2`` and
    ``sum w^2, sum w^2 z, sum w^2 z^2`` with ``w = 1/(v + t)`` and ``z = y - c``; one
    blocked pass over the studies for all G points, the sums of products by one matrix
    product per block.  With ``fourfold`` (only when every ``v + t`` lies in
    [1e-70, 1e70], so that no product of four over- or underflows) the logarithm is taken
    of products of four terms, a quarter of the logarithms.
    """
    G = g.size
    out = np.zeros((7, G))
    c0 = float(c[0])
    Y, V = d.Y[:, 0], d.V[:, 0]
    M = None if d.M is None else d.M[:, 0]
    k = Y.size
    size = min(k, max(4, max(_MIN_BLOCK, _CHUNK_GRID // (2 * G)) // 4 * 4))
    VT = np.empty((G, size))
    WW = np.empty((2 * G, size))
    P = np.empty((G, size // 2))
    Z = np.empty((3, size))
    Z[0] = 1.0
    for r in range(0, k, size):
        n = min(size, k - r)
        vt, ww, z = VT[:, :n], WW[:, :n], Z[:, :n]
        np.add(V[r:r + n][None, :], g[:, None], out=vt)
        np.divide(1.0, vt, out=ww[:G])
        np.multiply(ww[:G], ww[:G], out=ww[G:])
        if M is not None:
            vt[:, ~M[r:r + n]] = 1.0  # log 1 = 0 for entries that are not studies
            out[0] += np.log(vt, out=vt).sum(axis=1)
        elif fourfold and n % 4 == 0:
            h, q = n // 2, n // 4
            p = P[:, :h]
            np.multiply(vt[:, :h], vt[:, h:], out=p)
            np.multiply(p[:, :q], p[:, q:], out=p[:, :q])
            out[0] += np.log(p[:, :q], out=p[:, :q]).sum(axis=1)
        else:
            out[0] += np.log(vt, out=vt).sum(axis=1)
        np.subtract(Y[r:r + n], c0, out=z[1])
        np.multiply(z[1], z[1], out=z[2])
        R = ww @ z.T
        out[1:4] += R[:G].T
        out[4:7] += R[G:].T
    return out


def _ll_from_stats(st, k, reml):
    """Log-likelihood from :func:`_ll_stats` sums (k studies)."""
    L, S0, S1, S2 = st[0], st[1], st[2], st[3]
    rss = S2 - S1 * S1 / S0
    if reml:
        return -0.5 * ((k - 1) * _LOG2PI + L + np.log(S0) + rss)
    return -0.5 * (k * _LOG2PI + L + rss)


def _ll_bound(st_a, st_b, a, b, t, k, reml):
    """Upper bound of the (restricted) log-likelihood at ``a <= t <= b`` from the sums of
    :func:`_ll_stats` at ``a`` and ``b`` (arrays over points; see :func:`_grid_best_pruned`).

    ``sum log(v + t) >= `` its chord between a and b (log is concave), and with
    ``w~ = w(b) + (b - t) w(b)^2 <= w(t)`` (the tangent of the convex 1/(v + t) at b):
    ``sum w(t) >= sum w~`` and ``Q(t) >= min_mu sum w~ (y - mu)^2``.
    """
    lam = (t - a) / (b - a)
    Lc = st_a[0] + lam * (st_b[0] - st_a[0])
    dl = b - t
    S0 = st_b[1] + dl * st_b[4]
    S1 = st_b[2] + dl * st_b[5]
    S2 = st_b[3] + dl * st_b[6]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _ll_from_stats(np.array([Lc, S0, S1, S2]), k, reml)


def _grid_best_pruned(d, reml, n_grid, c, t_hat, coarse=8):
    """The best point of :func:`_ll_grid_best`'s grid (one meta-analysis), in a few passes.

    The likelihood is evaluated exactly at a coarse subset of the grid (every ``coarse``-th
    point, both ends and the two points around ``t_hat``), then, pass after pass, at the
    middle one of the points that rigorous upper bounds cannot exclude in each gap between
    evaluated points, until none is left.  For ``t`` between evaluated points
    ``a < t < b``: ``sum log(v + t)`` lies above its chord (log is concave), and every weight
    ``1/(v + t)`` above its tangent at ``b``, ``w(b) + (b - t) w(b)^2`` (1/x is convex), so
    ``sum w >= sum w~`` and ``Q(t) = min_mu sum w (y - mu)^2 >= min_mu sum w~ (y - mu)^2``;
    with these the (restricted) log-likelihood at ``t`` is at most an expression of the sums
    at ``a`` and ``b``.  A point is skipped only when that bound is below the best evaluated
    likelihood by more than ``1e-10 max(1, |best|)`` (far more than rounding), so it cannot be
    the best point: the result is the full grid's argmax (first on ties) and its value.
    Below ``_GRID_PRUNE_MIN_K`` studies the whole grid is evaluated in one pass.

    Returns the relative grid, ``hi``, the best index and its log-likelihood (arrays of one).
    """
    hi = _ll_upper(d, reml)
    rel = _rel_grid(n_grid)
    g = rel * hi[0]
    G = g.size
    k = float(d.n[0])
    st = np.full((7, G), np.nan)
    ll = np.full(G, -np.inf)
    done = np.zeros(G, dtype=bool)
    if k < _GRID_PRUNE_MIN_K:  # the whole grid in one pass costs less than the bookkeeping
        ll = _ll_from_stats(_ll_stats(d, g, c), k, reml)
        best_j = int(np.argmax(np.where(np.isnan(ll), -np.inf, ll)))
        return rel, hi, np.array([best_j]), np.array([ll[best_j]])
    jt = int(np.searchsorted(g, t_hat, side="right"))  # g[jt - 1] <= t_hat < g[jt]
    todo = np.unique(np.r_[np.arange(0, G, coarse), G - 1, max(jt - 1, 0), min(jt, G - 1)])
    vin = d.masked(d.V, np.nan)
    fourfold = d.M is None and np.nanmin(vin) > 1e-70 and np.nanmax(vin) + g[-1] < 1e70
    while todo.size:
        s = _ll_stats(d, g[todo], c, fourfold)
        st[:, todo] = s
        v = _ll_from_stats(s, k, reml)
        ll[todo] = np.where(np.isnan(v), -np.inf, v)
        done[todo] = True
        best = ll.max()
        rest = np.flatnonzero(~done)
        if rest.size == 0 or not np.isfinite(best):
            todo = rest
            continue
        ev = np.flatnonzero(done)
        pos = np.searchsorted(ev, rest)
        a, b = ev[pos - 1], ev[pos]
        bound = _ll_bound(st[:, a], st[:, b], g[a], g[b], g[rest], k, reml)
        keep = ~(bound < best - 1e-10 * max(1.0, abs(best)))
        todo = rest[keep]
        if todo.size:  # one point per gap that is not excluded, its middle one: bisection
            gap = a[keep]
            first = np.r_[True, gap[1:] != gap[:-1]]
            starts = np.flatnonzero(first)
            ends = np.r_[starts[1:], todo.size]
            todo = todo[(starts + ends - 1) // 2]
    best_j = int(np.argmax(ll))
    return rel, hi, np.array([best_j]), np.array([ll[best_j]])


def _higher_maximum(d, tau2, reml, tol, maxiter, n_grid=50, mu=None, ll_here=None):
    """A tau2 with a higher (restricted) likelihood than the Fisher-scoring ``tau2`` (one row).

    The likelihood is evaluated on the grid of :func:`_ll_grid_best`, skipping the points
    that provably cannot be its best one (:func:`_grid_best_pruned`: a few blocked passes).
    When no grid point beats ``tau2`` and the best grid point's bracket (its two neighbours)
    contains ``tau2``, the grid agrees with Fisher scoring and ``None`` is returned without
    further work; otherwise the best grid point is polished (:func:`_ll_refine`) and returned
    if its likelihood exceeds that at ``tau2`` by more than ``1e-9 max(1, |ll|)``.
    ``mu`` and ``ll_here`` (arrays of one), the weighted mean and the log-likelihood at
    ``tau2`` if known, save passes.
    """
    if mu is None or not np.isfinite(mu[0]):
        mu, _ = _wmean(d, tau2)
    if ll_here is None or not np.isfinite(ll_here[0]):
        ll_here = _ll_multi(d, tau2[None, :], mu, reml)[0]
    ll_here = float(ll_here[0])
    thr = 1e-9 * max(1.0, abs(ll_here))
    rel, hi, best_j, best_ll = _grid_best_pruned(d, reml, n_grid, mu, float(tau2[0]))
    j = int(best_j[0])
    lo, up = rel[max(j - 1, 0)] * hi[0], rel[min(j + 1, n_grid)] * hi[0]
    if best_ll[0] - ll_here <= thr and lo <= tau2[0] <= up:
        return None
    best = _ll_refine(d, reml, tol, maxiter, rel, hi, best_j)
    if _loglik_d(d, best, reml)[0] - ll_here > thr:
        return float(best[0])
    return None


# ----------------------------------------------------------------------------- public API
def estimate_tau2_batch(Y, V, mask=None, method="REML", *, tol=1e-12, maxiter=1000):
    """Estimate tau² for B meta-analyses at once.

    Parameters
    ----------
    Y, V : array_like, shape (B, k)
        Effect sizes and sampling variances; entries where ``mask`` is False are ignored
        (they may hold anything, e.g. zeros).
    mask : array_like of bool, shape (B, k), optional
        Which entries are studies (ragged k); all True by default.
    method : str
        One of ``DL, REML, ML, PM, HE, SJ, EB, HS`` (metafor ``rma.uni`` definitions).
    tol, maxiter : float, int
        Convergence tolerance (on the change of tau², relative to ``max(1, tau2)``) and the
        iteration limit of the iterative estimators.

    Returns
    -------
    ndarray, shape (B,)
        tau² estimates, truncated at 0 (0 where k = 1).

    Notes
    -----
    Validated against R metafor 3.8-1 ``rma.uni`` (tests/test_tau2.py). All rows iterate
    together with per-row convergence; rows where Fisher scoring fails fall back to a
    bounded scalar search (see :func:`estimate_tau2`).
    """
    d = _prep(Y, V, mask)
    return _tau2_core(d, _check_method(method), tol, maxiter)[0]


def estimate_tau2(yi, vi, method="REML", *, tol=1e-12, maxiter=1000):
    """Estimate the between-study variance tau² of one meta-analysis.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and their sampling variances (> 0).
    method : str
        ``DL``, ``REML``, ``ML``, ``PM``, ``HE``, ``SJ``, ``EB`` or ``HS`` as in R metafor
        ``rma.uni`` (see the module docstring for definitions and references).
    tol, maxiter : float, int
        Convergence criterion and iteration limit of the iterative estimators.

    Returns
    -------
    tau2 : float
        The estimate, truncated at 0.
    notes : tuple of str
        What happened, e.g. that Fisher scoring did not converge and the maximum was found
        by a bounded search, or that the estimate was truncated at 0.

    Notes
    -----
    Validated against R metafor 3.8-1 (``rma(yi, vi, method=...)``) to 1e-8 for the closed
    forms and 1e-6 for the iterative estimators (tests/test_metafor_conformance.py).
    """
    yi = np.asarray(yi, dtype=float).ravel()
    vi = np.asarray(vi, dtype=float).ravel()
    method = _check_method(method)
    return _estimate_one(_prep(yi[None], vi[None]), method, tol, maxiter)


def _estimate_one(d, method, tol=1e-12, maxiter=1000):
    """:func:`estimate_tau2` for a validated one-analysis :class:`_Data` and a checked method."""
    info = {}
    tau2, status = _tau2_core(d, method, tol, maxiter, info)
    notes = []
    k = int(d.n[0])
    if k == 1:
        notes.append("k = 1: tau2 set to 0")
    elif status[0] == _FALLBACK:
        if method in ("ML", "REML"):
            notes.append(f"{method}: Fisher scoring did not converge in "
                         f"{min(maxiter, FISHER_MAXITER)} iterations; maximum of the likelihood "
                         "found by a bounded search (grid + bracketed Newton on the score)")
        else:
            notes.append(f"{method}: Newton iteration did not converge; root of Q(tau2) = k - 1 "
                         "found by scipy brentq")
    elif status[0] == _TRUNC_LL0:
        notes.append(f"{method}: Fisher scoring stopped at a stationary point with lower likelihood "
                     "than tau2 = 0; tau2 set to 0 (as metafor)")
    if method in ("ML", "REML") and k > 1 and status[0] != _FALLBACK:
        better = _higher_maximum(d, tau2, method == "REML", tol, maxiter, mu=info["mu"],
                                 ll_here=info["ll"])
        if better is not None:
            notes.append(f"{method}: the likelihood has a higher maximum at tau2 = {better:.6g} "
                         f"than at the Fisher-scoring solution tau2 = {tau2[0]:.6g} returned here "
                         "(as metafor); check the profile likelihood")
    if k > 1 and tau2[0] == 0.0 and status[0] != _TRUNC_LL0:
        raw = {"DL": _dl, "HE": _he, "HS": _hs}.get(method)
        if raw is not None and raw(d)[0] < 0:
            notes.append(f"{method}: negative estimate truncated at tau2 = 0")
    return float(tau2[0]), tuple(notes)


def _chi2_quantiles(alpha, df):
    """``chi2.isf(alpha/2, df)`` and ``chi2.ppf(alpha/2, df)`` (the functions scipy.stats calls).

    Calling :mod:`scipy.special` directly gives the same numbers without the per-call
    overhead of the ``scipy.stats`` distribution machinery (about 0.1 ms each).
    """
    df = np.asarray(df, dtype=float)
    return special.chdtri(df, alpha / 2), 2.0 * special.gammaincinv(df / 2, alpha / 2)


def _qprofile_core(d, level, tol, maxiter, start=None, mu=None):
    """Q-profile bounds (lb, ub) of a :class:`_Data`, each the root of ``Q = chi2 quantile``.

    ``start`` (B,), e.g. the tau² estimate, only speeds up the search: from ``Q(start)`` and
    its slope a starting point at or below each root follows (``start`` itself when the root
    is above it, else the zero of the tangent there, below the root because Q is convex), so
    Newton's method needs a few steps instead of starting at 0.  The roots are the same.
    ``mu`` (B,), the weighted mean at ``start`` if known, saves a pass.
    """
    df = np.maximum(d.n - 1, 1)
    crit_u, crit_l = _chi2_quantiles(1.0 - level, df)  # lb solves Q = crit_u, ub solves Q = crit_l
    if start is None:
        return tuple(_q_root_d(d, crit, tol=tol, maxiter=maxiter)[0] for crit in (crit_u, crit_l))
    start = np.asarray(start, dtype=float)
    c = _wmean(d, start)[0] if mu is None else np.asarray(mu, dtype=float)
    q, dq, c = _q_and_slope_d(d, start, c)
    out = []
    for crit in (crit_u, crit_l):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            tangent = start + (crit - q) / dq
        above = q > crit  # the root is above start: start there, Q and dQ known
        s = np.where(above, start, np.where(np.isfinite(tangent), np.maximum(tangent, 0.0), 0.0))
        q0 = (q, dq) if above.all() else None
        out.append(_q_root_d(d, crit, tol=tol, maxiter=maxiter, start=s, c=c, q0=q0)[0])
    return out[0], out[1]


def qprofile_ci_batch(Y, V, mask=None, level=0.95, *, tau2_max=None, tol=1e-12, maxiter=200):
    """Q-profile confidence bounds for tau² of B meta-analyses, arrays (lb, ub) of shape (B,).

    See :func:`qprofile_ci`; ``tau2_max`` may be an array (B,); rows with k < 2 get NaN.
    """
    d = _prep(Y, V, mask)
    k = d.n
    lb, ub = _qprofile_core(d, level, tol, maxiter)
    if tau2_max is not None:  # metafor: a bound beyond tau2.max is reported as tau2.max
        lb = np.minimum(lb, tau2_max)
        ub = np.minimum(ub, tau2_max)
    lb = np.where(k >= 2, lb, np.nan)
    ub = np.where(k >= 2, ub, np.nan)
    return lb, ub


def metafor_tau2_max(tau2):
    """metafor's default search limit of ``confint.rma.uni``: ``max(100, 10 tau2)``."""
    return np.maximum(100.0, 10.0 * np.asarray(tau2, dtype=float))


def qprofile_ci(yi, vi, level=0.95, *, tau2_max=None, tol=1e-12, maxiter=200):
    """Q-profile confidence interval for tau² (Viechtbauer 2007).

    The bounds solve ``Q(tau2) = chi2_{1-alpha/2, k-1}`` (lower) and
    ``Q(tau2) = chi2_{alpha/2, k-1}`` (upper), where ``Q(tau2)`` is the generalised Q
    statistic with random-effects weights ``1/(v_i + tau2)``.  As in metafor's
    ``confint.rma.uni``: a bound whose equation has no non-negative root is set to 0, so
    when ``Q(0)`` is below the lower chi² quantile the whole interval is ``[0, 0]``.
    metafor searches only up to ``tau2.max = max(100, 10 tau2)`` and reports a bound beyond
    it as ``tau2.max``; pass ``tau2_max=metafor_tau2_max(tau2)`` for that convention (what
    :func:`metapool.models.fit` does); by default the search is not capped.

    Parameters
    ----------
    yi, vi : array_like, shape (k,) or (B, k)
        Effect sizes and sampling variances; 2-D input is treated as B meta-analyses.
    level : float
        Confidence level.
    tau2_max : float or array_like, optional
        Upper limit of the search (bounds beyond it are reported as ``tau2_max``).

    Returns
    -------
    (lb, ub) : floats, or ndarrays of shape (B,) for 2-D input; NaN when k < 2.

    Notes
    -----
    Validated against R metafor 3.8-1 ``confint(rma(...))`` (tests/test_tau2.py and the
    conformance suite).
    """
    yi = np.asarray(yi, dtype=float)
    if yi.ndim == 2:
        return qprofile_ci_batch(yi, vi, None, level, tau2_max=tau2_max, tol=tol, maxiter=maxiter)
    lb, ub = qprofile_ci_batch(yi[None], np.asarray(vi, dtype=float)[None], None, level,
                               tau2_max=tau2_max, tol=tol, maxiter=maxiter)
    return float(lb[0]), float(ub[0])
