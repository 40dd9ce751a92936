"""Fused element-wise kernels (numba), used where they are measurably faster.

An Adam step written with NumPy makes about eight passes over the flat arrays; the
kernel here makes two: the mean gradient, weight decay and the Adam rule in one, the
parameter average in the other, element by element, with the same
float operations in the same order as the NumPy rules in ``optimizers.py`` (scalars in
the arrays' dtype, no fast-math), so the results are equal to float rounding and in
practice bit for bit. ``error_model="numpy"`` lets LLVM vectorise the loop (the Python
error model checks every division for zero).

The dropout mask (:mod:`nodenet.dropout`) is one hash per unit; NumPy makes a dozen
passes over a (rows, units) uint64 array for it (0.28 ms for 128 x 256), the kernel one
(the same wrapping 64-bit operations, so the same masks bit for bit).

Without numba (or with ``NODENET_KERNELS=numpy``) ``available`` is false and the
optimizers use NumPy. The kernel takes the workers' gradient slots as two 1-D arrays:
the sum of every slot but the last (NumPy adds them first, when there are more than
two), and the last, which it adds as it reads them (a numba loop that indexes the 2-D
slots is not vectorised: 111 us against 18 us). Measured on 109,386 float32 parameters
(2-core AMD EPYC), Adam with averaging after a 2-slot sum: NumPy 283 us, NumPy sum +
this kernel about 80 us; first compile 0.4 s, then loaded from numba's cache. Adding
the second slot in the kernel (Intel Xeon, a worker's half, 54,693 float32): 97-104
against 69-70 us, with or without the average.
"""

from __future__ import annotations

import os
import sys

import numpy as np

try:
    if os.environ.get("NODENET_KERNELS", "numba") == "numpy":
        raise ImportError("NODENET_KERNELS=numpy")
    from numba import njit
except ImportError:  # the NumPy rules are used instead
    njit = None

available = njit is not None


def _without_scipy_blas() -> None:
    """Import numba's array maths with ``scipy.linalg`` hidden. At a process's first
    compiled call numba imports that module to find a BLAS for ``np.dot`` inside
    compiled code, which these kernels never call: 0.15-0.2 s of the first call's
    0.28-0.38 s when SciPy is installed (the import itself: 25 ms). While hidden, an
    import of ``scipy.linalg`` raises ``ImportError`` and numba goes on without it;
    after, it imports as usual. Nothing is hidden when it is already imported."""
    if "scipy.linalg" in sys.modules:
        return
    sys.modules["scipy.linalg"] = None
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules["scipy.linalg"]


if available:
    _without_scipy_blas()


def _adam(p, g, h, m, v, avg, n, l2, keep, b1, c1, b2, c2, lr_t, eps_t, a, ca):
    """In place, for every ``i``: the mean gradient ``(g + h) / n``, or ``g / n`` when
    ``h`` is empty (summed over ``n`` samples, not written; ``h``: the last worker's
    slot, added as it is read instead of in a pass of its own); L2 ``+= l2 * p``;
    decoupled decay ``p *= keep``; ``m = b1 m + c1 g``; ``v = b2 v + c2 g^2``;
    ``p -= lr_t m / (sqrt(v) + eps_t)``; then ``avg = a avg + ca p`` when ``ca`` > 0.
    Every array is 1-D, every scalar has the arrays' dtype."""
    two = h.shape[0] == p.shape[0]
    for i in range(p.shape[0]):
        gi = (g[i] + h[i]) / n if two else g[i] / n
        pi = p[i]
        gi += l2 * pi
        pi = pi * keep
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        m[i] = mi
        v[i] = vi
        p[i] = pi - (mi / (np.sqrt(vi) + eps_t)) * lr_t
    if ca > 0:
        for i in range(p.shape[0]):
            avg[i] = avg[i] * a + p[i] * ca


adam = njit(cache=True, fastmath=False, error_model="numpy")(_adam) if available else None


def warm_up() -> None:
    """Call the Adam kernel once on a float32 array of one element: a process's first
    call of a kernel sets numba up and loads the code from its cache (0.09-0.19 s here;
    the first call of another signature then takes 3 ms). The pool's fork server calls
    it once, before it forks any worker, so no worker pays it inside its first step."""
    if available:
        p = np.zeros(1, np.float32)
        adam(p, p, p, p, p, p, *np.ones(11, np.float32))


def _dropout_mask(rows, size, base, golden, mix_1, mix_2, rate, scale, out):
    """``out[i, j] = scale`` if ``u(rows[i] * size + j) >= rate`` else 0, with ``u`` the
    SplitMix64 hash of ``(k * golden + base)`` mapped to ``[0, 1)`` (uint64 arithmetic,
    wrapping, as in :func:`nodenet.dropout.keep_scale`)."""
    for i in range(rows.shape[0]):
        start = rows[i] * size
        for j in range(size):
            h = (start + np.uint64(j)) * golden + base
            h ^= h >> np.uint64(30)
            h *= mix_1
            h ^= h >> np.uint64(27)
            h *= mix_2
            h ^= h >> np.uint64(31)
            u = np.float64(h >> np.uint64(11)) * 2.0**-53
            out[i, j] = scale if u >= rate else 0.0


dropout_mask = njit(cache=True, error_model="numpy")(_dropout_mask) if available else None


def _max_pool(x, kh, kw, sh, sw, z, where):
    """For every window of ``x`` (n, h, w, c) at ``(y, x)``: ``z`` its maximum and
    ``where`` the offset ``i * kw + j`` of the first entry (row-major) that holds it,
    both (n, out_h, out_w, c). One pass, the windows' entries read where they sit; the
    common 2 x 2 window is written out (2.8x faster at LeNet-5's first pooling, 4-7x at
    its second, than the loops over ``i`` and ``j`` with a trip count of 2)."""
    n, out_h, out_w, channels = z.shape
    if kh == 2 and kw == 2:
        for b in range(n):
            for y in range(out_h):
                top = y * sh
                for x_ in range(out_w):
                    left = x_ * sw
                    for c in range(channels):
                        best, k = x[b, top, left, c], 0
                        v = x[b, top, left + 1, c]
                        if v > best:
                            best, k = v, 1
                        v = x[b, top + 1, left, c]
                        if v > best:
                            best, k = v, 2
                        v = x[b, top + 1, left + 1, c]
                        if v > best:
                            best, k = v, 3
                        z[b, y, x_, c] = best
                        where[b, y, x_, c] = k
        return
    for b in range(n):
        for y in range(out_h):
            for x_ in range(out_w):
                for c in range(channels):
                    best = x[b, y * sh, x_ * sw, c]
                    k = 0
                    for i in range(kh):
                        for j in range(kw):
                            v = x[b, y * sh + i, x_ * sw + j, c]
                            if v > best:
                                best = v
                                k = i * kw + j
                    z[b, y, x_, c] = best
                    where[b, y, x_, c] = k


def _max_unpool(g, where, kh, kw, sh, sw, dx):
    """Add each window's gradient ``g`` (n, out_h, out_w, c) onto the entry of ``dx``
    (n, h, w, c, zeros on entry) that ``where`` names: max pooling's backward pass. The
    offsets come from a table (``k // kw`` and ``k % kw`` per entry cost 1.5x as much)."""
    rows = np.empty(kh * kw, np.int64)
    columns = np.empty(kh * kw, np.int64)
    for k in range(kh * kw):
        rows[k], columns[k] = k // kw, k % kw
    n, out_h, out_w, channels = g.shape
    for b in range(n):
        for y in range(out_h):
            for x_ in range(out_w):
                for c in range(channels):
                    k = where[b, y, x_, c]
                    dx[b, y * sh + rows[k], x_ * sw + columns[k], c] += g[b, y, x_, c]


max_pool = njit(cache=True, error_model="numpy")(_max_pool) if available else None
max_unpool = njit(cache=True, error_model="numpy")(_max_unpool) if available else None


def _col2im(cols, kh, kw, sh, sw, out):
    """Add every row of ``cols`` (n * out_h * out_w, kh * kw * c), a window in ``(i, j,
    channel)`` order, onto its window of ``out`` (n, h, w, c), C-contiguous: one window
    row ``i`` is one contiguous run of ``kw * c`` numbers on both sides (NumPy's
    strided adds over short runs: 3.9 ms against 0.7 ms for LeNet-5's second layer)."""
    n, height, width, channels = out.shape
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    run = kw * channels
    rows = out.reshape(n, height, width * channels)
    for b in range(n):
        for y in range(out_h):
            for x_ in range(out_w):
                window = cols[(b * out_h + y) * out_w + x_]
                start = x_ * sw * channels
                for i in range(kh):
                    target = rows[b, y * sh + i]
                    for k in range(run):
                        target[start + k] += window[i * run + k]


col2im = njit(cache=True, error_model="numpy")(_col2im) if available else None
