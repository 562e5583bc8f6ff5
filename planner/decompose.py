"""Large fleets: decide the fleet on an aggregated model (a valid lower bound), then place replicas on it.

The exact model (planner.solver) gives every replica a GPU block of a concrete instance slot; its size grows with
deployments x options x slots x blocks and its LP bound is weak, so beyond a few thousand placement variables it
neither proves optimality nor finds good plans in time. Here:

1. Fleet model (CP-SAT), a relaxation of the exact one (every exact plan satisfies it, so its bound is a valid
   lower bound on the true optimum):
     n_o       in [0, N_o]     instances of type o (owned units first, at the owned price)
     r_dp      integer         replicas of deployment d with option p;  s_dp sequences they hold (r <= s <= M r)
     coverage  sum_p s_dp >= concurrency_d;  min_d <= sum_p r_dp <= max_d
     memory    per GPU type g: sum over options on g of tp (a_dp r_dp + b_dp s_dp) <= sum_o G_o L_g n_o (MiB)
     big       shards that cannot share a GPU with another big shard (static + one sequence > L/2), and every
               shard when colocate is false: sum tp r_dp <= sum_o G_o n_o per GPU type
     blocks    per GPU type and t in {2, 4, 8}: replicas with tp >= t need tp/t aligned t-blocks:
               sum (tp/t) r_dp <= sum_o floor(G_o / t) n_o
     load      throughput-sized deployments as in the exact model, aggregated per option
   objective: minimise USD/hour.
2. Placement: replicas (sequences split evenly) go first-fit-decreasing onto the chosen instances, largest TP
   group first; a replica that does not fit opens the cheapest instance of its GPU type that can hold it.
3. The answer is the cheaper of that plan and the greedy plan. It is `optimal` only when its cost equals the fleet
   model's proven bound; otherwise `feasible` with that bound and the gap.
"""

from __future__ import annotations

import time
from collections import defaultdict

from planner.demands import LOAD_UNITS, Demand
from planner.greedy import (
    USD_PER_HOUR_DECIMALS,
    _Box,
    _fits,
    blocks,
    drain,
    drain_said,
    drained_is_better,
    plan_rank,
    rounded_cost_usd_per_hour,
    split_concurrency,
)
from planner.offers import Offer
from planner.scenario import Policy
from planner.solution import (
    BucketAssignment,
    PlacedReplica,
    Plan,
    PlannedInstance,
    instance_price,
)
from planner.solver import KIB, MILLS_PER_USD

# With the pattern path, the fleet model adds its integer rounding to the bound (and its fleet, placed best-fit, is
# one more candidate plan); above this many replica options it does not reach a useful bound in a fifth of the time
# (bench/scale.py), so it is skipped.
FLEET_MODEL_WITH_PATTERNS_OPTIONS = 2500
# Share of the time left after the pattern path (1 - PATTERN_SHARE of the limit) that emptying instances
# (greedy.drain) may take; neighbourhood search, which improved no benchmark plan since the sixth session, gets
# the rest. Emptying ends on its own inside it up to 500 deployments (500: a pass takes about 1 s of 1.3 s); at
# 2,000 (2.5 s) the deadline can stop it between moves: $1,818.86/h against $1,817.46/h given all the time it
# wanted (docs/optimization.md item 15). Not tuned further.
DRAIN_SHARE = 0.7
# ... and on the aggregated model's placement, where neighbourhood search has the rest of the limit, at most this
# share of it. Not tuned: emptying stopped on its own in well under this on the bench fleets forced onto that
# path (20 and 100 deployments: $33.71/h -> $23.52/h, $129.48/h -> $118.03/h).
AGGREGATED_DRAIN_SHARE = 0.3
# Share of the time left that the pattern path gets; neighbourhood search polishes its plan in the rest. It found
# nothing to improve in any benchmark run since the integer master gets near-optimal columns (20 to 2,000
# deployments), so it keeps 3%: at 0.9 instead, 500 deployments certified $420.34-423.15/h in three runs, at 0.97
# $421.42-424.40/h in three (the time goes to the fleet-wide bound); 100 deployments $91.14-91.63/h either way.
PATTERN_SHARE = 0.97
# ... and what a large fleet's fleet-wide bound may use when the pattern path has emptied instances to the end on
# its own (polishing then only runs neighbourhood search, which found nothing on 500 or 2,000 deployments): the
# rest of the limit but a margin for what follows (2,000 deployments: 3.6 s more for the dual repair).
SETTLED_PATTERN_SHARE = 0.995


def instance_counts(m, offers: list[Offer], slot_bounds: dict[str, int]):
    """Integer instance counts per offer, owned units apart (rented only once every owned unit is in use: owned
    never costs more), and their cost in thousandths of a dollar per hour. Returns (n_own, n_rent, cost)."""
    n_own, n_rent = {}, {}
    for o in offers:
        cap = slot_bounds[o.id]
        n_own[o.id] = m.NewIntVar(0, min(o.owned, cap), f"own_{o.id}")
        n_rent[o.id] = m.NewIntVar(0, max(0, cap - o.owned), f"rent_{o.id}")
        if o.owned and cap > o.owned:
            full = m.NewBoolVar(f"full_{o.id}")
            m.Add(n_own[o.id] == o.owned).OnlyEnforceIf(full)
            m.Add(n_rent[o.id] == 0).OnlyEnforceIf(full.Not())
    cost = sum(round(o.owned_price_usd_per_hour * MILLS_PER_USD) * n_own[o.id]
               + round(o.price_usd_per_hour * MILLS_PER_USD) * n_rent[o.id] for o in offers)
    return n_own, n_rent, cost


def fleet_model(demands: list[Demand], offers: list[Offer], policy: Policy, slot_bounds: dict[str, int],
                time_limit_s: float, threads: int, hint: Plan | None):
    """Solve the aggregated fleet model. Returns (status, bound USD/h, n per offer, r/s per (d,p), assignments)."""
    from ortools.sat.python import cp_model

    from planner.solver import add_bucket_choice

    m = cp_model.CpModel()
    by_gpu: dict[str, list[Offer]] = defaultdict(list)
    for o in offers:
        by_gpu[o.gpu].append(o)
    n_own, n_rent, cost = instance_counts(m, offers, slot_bounds)
    r, s = {}, {}
    y = {}
    limit_kib = {}
    for d in demands:
        for pi, p in enumerate(d.options):
            if p.gpu not in by_gpu:
                continue
            limit_kib[p.gpu] = -(-p.limit_bytes // KIB)  # capacities up, demands down: a relaxation
            upper = d.max_replicas or max(d.min_replicas, d.concurrency if d.mode == "concurrency" else 10_000)
            r[d.index, pi] = m.NewIntVar(0, upper, f"r_{d.index}_{pi}")
            top = p.max_seqs * upper if d.mode == "concurrency" else LOAD_UNITS * upper
            s[d.index, pi] = m.NewIntVar(0, top, f"s_{d.index}_{pi}")
            m.Add(s[d.index, pi] >= r[d.index, pi])
            m.Add(s[d.index, pi] <= (p.max_seqs if d.mode == "concurrency" else LOAD_UNITS) * r[d.index, pi])
        rs = [r[d.index, pi] for pi in range(len(d.options)) if (d.index, pi) in r]
        m.Add(sum(rs) >= d.min_replicas)
        if d.max_replicas is not None:
            m.Add(sum(rs) <= d.max_replicas)
        if d.mode == "throughput":
            usable = [pi for pi in range(len(d.options)) if (d.index, pi) in r]
            y.update(add_bucket_choice(m, d, usable, lambda pi, d=d: s[d.index, pi]))
        else:
            m.Add(sum(s[d.index, pi] for pi in range(len(d.options)) if (d.index, pi) in s) >= d.concurrency)
    for g, offs in by_gpu.items():
        gpus_available = sum(o.gpu_count * (n_own[o.id] + n_rent[o.id]) for o in offs)
        mem, big = [], []
        block_need: dict[int, list] = defaultdict(list)
        mem_by_tp: dict[int, list] = defaultdict(list)  # memory of replicas with tp >= t
        for d in demands:
            for pi, p in enumerate(d.options):
                if p.gpu != g or (d.index, pi) not in r:
                    continue
                if p.exclusive:
                    terms = [p.tp * (p.limit_bytes // KIB) * r[d.index, pi]]
                else:
                    terms = [p.tp * (p.static_bytes // KIB) * r[d.index, pi],
                             p.tp * (p.kv_seq_bytes // KIB) * s[d.index, pi]]
                mem += terms
                for t in (2, 4, 8):
                    if p.tp >= t:
                        mem_by_tp[t] += terms
                # Shards over half a GPU never share one; only they can be counted in GPUs and aligned blocks
                # (co-located TP groups may share blocks).
                if p.exclusive or not policy.colocate or 2 * (p.static_bytes + p.kv_seq_bytes) > p.limit_bytes:
                    big.append(p.tp * r[d.index, pi])
                    for t in (2, 4, 8):
                        if p.tp >= t:
                            block_need[t].append((p.tp // t) * r[d.index, pi])
        m.Add(sum(mem) <= sum(o.gpu_count * limit_kib.get(g, 0) * (n_own[o.id] + n_rent[o.id]) for o in offs))
        for t, terms in mem_by_tp.items():  # a TP-t group only fits instances with >= t GPUs
            m.Add(sum(terms) <= sum(o.gpu_count * limit_kib.get(g, 0) * (n_own[o.id] + n_rent[o.id])
                                    for o in offs if o.gpu_count >= t))
        if big:
            m.Add(sum(big) <= gpus_available)
        for t, need in block_need.items():
            m.Add(sum(need) <= sum((o.gpu_count // t) * (n_own[o.id] + n_rent[o.id]) for o in offs))
    m.Minimize(cost)
    if hint is not None:
        counts: dict[tuple[str, bool], int] = defaultdict(int)
        for inst in hint.instances:
            counts[inst.offer, inst.owned] += 1
        for o in offers:
            m.AddHint(n_own[o.id], min(counts[o.id, True], slot_bounds[o.id]))
            m.AddHint(n_rent[o.id], counts[o.id, False])
        reps: dict[tuple[int, int], list[int]] = defaultdict(list)
        for rep in hint.replicas:
            reps[rep.deployment, rep.option].append(rep.seqs)
        for key, v in r.items():
            m.AddHint(v, len(reps.get(key, [])))
            m.AddHint(s[key], sum(reps.get(key, [])))
    from planner.solver import run_cp_sat

    solver, code = run_cp_sat(m, max(0.5, time_limit_s), threads, policy.seed)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ("infeasible" if code == cp_model.INFEASIBLE else "unknown"), None, None, None, None
    status = "optimal" if code == cp_model.OPTIMAL else "feasible"
    bound = solver.BestObjectiveBound() / MILLS_PER_USD
    # Second pass at the cost found: the smallest footprint (GPU-MiB of static memory), so the replicas the
    # placement must pack are as compact as the cost allows (the pooled-memory model is indifferent to tp).
    footprint = []
    for (di, pi), v in r.items():
        p = demands[di].options[pi]
        footprint.append(p.tp * ((p.limit_bytes if p.exclusive else p.static_bytes) // (KIB * KIB)) * v)
    m.Add(cost <= round(solver.ObjectiveValue()))
    m.Minimize(sum(footprint))
    m.ClearHints()
    for o in offers:
        m.AddHint(n_own[o.id], solver.Value(n_own[o.id]))
        m.AddHint(n_rent[o.id], solver.Value(n_rent[o.id]))
    for key, v in r.items():
        m.AddHint(v, solver.Value(v))
        m.AddHint(s[key], solver.Value(s[key]))
    second, code = run_cp_sat(m, max(0.5, time_limit_s * 0.4), threads, policy.seed)
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        solver = second
    n = {o.id: (solver.Value(n_own[o.id]), solver.Value(n_rent[o.id])) for o in offers}
    rs_val = {k: (solver.Value(v), solver.Value(s[k])) for k, v in r.items() if solver.Value(v)}
    assigned = [BucketAssignment(deployment=d, bucket=b, option=pi) for (d, b, pi), v in sorted(y.items())
                if solver.Value(v)]
    return status, bound, n, rs_val, assigned


def place(demands: list[Demand], offers: list[Offer], policy: Policy, counts: dict[str, tuple[int, int]],
          replicas: dict[tuple[int, int], tuple[int, int]], assignments: list[BucketAssignment]) -> Plan | None:
    """First-fit-decreasing placement of the fleet model's replicas on its instances, opening more if needed."""
    by_id = {o.id: o for o in offers}
    boxes: list[_Box] = []
    opened: dict[str, int] = defaultdict(int)

    def open_box(offer: Offer, owned: bool) -> _Box:
        limit = next(p.limit_bytes for d in demands for p in d.options if p.gpu == offer.gpu)
        box = _Box(offer=offer, owned=owned, free=[limit] * offer.gpu_count,
                   tenants=[set() for _ in range(offer.gpu_count)])
        boxes.append(box)
        opened[offer.id] += 1
        return box

    for oid, (own, rent) in sorted(counts.items()):
        for _ in range(own):
            open_box(by_id[oid], True)
        for _ in range(rent):
            open_box(by_id[oid], False)
    items = []
    for (di, pi), (n, total) in replicas.items():
        p = demands[di].options[pi]
        for seqs in split_concurrency(total, n):
            items.append((p.tp, p.placed_bytes(seqs), di, pi, seqs))
    items.sort(key=lambda t: (-t[0], -t[1], t[2], t[3]))
    placed = []
    for tp, need, di, pi, seqs in items:
        p = demands[di].options[pi]
        # Best fit: the block that is left fullest, so large holes stay for large replicas.
        spot = min(((min(box.free[first:first + tp]) - need, b, first) for b, box in enumerate(boxes)
                    if box.offer.gpu == p.gpu and box.offer.gpu_count >= tp and max(box.free) >= need
                    for first in blocks(box.offer.gpu_count, tp)
                    if _fits(box, first, tp, need, di, policy.colocate)), default=None)
        spot = spot[1:] if spot is not None else None
        if spot is None:
            candidates = [o for o in offers if o.gpu == p.gpu and o.gpu_count >= tp
                          and (o.max_instances is None or opened[o.id] < o.max_instances)]
            if not candidates:
                return None
            best = min(candidates, key=lambda o: (instance_price(o, opened[o.id] < o.owned), o.gpu_count, o.id))
            open_box(best, opened[best.id] < best.owned)
            spot = (len(boxes) - 1, 0)
        b, first = spot
        for j in range(first, first + tp):
            boxes[b].free[j] -= need
            boxes[b].tenants[j].add(di)
        placed.append(PlacedReplica(deployment=di, option=pi, instance=b, first_gpu=first, seqs=seqs))
    used = sorted({r.instance for r in placed})
    renumber = {old: new for new, old in enumerate(used)}
    return Plan(instances=[PlannedInstance(offer=boxes[i].offer.id, owned=boxes[i].owned) for i in used],
                replicas=[r.model_copy(update={"instance": renumber[r.instance]}) for r in placed],
                assignments=assignments)


def solve_decomposed(demands: list[Demand], offers: list[Offer], policy: Policy, slot_bounds: dict[str, int],
                     greedy: Plan | None, time_limit_s: float, threads: int, say,
                     started: float, polish: bool = True) -> tuple[Plan | None, str, float | None, str]:
    """(plan, status, bound, engine: what found the plan). The plan is never costlier than `greedy`. Without
    `polish`, the pattern path's plan is returned without neighbourhood search (the caller improves it)."""
    from planner.patterns import applicable, solve_patterns
    from planner.solver import REFINE_PLACEMENT_VARIABLES, exact

    use_patterns = applicable(demands, offers, policy)
    if use_patterns and sum(len(d.options) for d in demands) > FLEET_MODEL_WITH_PATTERNS_OPTIONS:
        status, bound, counts, reps, assigned = "unknown", None, None, None, None
    else:
        status, bound, counts, reps, assigned = fleet_model(demands, offers, policy, slot_bounds,
                                                            time_limit_s * (0.2 if use_patterns else 0.35), threads,
                                                            greedy)
        say(f"fleet model: {status}, bound {'-' if bound is None else f'${bound:.2f}/h'} "
            f"in {time.perf_counter() - started:.1f}s")
    if status == "infeasible":
        return None, "infeasible", None, "cp-sat"
    by_id = {o.id: o for o in offers}
    candidates: list[tuple[Plan, str]] = [(greedy, "greedy")] if greedy is not None else []

    def preferred(candidate: tuple[Plan, str]) -> tuple[float, int]:  # greedy.plan_rank; on a tie the first
        return plan_rank(candidate[0], demands, by_id)

    if use_patterns:
        left_s = time_limit_s - (time.perf_counter() - started)
        result = solve_patterns(demands, offers, policy, slot_bounds, greedy, PATTERN_SHARE * left_s, threads, say,
                                time.perf_counter(),
                                time.perf_counter() + SETTLED_PATTERN_SHARE * left_s if polish else None)
        if result.bound_usd_per_hour is not None and (bound is None or result.bound_usd_per_hour > bound):
            bound = result.bound_usd_per_hour
        if result.plan is not None:
            candidates.append((result.plan, "column generation + scip"))
        if counts is not None:  # the fleet model ran for its bound: its fleet, placed best-fit, competes too
            placed = place(demands, offers, policy, counts, reps, assigned)
            if placed is not None:
                say(f"best-fit placement of the fleet model's fleet: ${placed.cost_usd_per_hour(by_id):.2f}/h")
                if result.plan is None or (rounded_cost_usd_per_hour(placed, by_id)
                                           < rounded_cost_usd_per_hour(result.plan, by_id)):
                    candidates.append((placed, "cp-sat"))  # ties: the pattern plan
        counts = None  # skips the aggregated path's placement and search below: the candidates above cover it
        best, found_by = min(candidates, key=preferred)
        if polish:
            deadline = started + time_limit_s
            # A plan the pattern path has emptied instances of to the end is left as it is.
            settled = best is result.plan and result.drained
            drained = None if settled else _emptied(best, demands, offers, policy, DRAIN_SHARE, deadline, say)
            if drained is not None:
                best = drained
                candidates.append((best, f"{found_by} + repacking"))
            improved = improve(best, demands, offers, policy, deadline, threads)
            say(f"neighbourhood search: ${best.cost_usd_per_hour(by_id):.2f}/h -> "
                f"${improved.cost_usd_per_hour(by_id):.2f}/h")
            candidates.append((improved, "cp-sat neighbourhood search"))
    if counts is not None:
        start = place(demands, offers, policy, counts, reps, assigned)
        if start is not None:
            say(f"best-fit placement of that fleet: ${start.cost_usd_per_hour(by_id):.2f}/h")
            # Small fleets: re-place exactly on the chosen instances plus one spare per type.
            chosen_gpus = {o.gpu for o in offers if sum(counts[o.id])}
            bounds = {o.id: min(slot_bounds[o.id], sum(counts[o.id]) + 1) for o in offers if o.gpu in chosen_gpus}
            size = sum(bounds[o.id] * len(blocks(o.gpu_count, p.tp)) for o in offers if o.id in bounds
                       for d in demands for p in d.options if p.gpu == o.gpu and p.tp <= o.gpu_count)
            remaining = time_limit_s - (time.perf_counter() - started)
            if size <= REFINE_PLACEMENT_VARIABLES and remaining > 2:
                refined = exact(demands, [o for o in offers if o.id in bounds], bounds, policy, start,
                                remaining * 0.5, threads, lambda _msg: None, time.perf_counter(), [])
                if refined.plan is not None and refined.plan.cost_usd_per_hour(by_id) < start.cost_usd_per_hour(by_id):
                    start = refined.plan
            # Then empty what instances it can into the others' room, and consolidate by large-neighbourhood
            # search until the time limit.
            deadline = started + time_limit_s
            drained = _emptied(start, demands, offers, policy, AGGREGATED_DRAIN_SHARE, deadline, say)
            engine = "cp-sat"
            if drained is not None:
                start, engine = drained, "cp-sat + repacking"
            improved = improve(start, demands, offers, policy, deadline, threads)
            say(f"neighbourhood search: ${start.cost_usd_per_hour(by_id):.2f}/h -> "
                f"${improved.cost_usd_per_hour(by_id):.2f}/h")
            candidates.append((improved, engine))
    if not candidates:
        return None, "unknown", bound, "cp-sat"
    best, engine = min(candidates, key=preferred)
    proven = bound is not None and (rounded_cost_usd_per_hour(best, by_id)
                                    <= round(bound, USD_PER_HOUR_DECIMALS))  # every bound here is valid
    return best, "optimal" if proven else "feasible", bound, engine


def _emptied(plan: Plan, demands: list[Demand], offers: list[Offer], policy: Policy, share: float, deadline: float,
             say) -> Plan | None:
    """greedy.drain on `plan` for `share` of the time left before `deadline`: the plan it leaves when that is
    better (`greedy.drained_is_better`: cheaper, or as cheap with more headroom; said so), else None."""
    by_id = {o.id: o for o in offers}
    drained = drain(plan, demands, offers, policy, time.perf_counter() + share * (deadline - time.perf_counter()))
    if not drained_is_better(plan, drained, demands, by_id):
        return None
    say(drain_said(plan, drained, by_id))
    return drained


def improve(plan: Plan, demands: list[Demand], offers: list[Offer], policy: Policy, deadline: float,
            threads: int, neighbourhood: int = 6) -> Plan:
    """Large-neighbourhood search: free the replicas of a few instances of one GPU type, re-place them exactly
    on instances of that GPU type (any shape), keep the result when it is cheaper; repeat until `deadline`.

    The rules hold throughout: `replicas.min` counts the replicas left outside the neighbourhood, anti-affinity is
    per GPU (freed instances are whole), owned units already used outside stay used. Throughput-sized replicas are
    left where they are.
    """
    import random

    from planner.solver import exact

    by_id = {o.id: o for o in offers}
    rng = random.Random(policy.seed)
    movable = {d.index for d in demands if d.mode == "concurrency"}
    stale = 0  # neighbourhoods tried since the last improvement
    while time.perf_counter() < deadline - 1.0:
        fixed = {r.instance for r in plan.replicas if r.deployment not in movable}
        by_gpu: dict[str, list[int]] = defaultdict(list)
        for n, inst in enumerate(plan.instances):
            if n not in fixed:
                by_gpu[by_id[inst.offer].gpu].append(n)
        spend = {g: sum(instance_price(by_id[plan.instances[n].offer], plan.instances[n].owned) for n in ns)
                 for g, ns in by_gpu.items() if len(ns) >= 2}
        if not spend or sum(spend.values()) <= 0:
            break
        # Stop when every GPU type fits in one neighbourhood and each was tried once without gain (the exact
        # re-placement already covered the whole fleet), or after many fruitless tries.
        whole = all(len(by_gpu[g]) <= neighbourhood for g in spend)
        if stale >= (len(spend) if whole else 25):
            break
        gpu = rng.choices(sorted(spend), weights=[spend[g] for g in sorted(spend)])[0]
        if whole:
            gpu = sorted(spend)[stale % len(spend)]
        chosen = set(rng.sample(by_gpu[gpu], min(neighbourhood, len(by_gpu[gpu]))))
        inside = [r for r in plan.replicas if r.instance in chosen]
        outside: dict[int, int] = defaultdict(int)
        for r in plan.replicas:
            if r.instance not in chosen:
                outside[r.deployment] += 1
        deps = sorted({r.deployment for r in inside})
        index = {d: i for i, d in enumerate(deps)}
        sub = []
        for d in deps:
            orig = demands[d]
            seqs = sum(r.seqs for r in inside if r.deployment == d)
            sub.append(orig.model_copy(update={
                "index": index[d], "concurrency": seqs, "concurrency_required": seqs,
                "min_replicas": max(0, orig.min_replicas - outside[d]),
                "max_replicas": None if orig.max_replicas is None else orig.max_replicas - outside[d]}))
        owned_outside: dict[str, int] = defaultdict(int)
        for n, inst in enumerate(plan.instances):
            if n not in chosen and inst.owned:
                owned_outside[inst.offer] += 1
        sub_offers = [o.model_copy(update={"owned": max(0, o.owned - owned_outside[o.id]),
                                           "max_instances": None if o.max_instances is None else
                                           o.max_instances - sum(1 for n, i in enumerate(plan.instances)
                                                                 if n not in chosen and i.offer == o.id)})
                      for o in offers if o.gpu == gpu]
        renumber = {n: i for i, n in enumerate(sorted(chosen))}
        current = Plan(instances=[plan.instances[n] for n in sorted(chosen)],
                       replicas=[r.model_copy(update={"deployment": index[r.deployment],
                                                      "instance": renumber[r.instance]}) for r in inside])
        before = current.cost_usd_per_hour(by_id)
        budget = min(4.0, deadline - time.perf_counter() - 0.5)
        if budget < 0.5:
            break
        # Slots: the neighbourhood's size, within what each quota leaves outside it (exact() takes its slot
        # bounds as given; the offers' max_instances alone would not stop it).
        slots = {o.id: len(chosen) if o.max_instances is None else min(len(chosen), o.max_instances)
                 for o in sub_offers}
        result = exact(sub, sub_offers, slots, policy, current, budget, threads,
                       lambda _msg: None, time.perf_counter(), [])
        if result.plan is None or result.plan.cost_usd_per_hour(by_id) >= before - 1e-9:
            stale += 1
            continue
        stale = 0
        keep = [n for n in range(len(plan.instances)) if n not in chosen]
        position = {n: i for i, n in enumerate(keep)}
        plan = Plan(
            instances=[plan.instances[n] for n in keep] + result.plan.instances,
            replicas=[r.model_copy(update={"instance": position[r.instance]}) for r in plan.replicas
                      if r.instance not in chosen]
            + [r.model_copy(update={"deployment": deps[r.deployment], "instance": len(keep) + r.instance})
               for r in result.plan.replicas],
            assignments=plan.assignments)
    return plan
