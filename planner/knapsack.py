"""The pricing knapsack's dynamic program, compiled (numba) once loaded: the hot spot of column generation.

Column generation prices every GPU class at every round by a multiple-choice knapsack over the GPU's memory in
`patterns.UNITS` steps (one shard per deployment: one option, one sequence count). In NumPy each deployment's stage
is a handful of array calls on arrays of a few thousand cells, so call overhead, not arithmetic, sets the pace:
on 100 bench deployments the knapsacks took about 2.5 s of a 10 s solve, and on 2,000 the dual repair's rounds
about 1 s each, almost all of it in them. Compiled, the same dynamic program is several times faster per call, and
since it releases the GIL, classes can be priced on several threads at once (`patterns._Generator.price`).

Compiling costs about 3 s once per machine, then numba's cache loads it in about 0.45 s (import included), most of
it interpreter time, which a short solve cannot spare. So the solver loads it only when the pattern path has
time to win it back (`solver.COMPILED_PRICING_MIN_S`; `load`): from the cache at once, or, when the cache is
cold, on a background thread after a child process has compiled it (`_load`); until it is ready `mckp` runs the
NumPy version, which returns exactly the same answers (`tests/test_patterns.py` checks both against each other and
against brute force). Without numba installed the NumPy version simply stays.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

# A deployment whose stage adds no more than this to the value (USD/h, as the duals) at a capacity stays out.
TIE_TOLERANCE_USD_PER_HOUR = 1e-12


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
        if tables[s + 1][c] <= before[c] + TIE_TOLERANCE_USD_PER_HOUR:
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
    choices = []  # per stage: (item of each choice, its row in the flat tables, its weight, its value)
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
        if tables[s + 1][c] <= before[c] + TIE_TOLERANCE_USD_PER_HOUR:
            continue
        owner, at, weight, value = choices[s]
        fits = np.flatnonzero(weight <= c)
        j = fits[int(np.argmax(value[fits] + before[c - weight[fits]]))]  # the first of the best, as the loops
        item[s], seqs[s] = owner[j], int(ks[at[j]])
        c -= int(weight[j])
    return tables[stages][units], item, seqs


_compiled = None  # the compiled `_mckp_loops`, once loaded
_loading: threading.Thread | None = None


def _dispatcher():
    """numba's (not yet compiled) dispatcher for `_mckp_loops`, caching on: None without numba, or where numba
    finds nowhere to keep a cache (then the NumPy version stays: compiling at every start costs more than it
    saves in most solves). Importing numba takes about 0.3 s."""
    try:
        from numba import njit
    except ImportError:  # the NumPy version stays
        return None
    try:
        return njit(cache=True, nogil=True)(_mckp_loops)
    except RuntimeError:  # "cannot cache function ...: no locator available" (nowhere writable)
        return None


def _compile(dispatcher=None):
    """The compiled `_mckp_loops`, called once so that numba compiles it (or loads it from its cache); None
    without numba."""
    if dispatcher is None:
        dispatcher = _dispatcher()
    if dispatcher is None:
        return None
    none = np.zeros(1, np.int64)
    dispatcher(none, none, none, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), 1)
    return dispatcher


def _cached(dispatcher) -> bool:
    """Whether numba's cache holds the compiled program for this very source, read as numba reads it: where numba
    keeps it (beside this file, or in the user's cache directory when this one is read-only, NUMBA_CACHE_DIR), and
    fresh (an index written for an older source, after an upgrade or a `git pull`, counts as none: numba would
    compile for 3-4 s on the loading thread). This only picks where a compile would run, never what runs. Numba's
    index is read through its own objects, guarded: should a numba release rename them, every start pays the child
    process instead (about 1 s on another core)."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - numba's private layout changed: take the child-process path
        return False


def _load() -> None:
    """Load the compiled program from numba's cache; when it is not there yet, compile it in a child process first
    (which fills the cache). Numba's compiler is mostly Python: compiling on a thread of this process held the
    interpreter for about 3 s and starved the solve it was meant to speed up (a 3 s solve of 20 bench
    deployments: $26.68/h instead of $21.07/h). Loading takes about 0.45 s; the child about 1 s more, which is why
    it runs only when the cache is cold."""
    global _compiled
    dispatcher = _dispatcher()
    if dispatcher is None:
        return
    if not _cached(dispatcher):
        subprocess.run([sys.executable, "-c", "from planner.knapsack import _compile; _compile()"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    _compiled = _compile(dispatcher)


def load_in_background() -> None:
    """Start loading the compiled version on a daemon thread (once per process; see `_load`)."""
    global _loading
    if _loading is None:
        _loading = threading.Thread(target=_load, name="knapsack-compile", daemon=True)
        _loading.start()


def load() -> None:
    """Load the compiled version: here and now from numba's cache when it is there (about 0.45 s; on a thread it
    held the interpreter as long under contention, and 100 deployments began column generation's rounds at 2.3 s
    instead of 1.5 s), else on a background thread after a child process has compiled it."""
    global _compiled
    if _compiled is None and _loading is None:
        dispatcher = _dispatcher()  # on a cold cache, 0.3 s here once per machine: where numba keeps its cache
        if dispatcher is not None and _cached(dispatcher):
            _compiled = _compile(dispatcher)
        elif dispatcher is not None:
            load_in_background()


def finish_loading() -> None:
    """Wait for a load under way, if any: worker processes forked after this inherit the compiled version instead
    of each running the NumPy version while loading their own."""
    if _loading is not None:
        _loading.join()


def mckp(stage_start, first, count, mu, nu, inv_tp, ks, w, units):
    """The knapsack (see `_mckp_loops`): compiled once loaded, NumPy until then (or without a load)."""
    return (_compiled or mckp_numpy)(stage_start, first, count, mu, nu, inv_tp, ks, w, units)
