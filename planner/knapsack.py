"""The pricing knapsack's dynamic program, compiled (numba) once loaded: the hot spot of column generation.

Column generation prices every GPU class at every round by a multiple-choice knapsack over the GPU's memory in
`patterns.UNITS` steps (one shard per deployment: one option, one sequence count). In NumPy each deployment's stage
is a handful of array calls on arrays of a few thousand cells, so call overhead, not arithmetic, sets the pace:
on 100 bench deployments the knapsacks took about 2.5 s of a 10 s solve, and on 2,000 the dual repair's rounds
about 1 s each, almost all of it in them. Compiled, the same dynamic program is several times faster per call, and
since it releases the GIL, classes can be priced on several threads at once (`patterns._Generator.price`).

Compiling costs about 3 s once per machine (then numba's cache loads it in about 0.45 s, import included), so it
is loaded on a background thread (`load_in_background`, started by the solver when a scenario takes the pattern
path, or by the first knapsack), and until it is ready `mckp` runs the NumPy version, which returns exactly the
same answers (`tests/test_patterns.py` checks both against each other and against brute force). Without numba
installed the NumPy version simply stays.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

TIE_TOLERANCE = 1e-12  # a deployment whose stage adds no more than this to the value at a capacity stays out


def _mckp_loops(stage_start, first, count, mu, nu, inv_tp, ks, w, units):  # pragma: no cover - compiled
    """Multiple-choice knapsack over capacity `units`. Stage s (a deployment) offers items
    stage_start[s] .. stage_start[s + 1] - 1 (its options); item i's choices are j in first[i] .. first[i] +
    count[i] - 1 of the flat tables: ks[j] sequences weighing w[j] steps, worth (mu[i] x ks[j] + nu[i]) x inv_tp[i].
    At most one choice per stage. Returns (the best value within the capacity, per stage the item chosen or -1,
    per stage the sequences chosen). Ties go to leaving the stage out, then to the first item and choice.
    Written for numba (`_load` compiles it); `mckp_numpy` is the same program in array operations."""
    stages = len(stage_start) - 1
    tables = np.empty((stages + 1, units + 1))  # tables[s]: best value per capacity over stages before s
    tables[0, :] = 0.0
    cur = np.empty(units + 1)  # the stage's table, apart from `tables` so that the inner loop vectorises
    for s in range(stages):
        prev = tables[s]
        cur[:] = prev
        for i in range(stage_start[s], stage_start[s + 1]):
            m, b, f = mu[i], nu[i], inv_tp[i]
            for j in range(first[i], first[i] + count[i]):
                wj = w[j]
                vj = (m * ks[j] + b) * f
                into, source = cur[wj:], prev[:units + 1 - wj]
                for c in range(units + 1 - wj):
                    into[c] = max(into[c], source[c] + vj)
        tables[s + 1, :] = cur
    item = np.full(stages, -1, np.int64)
    seqs = np.zeros(stages, np.int64)
    c = units
    for s in range(stages - 1, -1, -1):  # trace back: the choice that reaches the value at the capacity left
        before = tables[s]
        if tables[s + 1][c] <= before[c] + TIE_TOLERANCE:
            continue
        best, bi, bj = -np.inf, -1, -1
        for i in range(stage_start[s], stage_start[s + 1]):
            m, b, f = mu[i], nu[i], inv_tp[i]
            for j in range(first[i], first[i] + count[i]):
                if w[j] <= c:
                    x = (m * ks[j] + b) * f + before[c - w[j]]
                    if x > best:
                        best, bi, bj = x, i, j
        item[s] = bi
        seqs[s] = ks[bj]
        c -= w[bj]
    return tables[stages][units], item, seqs


def mckp_numpy(stage_start, first, count, mu, nu, inv_tp, ks, w, units):
    """`_mckp_loops` in NumPy, one vectorised max per stage over the table's sliding windows: the same values and
    choices (the same arithmetic in the same order), for the time before the compiled version is loaded."""
    stages = len(stage_start) - 1
    tables = np.empty((stages + 1, units + 1))
    tables[0, :] = 0.0
    padded = np.full(2 * units + 2, -np.inf)  # [-inf x (units + 1), the table]
    windows = as_strided(padded, (units + 2, units + 1), padded.strides * 2, writeable=False)  # padded[s + c]
    choices = []  # per stage: (item of each choice, its weight, its value)
    for s in range(stages):
        items = np.arange(stage_start[s], stage_start[s + 1])
        per = count[items]
        owner = np.repeat(items, per)
        at = np.arange(per.sum()) + np.repeat(first[items] - (np.cumsum(per) - per), per)
        weight = w[at]
        value = (mu[owner] * ks[at] + nu[owner]) * inv_tp[owner]
        choices.append((owner, at, weight, value))
        padded[units + 1:] = tables[s]
        if len(at):
            cand = windows[(units + 1) - weight]  # [j, c]: the table at c - w_j (-inf below 0), a copy
            cand += value[:, None]
            tables[s + 1] = np.maximum(tables[s], cand.max(axis=0))
        else:
            tables[s + 1] = tables[s]
    item = np.full(stages, -1, np.int64)
    seqs = np.zeros(stages, np.int64)
    c = units
    for s in range(stages - 1, -1, -1):
        before = tables[s]
        if tables[s + 1][c] <= before[c] + TIE_TOLERANCE:
            continue
        owner, at, weight, value = choices[s]
        fits = np.flatnonzero(weight <= c)
        j = fits[int(np.argmax(value[fits] + before[c - weight[fits]]))]  # the first of the best, as the loops
        item[s], seqs[s] = owner[j], int(ks[at[j]])
        c -= int(weight[j])
    return tables[stages][units], item, seqs


_compiled = None  # the compiled `_mckp_loops`, once loaded
_loading: threading.Thread | None = None


def _load() -> None:
    global _compiled
    try:
        from numba import njit
    except ImportError:  # the NumPy version stays
        return
    compiled = njit(cache=True, nogil=True)(_mckp_loops)
    none = np.zeros(1, np.int64)
    compiled(none, none, none, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), 1)
    _compiled = compiled


def load_in_background() -> None:
    """Start loading the compiled version on a daemon thread (once per process; the work is numba's, which leaves
    the interpreter free most of the time it compiles)."""
    global _loading
    if _loading is None:
        _loading = threading.Thread(target=_load, name="knapsack-compile", daemon=True)
        _loading.start()


def wait_loaded() -> None:
    """Block until the compiled version is loaded (or known unavailable): worker processes forked after this
    inherit it instead of each running the NumPy version while loading their own."""
    load_in_background()
    _loading.join()


def mckp(stage_start, first, count, mu, nu, inv_tp, ks, w, units):
    """The knapsack (see `_mckp_loops`): compiled once loaded, NumPy until then."""
    if _compiled is None:
        load_in_background()
        return mckp_numpy(stage_start, first, count, mu, nu, inv_tp, ks, w, units)
    return _compiled(stage_start, first, count, mu, nu, inv_tp, ks, w, units)
