"""The fleet optimisation: a CP-SAT integer program over instance slots, GPU blocks and replica placements.

Sets
  D            deployments d, each with replica options p = (GPU type g_p, TP degree t_p) from planner.demands
  O            offered instance types o (GPU type g_o, G_o GPUs, price c_o; first `owned_o` slots at the owned price)
  S_o          instance slots s = 0 .. N_o - 1 of type o (N_o bounded below)
  B(o, t)      aligned GPU blocks of size t in an instance of type o: GPUs {k t, .., k t + t - 1}, k < G_o / t
Data (all integers, KiB: demands rounded up, capacities rounded down, so every plan is valid in exact bytes)
  a_dp         static KiB one rank of option p needs (weights + activation workspace + runtime overhead)
  b_dp         KiB of KV one sequence needs on each rank of option p
  M_dp         sequences one replica of option p can hold alone on its GPUs
  L_g          KiB a GPU of type g may hold (capacity x utilization - min_free_fraction x capacity)
Variables
  use[o,s]           in {0,1}: slot s of type o is rented / used
  x[d,o,s,p,k]       in {0,1}: a replica of d with option p sits on block k of slot (o,s)
  q[d,o,s,p,k]       in {0..M_dp}: sequences that replica holds (q >= x, q <= M_dp x); for throughput-sized
                     deployments, the thousandths of the replica's capacity it uses
  y[d,b,p]           in {0,1}: throughput-sized deployments only: length bucket b is served by option p
Constraints
  memory     for every GPU j of (o,s): sum over x covering j of (a_dp x + b_dp q) <= L_g use[o,s]
  coverage   sum over (o,s,p,k) of q[d,...] >= concurrency_d (M_dp already holds the TPOT cap of the SLO);
             throughput-sized: sum_p y[d,b,p] = 1 and, per option p, sum of q[d,...,p,.] >=
             sum_b y[d,b,p] x ceil(1000 x rate_b / T_bp), T_bp the requests/s one replica serves (Melange)
  replicas   min_d <= sum of x[d,...] <= max_d
  anti-affinity: two replicas of one deployment never share a GPU (availability); with colocate: false no GPU
             holds shards of two replicas at all
  symmetry   use[o,s] >= use[o,s+1]   (added only to help the solver: identical slots are interchangeable)
Objective
  minimise sum c_o,s use[o,s] (USD/h, in thousandths of a dollar). Then, with the cost fixed at the optimum found,
  a second, shorter solve maximises the free memory of the fleet (sum of L_g use - placed KiB, in MiB): among
  equal-cost plans the one with the most headroom. The cost is never traded for headroom.
Slot bounds
  N_o <= max_instances_o, N_o <= owned_o + floor(UB / c_o) where UB is the greedy plan's cost, and N_o <= H_o, the
  instance count of a no-co-location plan that serves every deployment able to run on o from o alone: a plan with
  more type-o instances than that costs more than replacing all of them by that plan, so the bound cuts no optimum.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass

from planner.demands import LOAD_UNITS, Demand, bucket_load
from planner.greedy import best_heuristic_plan, blocks
from planner.offers import Offer
from planner.scenario import Policy
from planner.solution import BucketAssignment, PlacedReplica, Plan, PlannedInstance, instance_price

KIB = 1024
MILLS_PER_USD = 1000
# Above this many placement variables the exact model neither proves optimality nor finds good plans within
# typical limits (bench/scale.py): the fleet is then decided on the aggregated model of planner.decompose.
EXACT_PLACEMENT_VARIABLES = 6000
# Between this many placement variables and EXACT_PLACEMENT_VARIABLES, when the pattern path applies, the
# decomposition runs first (HYBRID_DECOMPOSED_SHARE of the limit), then the exact model (`_then_exact`):
# at 4,000 variables (20 deployments on one GPU type) the exact model alone reached $31.04/h in 3 s and $23.52/h
# in 10 s with a bound of $2.65/h, where the decomposition finds $21.5/h with a bound of $19.7/h in 3 s. Below it
# the exact model proves optimality alone (5 deployments, 1,437 variables: 1.4 s).
EXACT_ALONE_PLACEMENT_VARIABLES = 2000
HYBRID_DECOMPOSED_SHARE = 0.4
# The pattern path loads the compiled pricing knapsack (planner/knapsack.py) only when it has at least this long:
# the load costs about 0.45 s of interpreter time, which a short solve cannot win back (a 3 s solve of 20 bench
# deployments, 1.2 s of it on the pattern path, got $26.68/h or $21.07/h from run to run with the load and $21.07/h
# without; 100 deployments in 10 s stall column generation in about 1.5 s compiled against about 5 s in NumPy).
COMPILED_PRICING_MIN_S = 5.0
# After the aggregated fleet model, the exact model re-places the fleet (its instance counts + 1 per type) when it
# stays below this size; every fleet is then consolidated by large-neighbourhood search (planner.decompose).
REFINE_PLACEMENT_VARIABLES = 8000


@dataclass
class SolveResult:
    """What the solver returns: never prints, never mutates its inputs (STYLE habit 5)."""

    plan: Plan | None
    status: str  # optimal | feasible | infeasible | unknown
    bound_usd_per_hour: float | None
    wall_seconds: float
    solver: str
    notes: list[str]


def _prune(offers: list[Offer]) -> list[Offer]:
    """Drop offers another offer beats outright: same GPU type and count, NVLink no worse, price no higher, and
    neither carries owned instances or a quota. Ties keep the lexically first id (deterministic)."""
    keep = []
    for o in offers:
        dominated = False
        if not o.owned and o.max_instances is None:
            for other in offers:
                if (other is not o and other.gpu == o.gpu and other.gpu_count == o.gpu_count and not other.owned
                        and other.max_instances is None and other.nvlink >= o.nvlink
                        and (other.price_usd_per_hour, other.id) < (o.price_usd_per_hour, o.id)):
                    dominated = True
                    break
        if not dominated:
            keep.append(o)
    return keep


def _replicas_alone(demands: list[Demand]) -> list[dict[str, list[tuple[int, int | None]]]]:
    """Per deployment, per GPU type: (tp, replicas the deployment needs on that option, or None where the option
    cannot serve it within `replicas.max` or its load) for every option. Computed once per scenario, for
    `_alone_bound` to read for every offer (2,000 deployments over 43 offers: 2.5 s when each offer recomputed
    it)."""
    out = []
    for d in demands:
        by_gpu: dict[str, list[tuple[int, int | None]]] = {}
        for p in d.options:
            if d.mode == "throughput" and not all(p.bucket_rps):  # some bucket it cannot serve
                replicas = None
            elif d.mode == "throughput":
                loads = sum(bucket_load(b.requests_per_s, r) for b, r in zip(d.buckets, p.bucket_rps))
                replicas = max(d.min_replicas, math.ceil(loads / LOAD_UNITS))
            else:
                replicas = max(d.min_replicas, math.ceil(d.concurrency / p.max_seqs))
            if replicas is not None and d.max_replicas is not None and replicas > d.max_replicas:
                replicas = None
            by_gpu.setdefault(p.gpu, []).append((p.tp, replicas))
        out.append(by_gpu)
    return out


def _alone_bound(offer: Offer, needs: list[dict[str, list[tuple[int, int | None]]]]) -> int | None:
    """H_o: instances of `offer` that host every deployment it can run, each alone; None if that is not possible
    for some deployment that has options on this GPU type (then only the other bounds apply). `needs`: what
    `_replicas_alone` gives for the deployments."""
    total = 0
    for by_gpu in needs:
        opts = [(tp, replicas) for tp, replicas in by_gpu.get(offer.gpu, ()) if tp <= offer.gpu_count]
        if not opts:
            continue
        usable = [math.ceil(replicas / (offer.gpu_count // tp)) for tp, replicas in opts if replicas is not None]
        if not usable:
            return None
        total += min(usable)
    return total


def add_bucket_choice(m, d: Demand, options, held) -> dict[tuple[int, int, int], object]:
    """Throughput-sized `d`: y[d,b,p] puts bucket b wholly on option p (one p per bucket), and the load held by
    p's replicas, `held(p)`, covers the buckets put on it. Returns the y variables."""
    y = {}
    for b in range(len(d.buckets)):
        choices = []
        for pi in options:
            if d.options[pi].bucket_rps[b] > 0:
                y[d.index, b, pi] = m.NewBoolVar(f"y_{d.index}_{b}_{pi}")
                choices.append(y[d.index, b, pi])
        m.AddExactlyOne(choices)
    for pi in options:
        served = [bucket_load(bk.requests_per_s, d.options[pi].bucket_rps[b]) * y[d.index, b, pi]
                  for b, bk in enumerate(d.buckets) if (d.index, b, pi) in y]
        if served:
            m.Add(held(pi) >= sum(served))
    return y


def _slot_prices(o: Offer, n: int) -> list[float]:
    return [instance_price(o, s < o.owned) for s in range(n)]


def _slot_bounds(pool: list[Offer], demands: list[Demand], ub: float | None) -> dict[str, int]:
    """N_o for every offer (module docstring, "Slot bounds"), with `ub` the cost of a known plan."""
    slot_bounds: dict[str, int] = {}
    needs = _replicas_alone(demands)
    for o in pool:
        bounds = [o.max_instances] if o.max_instances is not None else []
        if ub is not None and o.price_usd_per_hour > 0:
            bounds.append(o.owned + math.floor(ub / o.price_usd_per_hour + 1e-9))
        alone = _alone_bound(o, needs)
        if alone is not None:
            bounds.append(max(alone, 0))
        if not bounds:  # nothing bounds a free, unquota'd type: one instance per replica we could ever need
            bounds.append(sum(max(d.min_replicas, d.concurrency) for d in demands))
        slot_bounds[o.id] = min(bounds)
    return slot_bounds


def solve(demands: list[Demand], offers: list[Offer], policy: Policy, *, time_limit_s: float | None = None,
          threads: int | None = None, log=None) -> SolveResult:
    """Cheapest plan for `demands` on `offers`. `log(msg)` receives progress lines (stderr in the CLI)."""

    say = log or (lambda _msg: None)
    started = time.perf_counter()
    limit = time_limit_s if time_limit_s is not None else policy.time_limit_s
    workers = threads if threads is not None else policy.threads
    notes: list[str] = []
    hint = best_heuristic_plan(demands, offers, policy)
    all_offers = {o.id: o for o in offers}
    ub = hint.cost_usd_per_hour(all_offers) if hint else None
    say(f"greedy plan: {'$%.2f/h' % ub if hint else 'none found'} (best of first-fit over all offers and per GPU type)")
    pool = _prune([o for o in offers if any(p.gpu == o.gpu for d in demands for p in d.options)])

    slot_bounds = _slot_bounds(pool, demands, ub)
    per_option: dict[tuple[str, int], int] = defaultdict(int)  # placement variables of one (gpu, tp) option
    pairs = {(p.gpu, p.tp) for d in demands for p in d.options}
    for o in pool:
        for g, t in pairs:
            if g == o.gpu and t <= o.gpu_count:
                per_option[g, t] += slot_bounds[o.id] * len(blocks(o.gpu_count, t))
    placement_vars = sum(per_option.get((p.gpu, p.tp), 0) for d in demands for p in d.options)
    from planner.patterns import applicable

    patterns = applicable(demands, pool, policy)
    hybrid = placement_vars > EXACT_ALONE_PLACEMENT_VARIABLES and patterns
    if placement_vars > EXACT_PLACEMENT_VARIABLES or hybrid:
        from planner.decompose import solve_decomposed

        say(f"{placement_vars} placement variables: deciding the fleet on the aggregated model, then placing")
        share = HYBRID_DECOMPOSED_SHARE if placement_vars <= EXACT_PLACEMENT_VARIABLES else 1.0
        if patterns and share * limit >= COMPILED_PRICING_MIN_S:
            from planner.knapsack import load

            load()
        plan, status, bound, engine = solve_decomposed(demands, pool, policy, slot_bounds, hint, share * limit,
                                                       workers, say, started, polish=share == 1.0)
        if share < 1.0 and status == "feasible" and plan is not None:
            return _then_exact(demands, pool, policy, plan, bound, limit, workers, say, started, notes, hint, engine)
        if status == "feasible":
            notes.append("large scenario: bound from column generation over GPU patterns, plan from an integer "
                         "master over whole TP blocks; not proven optimal" if engine.startswith("column generation")
                         else "large scenario: fleet chosen on an aggregated model (a valid lower bound), then "
                         "placed; not proven optimal")
        return SolveResult(plan, status if plan is not None or status == "infeasible" else "unknown", bound,
                           time.perf_counter() - started, f"{engine} (decomposed)", notes)

    return exact(demands, pool, slot_bounds, policy, hint, limit, workers, say, started, notes)


def _then_exact(demands: list[Demand], pool: list[Offer], policy: Policy, plan: Plan, bound: float | None,
                limit: float, workers: int, say, started: float, notes: list[str],
                greedy: Plan | None, engine: str) -> SolveResult:
    """Mid-size scenarios: after the decomposition (its plan `plan`, its bound `bound`), the exact model for the
    time left, with slot bounds from that plan's lower cost; the cheaper plan and the higher bound win. The exact
    search starts from the greedy plan: started from the decomposition's plan it stayed there (10 deployments,
    10 s: $11.76/h; from the greedy plan $10.82/h; the exact model alone $10.73/h with a bound of $9.52/h, the
    decomposition's bound $10.24/h; docs/optimization.md)."""
    by_id = {o.id: o for o in pool}
    cost = plan.cost_usd_per_hour(by_id)
    slot_bounds = _slot_bounds(pool, demands, cost)
    polished = exact(demands, pool, slot_bounds, policy, greedy, limit - (time.perf_counter() - started), workers,
                     say, time.perf_counter(), [])
    bounds = [b for b in (bound, polished.bound_usd_per_hour) if b is not None]
    best_bound = max(bounds) if bounds else None
    if polished.plan is not None and polished.solver == "cp-sat" and polished.plan.cost_usd_per_hour(by_id) < cost:
        plan, cost, engine = polished.plan, polished.plan.cost_usd_per_hour(by_id), "cp-sat"
    proven = polished.status == "optimal" or (best_bound is not None and cost <= best_bound + 1e-6)
    if not proven:
        notes.append("mid-size scenario: plan and bound from the decomposition, then the exact model bounded by "
                     "that plan's cost; not proven optimal")
    return SolveResult(plan, "optimal" if proven else "feasible", best_bound, time.perf_counter() - started,
                       f"{engine} (decomposed, then exact)", notes)


def exact(demands: list[Demand], pool: list[Offer], slot_bounds: dict[str, int], policy: Policy,
          hint: Plan | None, limit: float, workers: int, say, started: float, notes: list[str]) -> SolveResult:
    """The exact placement model over `slot_bounds[o]` slots of each offer in `pool` (see module docstring)."""
    from ortools.sat.python import cp_model

    all_offers = {o.id: o for o in pool}
    m = cp_model.CpModel()
    use: dict[tuple[str, int], object] = {}
    price_mills: dict[tuple[str, int], int] = {}
    x: dict[tuple[int, str, int, int, int], object] = {}
    q: dict[tuple[int, str, int, int, int], object] = {}
    gpu_terms: dict[tuple[str, int, int], list] = {}
    gpu_count_terms: dict[tuple[str, int, int], list] = {}
    dep_gpu_terms: dict[tuple[int, str, int, int], list] = {}
    limit_kib: dict[str, int] = {}
    for d in demands:
        for p in d.options:
            limit_kib[p.gpu] = p.limit_bytes // KIB

    for o in pool:
        n_slots = slot_bounds.get(o.id, 0)
        for s, price in enumerate(_slot_prices(o, n_slots)):
            use[o.id, s] = m.NewBoolVar(f"use_{o.id}_{s}")
            price_mills[o.id, s] = round(price * MILLS_PER_USD)
            if s > 0:
                m.Add(use[o.id, s] <= use[o.id, s - 1])  # symmetry breaking only
            for d in demands:
                for pi, p in enumerate(d.options):
                    if p.gpu != o.gpu or p.tp > o.gpu_count:
                        continue
                    if p.exclusive:
                        a_kib, b_kib, cap = p.limit_bytes // KIB, 0, LOAD_UNITS
                    else:
                        a_kib = -(-p.static_bytes // KIB)
                        b_kib = -(-p.kv_seq_bytes // KIB)
                        cap = min(p.max_seqs, d.concurrency)
                    for k, first in enumerate(blocks(o.gpu_count, p.tp)):
                        key = (d.index, o.id, s, pi, k)
                        xv = m.NewBoolVar(f"x_{d.index}_{o.id}_{s}_{pi}_{k}")
                        qv = m.NewIntVar(0, cap, f"q_{d.index}_{o.id}_{s}_{pi}_{k}")
                        m.Add(qv >= xv)
                        m.Add(qv <= cap * xv)
                        m.AddImplication(xv, use[o.id, s])
                        x[key], q[key] = xv, qv
                        for j in range(first, first + p.tp):
                            gpu_terms.setdefault((o.id, s, j), []).extend([(a_kib, xv), (b_kib, qv)])
                            gpu_count_terms.setdefault((o.id, s, j), []).append(xv)
                            dep_gpu_terms.setdefault((d.index, o.id, s, j), []).append(xv)

    for (oid, s, j), terms in gpu_terms.items():
        gpu = all_offers[oid].gpu
        m.Add(sum(c * v for c, v in terms) <= limit_kib[gpu] * use[oid, s])
    for terms in dep_gpu_terms.values():
        if len(terms) > 1:
            m.AddAtMostOne(terms)
    if not policy.colocate:
        for terms in gpu_count_terms.values():
            if len(terms) > 1:
                m.AddAtMostOne(terms)
    y: dict[tuple[int, int, int], object] = {}
    for d in demands:
        xs = [v for key, v in x.items() if key[0] == d.index]
        qs = [v for key, v in q.items() if key[0] == d.index]
        if d.mode == "throughput":
            y.update(add_bucket_choice(m, d, range(len(d.options)), lambda pi, d=d: sum(
                v for key, v in q.items() if key[0] == d.index and key[3] == pi)))
        else:
            m.Add(sum(qs) >= d.concurrency)
        m.Add(sum(xs) >= d.min_replicas)
        if d.max_replicas is not None:
            m.Add(sum(xs) <= d.max_replicas)
    cost = sum(price_mills[k] * v for k, v in use.items())
    m.Minimize(cost)

    if hint is not None:
        _add_hint(m, hint, demands, all_offers, use, x, q, pool)
        chosen = {(a.deployment, a.bucket, a.option) for a in hint.assignments}
        for key, v in y.items():
            m.AddHint(v, 1 if key in chosen else 0)
    say(f"CP-SAT model: {len(use)} instance slots, {len(x)} placement variables")

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.1, limit * 0.8)
    solver.parameters.num_workers = workers or 0
    solver.parameters.random_seed = policy.seed
    solver.parameters.log_search_progress = False
    code = _solve_with_hint_fallback(solver, m)
    name = solver.StatusName(code)
    say(f"CP-SAT phase 1 (cost): {name} in {solver.WallTime():.2f}s")
    if code == cp_model.INFEASIBLE:
        return SolveResult(None, "infeasible", None, time.perf_counter() - started, "cp-sat", notes)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        if hint is not None:
            notes.append("CP-SAT found no plan in the time limit; this is the greedy plan")
            bound = solver.BestObjectiveBound() / MILLS_PER_USD if code == cp_model.UNKNOWN else None
            return SolveResult(hint, "feasible", bound, time.perf_counter() - started, "greedy", notes)
        return SolveResult(None, "unknown", None, time.perf_counter() - started, "cp-sat", notes)
    proven = code == cp_model.OPTIMAL
    best_cost = int(round(solver.ObjectiveValue()))
    bound = solver.BestObjectiveBound() / MILLS_PER_USD
    plan = _extract(solver, demands, all_offers, use, x, q, y)

    remaining = limit - (time.perf_counter() - started)
    if remaining > 0.2:
        # Phase 2: same model, cost pinned to the best found, maximise free memory (MiB).
        m.Add(cost <= best_cost)
        # Units of 1/16 MiB keep small per-sequence KV terms from rounding to zero.
        sixteenths = 16
        placed = []
        for (d, oid, s, pi, k), xv in x.items():
            p = demands[d].options[pi]
            if p.exclusive:
                placed.append((p.tp * p.limit_bytes * sixteenths // (KIB * KIB), xv))
                continue
            placed.append((p.tp * -(-p.static_bytes * sixteenths // (KIB * KIB)), xv))
            placed.append((p.tp * -(-p.kv_seq_bytes * sixteenths // (KIB * KIB)), q[d, oid, s, pi, k]))
        free = sum(limit_kib[all_offers[oid].gpu] * sixteenths // KIB * all_offers[oid].gpu_count * v
                   for (oid, s), v in use.items())
        m.Maximize(free - sum(c * v for c, v in placed))
        m.ClearHints()
        for (oid, s), v in use.items():
            m.AddHint(v, solver.Value(v))
        for key, v in x.items():
            m.AddHint(v, solver.Value(v))
            m.AddHint(q[key], solver.Value(q[key]))
        for v in y.values():
            m.AddHint(v, solver.Value(v))
        s2, code2 = run_cp_sat(m, max(0.1, min(remaining, max(1.0, 0.25 * limit))), workers, policy.seed)
        say(f"CP-SAT phase 2 (headroom at that cost): {s2.StatusName(code2)} in {s2.WallTime():.2f}s")
        if code2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            plan = _extract(s2, demands, all_offers, use, x, q, y)
    status = "optimal" if proven else "feasible"
    if not proven:
        notes.append(f"time limit reached: best bound ${bound:.2f}/h; the plan is not proven optimal")
    return SolveResult(plan, status, bound, time.perf_counter() - started, "cp-sat", notes)


def run_cp_sat(model, time_limit_s: float, threads: int | None, seed: int):
    """A CP-SAT solve with the project's settings (time limit, workers from --threads, fixed seed); returns
    (solver, status code)."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = threads or 0
    solver.parameters.random_seed = seed
    return solver, _solve_with_hint_fallback(solver, model)


def _solve_with_hint_fallback(solver, model) -> int:
    """Solve; if OR-Tools trips over the warm-start hint (9.15 raises `absl::btree_map::at` from its hint
    presolve on some valid hints), solve again without it rather than fail the plan."""
    try:
        return solver.Solve(model)
    except IndexError:
        model.ClearHints()
        return solver.Solve(model)


def _extract(solver, demands, offers, use, x, q, y) -> Plan:
    instances: list[PlannedInstance] = []
    index: dict[tuple[str, int], int] = {}
    for (oid, s), v in sorted(use.items()):
        if solver.Value(v):
            index[oid, s] = len(instances)
            instances.append(PlannedInstance(offer=oid, owned=s < offers[oid].owned))
    replicas = []
    for (d, oid, s, pi, k), xv in sorted(x.items()):
        if solver.Value(xv):
            p = demands[d].options[pi]
            replicas.append(PlacedReplica(deployment=d, option=pi, instance=index[oid, s], first_gpu=k * p.tp,
                                          seqs=solver.Value(q[d, oid, s, pi, k])))
    assignments = [BucketAssignment(deployment=d, bucket=b, option=pi) for (d, b, pi), v in sorted(y.items())
                   if solver.Value(v)]
    return Plan(instances=instances, replicas=replicas, assignments=assignments)


def _add_hint(m, plan: Plan, demands, offers, use, x, q, pool) -> None:
    """Map the greedy plan onto slots (owned first, in opening order) and hint every variable."""
    slot_of: dict[int, tuple[str, int]] = {}
    counters: dict[tuple[str, bool], int] = {}
    for n, inst in enumerate(plan.instances):
        if inst.offer not in offers:  # a hint from a wider pool: its other instances still guide the search
            continue
        o = offers[inst.offer]
        if inst.owned:
            s = counters.get((o.id, True), 0)
        else:
            s = o.owned + counters.get((o.id, False), 0)
        counters[o.id, inst.owned] = counters.get((o.id, inst.owned), 0) + 1
        slot_of[n] = (o.id, s)
    hinted_use = set(slot_of.values())
    for key, v in use.items():
        m.AddHint(v, 1 if key in hinted_use else 0)
    chosen = {}
    for r in plan.replicas:
        if r.instance not in slot_of:
            continue
        oid, s = slot_of[r.instance]
        p = demands[r.deployment].options[r.option]
        chosen[r.deployment, oid, s, r.option, r.first_gpu // p.tp] = r.seqs
    for key, v in x.items():
        m.AddHint(v, 1 if key in chosen else 0)
        m.AddHint(q[key], chosen.get(key, 0))
