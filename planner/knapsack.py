"""The pricing knapsack's inner loop, compiled (numba): the hot spot of column generation.

Column generation prices every GPU class at every round by a multiple-choice knapsack over the GPU's memory in
`patterns.UNITS` steps (one shard per deployment: one option, one sequence count). In NumPy each deployment's stage
was a handful of array calls on arrays of a few thousand cells, so call overhead, not arithmetic, set the pace:
on 100 bench deployments the knapsacks took about 2.5 s of a 10 s solve, and on 2,000 the dual repair's
rounds about 1 s each, almost all of it in them. Compiled, the same dynamic program is about 3x faster per call
and, since it releases the GIL, classes can be priced on several threads at once (`patterns._Generator.price`).

Kept apart from `planner.patterns` so that editing that module does not invalidate the compiled cache (numba
keys it on this file), and imported only when a knapsack is first solved: small scenarios never load numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TIE_TOLERANCE = 1e-12  # a deployment whose stage adds no more than this to the value at a capacity stays out


@njit(cache=True, nogil=True)
def mckp(stage_start, first, count, mu, nu, inv_tp, ks, w, units):  # pragma: no cover - compiled
    """Multiple-choice knapsack over capacity `units`. Stage s (a deployment) offers items
    stage_start[s] .. stage_start[s + 1] - 1 (its options); item i's choices are j in first[i] .. first[i] +
    count[i] - 1 of the flat tables: ks[j] sequences weighing w[j] steps, worth (mu[i] x ks[j] + nu[i]) x inv_tp[i].
    At most one choice per stage. Returns (the best value within the capacity, per stage the item chosen or -1,
    per stage the sequences chosen). Ties go to leaving the stage out, then to the first item and choice."""
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


def warm() -> None:
    """Compile (or load from the cache) the knapsack now: a large fleet's worker processes then inherit it instead
    of each compiling it on its first knapsack (about 3 s with a cold cache)."""
    none = np.zeros(1, np.int64)
    mckp(none, none, none, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), 1)
