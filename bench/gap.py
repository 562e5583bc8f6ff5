"""Where a plan's cost above the bound goes: a benchmark fleet's plan split by what holds its GPUs.

    python -m bench.gap [--size 2000]

Solves the synthetic fleet of bench/scale.py (same time limit) and prints, for the plan:
- per TP degree, the replicas' per-GPU sizes (weights, workspace and KV of the sequences they hold, as a share of
  the GPU's usable bytes), the blocks of that degree the plan uses, and what any packing of *those same replicas*
  needs at least: L1 (their total size, rounded up) and L2 (Martello and Toth's bound, which also counts the
  replicas over half a GPU that no two can share), with first-fit decreasing for comparison;
- the free memory, and how much of it sits on GPUs with room for one more sequence of a shard they hold (so
  not lost to the granularity of sequences);
- the replicas above each deployment's minimum (its concurrency over the most sequences one replica of it may
  hold) and the GPUs' worth of weights the cheapest of them carry.

When the blocks used are close to L2, the packing is not where the cost is: the choice of replicas (options, TP
degrees, how many, how the sequences split) is. docs/optimization.md, item 20.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

FIT_EPS = 1e-9  # sizes are shares of a GPU in floating point: what sums to 1 within this fits


def l1_bound(sizes: list[float]) -> int:
    """Bins of size 1 any packing of `sizes` (each in (0, 1]) needs at least: their sum, rounded up."""
    return math.ceil(sum(sizes) - FIT_EPS)


def l2_bound(sizes: list[float]) -> int:
    """Martello and Toth's L2: for each threshold k <= 1/2, items over 1 - k need a bin each, items in (1/2, 1 - k]
    too (no two share one), and the items in [k, 1/2] fill at least what the latter leave free. At least L1."""
    best = l1_bound(sizes)
    for k in sorted({0.0, *(x for x in sizes if x <= 0.5)}):
        big = sum(1 for x in sizes if x > 1 - k + FIT_EPS)  # (the tolerance: 0.32 + 0.68 fit one bin)
        mid = [x for x in sizes if 0.5 < x <= 1 - k + FIT_EPS]
        small = sum(x for x in sizes if k <= x <= 0.5)
        best = max(best, big + len(mid) + max(0, math.ceil(small - (len(mid) - sum(mid)) - FIT_EPS)))
    return best


def first_fit_decreasing(sizes: list[float]) -> int:
    """Bins first-fit decreasing packs `sizes` into."""
    bins: list[float] = []
    for x in sorted(sizes, reverse=True):
        for i, used in enumerate(bins):
            if used + x <= 1 + FIT_EPS:
                bins[i] += x
                break
        else:
            bins.append(x)
    return len(bins)


def decompose(plan, demands) -> dict:
    """The plan's GPUs by TP degree against the bin-packing bounds of its own replicas, its free memory and its
    replicas above each deployment's minimum (see the module's docstring)."""
    sizes: dict[int, list[float]] = defaultdict(list)
    blocks: dict[int, set] = defaultdict(set)
    gpus: dict[tuple[int, int], list] = defaultdict(list)
    per_deployment: dict[int, list] = defaultdict(list)
    for r in plan.replicas:
        p = demands[r.deployment].options[r.option]
        sizes[p.tp].append(p.placed_bytes(r.seqs) / p.limit_bytes)
        blocks[p.tp].add((r.instance, r.first_gpu))
        per_deployment[r.deployment].append(p)
        for g in range(r.first_gpu, r.first_gpu + p.tp):
            gpus[r.instance, g].append((p, r.seqs))
    free = roomy = 0.0
    for held in gpus.values():
        limit = held[0][0].limit_bytes
        left = limit - sum(p.placed_bytes(k) for p, k in held)
        free += left / limit
        if left >= min(p.kv_seq_bytes for p, _ in held):
            roomy += left / limit
    extra = extra_weights = 0
    for d in demands:
        held = per_deployment[d.index]
        most = max([1, *(p.max_seqs for p in d.options)])
        above = len(held) - max(d.min_replicas, -(-d.concurrency // most))
        if above > 0:
            extra += above
            extra_weights += sum(sorted(p.static_bytes * p.tp / p.limit_bytes for p in held)[:above])
    return {"classes": {t: {"replicas": len(sizes[t]), "blocks": len(blocks[t]), "l1": l1_bound(sizes[t]),
                            "l2": l2_bound(sizes[t]), "ffd": first_fit_decreasing(sizes[t])} for t in sorted(sizes)},
            "gpus": len(gpus), "free_gpus": free, "free_with_room_for_a_sequence": roomy / free if free else 0.0,
            "replicas_above_minimum": extra, "their_weights_gpus": extra_weights}


def main(argv: list[str] | None = None) -> None:
    from bench.fleet import prepared, synthetic_scenario
    from bench.scale import TIME_LIMITS_S
    from planner.solver import solve

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    limit_s = TIME_LIMITS_S.get(args.size, 60)
    data = synthetic_scenario(args.size, time_limit_s=limit_s)
    with tempfile.TemporaryDirectory() as tmp:
        prep, _ = prepared(data, Path(tmp), f"synthetic-{args.size}.yaml")
    print(f"solving {args.size} deployments ({limit_s} s)...", file=sys.stderr, flush=True)
    result = solve(prep.demands, prep.offers, prep.scenario.policy, time_limit_s=limit_s, threads=args.threads)
    by_id = {o.id: o for o in prep.offers}
    cost = result.plan.cost_usd_per_hour(by_id)
    print(f"plan ${cost:.2f}/h, bound ${result.bound_usd_per_hour:.2f}/h, {result.status}")
    out = decompose(result.plan, prep.demands)
    print(f"{'TP':>3} {'replicas':>9} {'blocks used':>12} {'L1':>6} {'L2':>6} {'FFD':>6}   (blocks of TP GPUs)")
    for t, c in out["classes"].items():
        print(f"{t:>3} {c['replicas']:>9} {c['blocks']:>12} {c['l1']:>6} {c['l2']:>6} {c['ffd']:>6}")
    l2_gpus = sum(t * c["l2"] for t, c in out["classes"].items())
    print(f"GPUs used {out['gpus']}; the same replicas need at least {l2_gpus} by their per-degree L2 bounds "
          f"({out['gpus'] / l2_gpus - 1:+.2%}; sharing GPUs across degrees can go under their sum)")
    print(f"free memory {out['free_gpus']:.1f} GPUs' worth ({out['free_gpus'] / out['gpus']:.1%}), "
          f"{out['free_with_room_for_a_sequence']:.0%} of it on GPUs with room for one more sequence")
    print(f"replicas above their deployment's minimum: {out['replicas_above_minimum']}, "
          f"holding {out['their_weights_gpus']:.1f} GPUs' worth of weights")


if __name__ == "__main__":
    main()
