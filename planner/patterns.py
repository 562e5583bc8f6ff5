"""Large fleets by column generation over GPU patterns: a valid lower bound that sees bin packing, and a plan.

The aggregated fleet model (planner.decompose) pools each GPU type's memory, so its bound ignores that a replica's
weights and its KV cache must sit together on its own GPUs; on fleets of small deployments that bound sits 30-50%
under the best plans. Here a *pattern* is the content of one GPU: a set of shards (deployment d, option p, k
sequences per replica), at most one per deployment (anti-affinity), static + k x KV bytes summed within the GPU's
usable bytes.

Master LP (GLOP), a relaxation of every plan (valid for any mix of TP degrees on one GPU):
    lambda_S >= 0                  GPUs of type g filled with pattern S
    n_o in [0, N_o]                instances of offer o (owned units at the owned price)
    supply    sum_S lambda_S <= sum_o G_o n_o                                      per GPU type
    blocks    sum_{S: max tp(S) >= t} lambda_S <= sum_{o: G_o >= t} G_o n_o         per GPU type, t = 2, 4, 8, ..
    coverage  sum_S lambda_S k_Sd / tp_Sd >= concurrency_d    (a TP-t replica is t shards holding the same k)
    replicas  min_d <= sum_S lambda_S [d in S] / tp_Sd <= max_d
    minimise  sum_o price_o n_o
Pricing: with the LP duals, the most valuable pattern of each GPU type and TP class is a multiple-choice knapsack
(one shard per deployment, any k in 1..M) solved by dynamic programming over the GPU's memory in UNITS steps, weights
rounded down: its value is an upper bound on every pattern's, so the Lagrangian bound

    LB = duals . right-hand sides + sum_o min(0, rc_o) N_o - sum_g U_g max(0, best pattern value_g - cost_g)

(U_g: GPUs of type g a plan no dearer than the incumbent can have) is a valid lower bound on the optimum at every
iteration, and equals the LP optimum once no pattern prices out.

Plan: the integer master over the *uniform* patterns found (every shard of the same TP degree t: a t-GPU block whose
GPUs hold identical shards), solved by CP-SAT with integer block counts; power-of-two blocks packed largest first
into power-of-two instances never fragment, so block supply per size class is exactly what the instances hold.

Applies to concurrency-sized deployments with co-location allowed and power-of-two GPU counts; other scenarios keep
the aggregated fleet model.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from planner.demands import Demand
from planner.offers import Offer
from planner.scenario import Policy
from planner.solution import PlacedReplica, Plan, PlannedInstance

UNITS = 256  # pricing resolution: one GPU's usable memory in this many steps (weights rounded down: a relaxation)
MILLS_PER_USD = 1000
EPS = 1e-7
COLUMNS_PER_CLASS = 3  # disjoint improving patterns taken per pricing class and iteration
SEED_OPTIONS = 4  # options per deployment in the first columns (pricing adds the rest as the duals ask)


@dataclass(frozen=True)
class _Item:
    """One way a deployment can put a shard on a GPU of type `gpu`: option `p`, per-rank bytes a + k b."""

    d: int
    p: int
    gpu: str
    tp: int
    static_bytes: int
    kv_bytes: int
    max_k: int
    limit_bytes: int


Pattern = tuple[str, tuple[tuple[int, int, int], ...]]  # (gpu, ((d, p, k), ...)) sorted


def applicable(demands: list[Demand], offers: list[Offer], policy: Policy) -> bool:
    """Concurrency-sized deployments, co-location allowed, rented instances only (no owned units, no quotas, every
    price above zero) and power-of-two GPU counts; other scenarios keep the aggregated fleet model."""
    return (policy.colocate and all(d.mode == "concurrency" for d in demands)
            and all(o.gpu_count & (o.gpu_count - 1) == 0 and not o.owned and o.max_instances is None
                    and o.price_usd_per_hour > 0 for o in offers))


@dataclass
class PatternResult:
    bound_usd_per_hour: float | None
    lp_usd_per_hour: float | None
    plan: Plan | None
    iterations: int
    columns: int
    converged: bool


class _Master:
    """The restricted master LP; columns are added as pricing finds them. A GPU of type g holding a shard of TP
    degree up to T lies in an instance of at least T GPUs, so it costs at least gpu_price[g, T], the cheapest price
    per GPU of such an instance: pricing patterns directly (no instance variables) keeps the LP a relaxation and
    its duals free of the degeneracy that empty instance-supply rows bring."""

    def __init__(self, demands: list[Demand], offers: list[Offer], items: dict[str, list[_Item]]):
        from ortools.linear_solver import pywraplp

        self.lp = pywraplp.Solver.CreateSolver("GLOP")
        lp, inf = self.lp, self.lp.infinity()
        self.demands = demands
        self.gpu_price: dict[tuple[str, int], float] = {}
        for g, its in items.items():
            for t in {it.tp for it in its}:
                self.gpu_price[g, t] = min(o.price_usd_per_hour / o.gpu_count for o in offers
                                           if o.gpu == g and o.gpu_count >= t)
        self.cov = {d.index: lp.Constraint(d.concurrency, inf) for d in demands}
        self.rep = {d.index: lp.Constraint(d.min_replicas, inf if d.max_replicas is None else d.max_replicas)
                    for d in demands}
        lp.Objective().SetMinimization()
        self.columns: dict[Pattern, object] = {}
        self.values: dict[Pattern, float] = {}

    def add(self, pattern: Pattern) -> bool:
        if pattern in self.columns:
            return False
        g, members = pattern
        lam = self.lp.NumVar(0, self.lp.infinity(), "")
        self.columns[pattern] = lam
        top = max(self.demands[d].options[p].tp for d, p, _ in members)
        self.lp.Objective().SetCoefficient(lam, self.gpu_price[g, top])
        for d, p, k in members:
            tp = self.demands[d].options[p].tp
            self.cov[d].SetCoefficient(lam, k / tp)
            self.rep[d].SetCoefficient(lam, 1 / tp)
        return True

    def solve(self) -> bool:
        from ortools.linear_solver import pywraplp

        return self.lp.Solve() == pywraplp.Solver.OPTIMAL


def _items(demands: list[Demand], offers: list[Offer]) -> dict[str, list[_Item]]:
    gpus = {o.gpu for o in offers}
    out: dict[str, list[_Item]] = defaultdict(list)
    for d in demands:
        for pi, p in enumerate(d.options):
            if p.gpu in gpus and any(o.gpu == p.gpu and o.gpu_count >= p.tp for o in offers):
                out[p.gpu].append(_Item(d.index, pi, p.gpu, p.tp, p.static_bytes, p.kv_seq_bytes,
                                        min(p.max_seqs, d.concurrency), p.limit_bytes))
    return dict(out)


def _fits(members, items_by_key, limit_bytes: int) -> bool:
    return sum(items_by_key[d, p].static_bytes + k * items_by_key[d, p].kv_bytes for d, p, k in members) <= limit_bytes


def _steps(it: _Item) -> tuple[np.ndarray, np.ndarray]:
    """Sequences k and their weight in UNITS steps (rounded down), keeping the largest k of each weight."""
    unit = it.limit_bytes / UNITS
    ks = np.arange(1, it.max_k + 1)
    w = np.floor((it.static_bytes + ks * it.kv_bytes) / unit).astype(np.int64)
    keep = w <= UNITS
    ks, w = ks[keep], w[keep]
    if len(w):
        last = np.append(w[1:] != w[:-1], True)  # equal weight: the most sequences is worth the most
        ks, w = ks[last], w[last]
    return ks, w


def _price(items: list[_Item], steps, mu: dict[int, float], nu: dict[int, float], cost: float):
    """Best pattern over `items` for the duals: (upper bound on its value, members (d, p, k)) or (bound, None) when
    nothing can beat `cost`. Weights are rounded down to UNITS steps, so the value bounds every exact pattern's."""
    cols = np.arange(UNITS + 1)
    # Quick bound (fractional relaxation): a deployment's shard is worth at most V_d and at most rho_d per step it
    # weighs; filling the GPU's steps in decreasing rho_d bounds every pattern's value.
    per_item = []
    top_value: dict[int, float] = defaultdict(float)
    top_density: dict[int, float] = defaultdict(float)
    for it in items:
        m, n = mu.get(it.d, 0.0), nu.get(it.d, 0.0)
        ks, w = steps[it.d, it.p]
        if not len(ks):
            continue
        top = (m * ks[-1] + max(n, 0.0)) / it.tp
        if top <= 0:
            continue
        per_item.append(it)
        top_value[it.d] = max(top_value[it.d], top)
        k_per_w, one_per_w = steps[it.d, it.p, "density"]
        top_density[it.d] = max(top_density[it.d], (m * k_per_w + max(n, 0.0) * one_per_w) / it.tp)
    if not per_item:
        return 0.0, None
    quick, room = 0.0, float(UNITS)
    for d in sorted(top_value, key=lambda d: -top_density[d]):
        if top_density[d] == math.inf:
            quick += top_value[d]
            continue
        take = min(room, top_value[d] / top_density[d]) if top_density[d] > 0 else 0.0
        quick += take * top_density[d]
        room -= take
        if room <= 0:
            break
    if quick <= cost + EPS:
        return quick, None
    dp = np.zeros(UNITS + 1)
    trace = []
    by_d: dict[int, list[_Item]] = defaultdict(list)
    for it in per_item:
        by_d[it.d].append(it)
    for d, its in by_d.items():
        best = dp.copy()
        arg_e = np.full(UNITS + 1, -1)
        arg_k = np.zeros(UNITS + 1, dtype=np.int64)
        for ei, it in enumerate(its):
            ks, w = steps[it.d, it.p]
            v = (mu.get(d, 0.0) * ks + nu.get(d, 0.0)) / it.tp
            idx = cols[None, :] - w[:, None]
            cand = np.where(idx >= 0, dp[np.maximum(idx, 0)] + v[:, None], -np.inf)
            kbest = cand.argmax(axis=0)
            val = cand[kbest, cols]
            better = val > best + 1e-12
            best[better] = val[better]
            arg_e[better] = ei
            arg_k[better] = kbest[better]
        trace.append((its, arg_e, arg_k))
        dp = best
    value = float(dp[UNITS])
    if value <= cost + EPS:
        return value, None
    members = []
    c = UNITS
    for its, arg_e, arg_k in reversed(trace):
        ei = arg_e[c]
        if ei >= 0:
            it = its[ei]
            ks, w = steps[it.d, it.p]
            members.append((it.d, it.p, int(ks[arg_k[c]])))
            c -= int(w[arg_k[c]])
    return value, members


def _repair(members: list[tuple[int, int, int]], items_by_key, limit_bytes: int):
    """Rounded-down weights may overfill a GPU by a few units: take sequences off the largest shards until it fits."""
    members = list(members)
    while not _fits(members, items_by_key, limit_bytes):
        j = max(range(len(members)), key=lambda i: items_by_key[members[i][:2]].kv_bytes * members[i][2])
        d, p, k = members[j]
        if k <= 1:
            members.pop(j)
            if not members:
                return None
        else:
            members[j] = (d, p, k - 1)
    return members


def memory_price_bound(demands: list[Demand], gpu_price: dict[tuple[str, int], float],
                       items: dict[str, list[_Item]]) -> float:
    """A bound that needs no LP: a replica of option p holding k <= M sequences fills tp GPUs to (a + k b) / L each,
    which costs at least k x gpu_price x tp x (a / M + b) / L; so each deployment costs at least its concurrency
    times its cheapest per-sequence price, and at least min_replicas times its cheapest one-sequence replica.
    (The duals mu_d = that price are feasible for the pattern LP, so this is also a Lagrangian bound.)"""
    per_seq: dict[int, float] = {}
    per_replica: dict[int, float] = {}
    for g, its in items.items():
        for it in its:
            price = gpu_price[g, it.tp] * it.tp / it.limit_bytes
            seq = price * (it.static_bytes / it.max_k + it.kv_bytes)
            one = price * (it.static_bytes + it.kv_bytes)
            per_seq[it.d] = min(per_seq.get(it.d, math.inf), seq)
            per_replica[it.d] = min(per_replica.get(it.d, math.inf), one)
    return sum(max(d.concurrency * per_seq[d.index], d.min_replicas * per_replica[d.index]) for d in demands)


def _pattern(g: str, members) -> Pattern:
    return g, tuple(sorted(members))


def column_generation(demands: list[Demand], offers: list[Offer], slot_bounds: dict[str, int],
                      incumbent: Plan | None, deadline: float, say) -> tuple:
    """Run column generation until no pattern prices out or `deadline`. Returns (master, best Lagrangian bound,
    LP value, iterations, converged)."""
    items = _items(demands, offers)
    incumbent_usd_per_hour = incumbent.cost_usd_per_hour({o.id: o for o in offers}) if incumbent else None
    by_key = {(it.d, it.p): it for its in items.values() for it in its}
    master = _Master(demands, offers, items)
    steps = {}
    for its in items.values():
        for it in its:
            ks, w = steps[it.d, it.p] = _steps(it)
            steps[it.d, it.p, "density"] = ((float((ks / np.maximum(w, 1e-12)).max()) if (w > 0).all() else math.inf,
                                             1.0 / w[0] if w[0] > 0 else math.inf) if len(ks) else (0.0, 0.0))
    # Start: each deployment's SEED_OPTIONS cheapest options alone (by rented price per sequence), full replicas
    # and the replica that holds the rest, so the integer master is feasible from the first iteration.
    per_gpu_price = {}
    for o in offers:
        if o.price_usd_per_hour > 0 or o.owned:
            price = (o.owned_price_usd_per_hour if o.owned else o.price_usd_per_hour) / o.gpu_count
            per_gpu_price[o.gpu] = min(per_gpu_price.get(o.gpu, math.inf), price)
    by_d: dict[int, list[_Item]] = defaultdict(list)
    for its in items.values():
        for it in its:
            by_d[it.d].append(it)
    for d in demands:
        ranked = sorted(by_d[d.index], key=lambda it: (per_gpu_price.get(it.gpu, math.inf) * it.tp / it.max_k, it.tp,
                                                        it.gpu))
        for it in ranked[:SEED_OPTIONS]:
            for k in {it.max_k, max(1, d.concurrency % it.max_k), max(1, -(-d.concurrency // max(1, d.min_replicas)))}:
                ms = _repair([(it.d, it.p, min(k, it.max_k))], by_key, it.limit_bytes)
                if ms:
                    master.add(_pattern(it.gpu, ms))
    if incumbent is not None:  # and every GPU's content in the incumbent plan
        content: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
        for r in incumbent.replicas:
            for j in range(r.first_gpu, r.first_gpu + demands[r.deployment].options[r.option].tp):
                content[r.instance, j].append((r.deployment, r.option, r.seqs))
        for members in content.values():
            g = demands[members[0][0]].options[members[0][1]].gpu
            if all(key[:2] in by_key for key in members):
                master.add(_pattern(g, members))
    gpus_cap = {}
    for g in items:
        offs = [o for o in offers if o.gpu == g]
        total = sum(o.gpu_count * slot_bounds[o.id] for o in offs)
        rented = [o.price_usd_per_hour / o.gpu_count for o in offs if o.price_usd_per_hour > 0]
        if incumbent_usd_per_hour is not None and rented:
            owned = sum(o.gpu_count * min(o.owned, slot_bounds[o.id]) for o in offs)
            total = min(total, owned + math.floor(incumbent_usd_per_hour / min(rented) + 1e-9))
        gpus_cap[g] = total
    classes = []
    for g, its in items.items():
        tps = sorted({it.tp for it in its})
        for kind, t in [("uniform", t) for t in tps] + [("mixed", t) for t in tps if t > tps[0]]:
            classes.append((g, t, [it for it in its if (it.tp == t if kind == "uniform" else it.tp <= t)]))
    # Partial pricing: classes that priced out in the last full round are skipped until a partial round finds
    # nothing; only full rounds give a bound (every class priced with the same duals).
    active = set(range(len(classes)))
    best_bound, lp_value, it_no, converged, full = memory_price_bound(demands, master.gpu_price, items), None, 0, \
        False, True
    while True:
        it_no += 1
        if not master.solve():
            return master, None, None, it_no, False
        lp_value = master.lp.Objective().Value()
        master.values = {key: var.solution_value() for key, var in master.columns.items()}
        # Multipliers with the signs the Lagrangian needs (GLOP's may stray by its tolerance); the bound and the
        # pricing both use these, so the bound is valid whatever their values.
        mu = {d: max(0.0, row.dual_value()) for d, row in master.cov.items()}
        nu = {}
        for d in demands:
            y = master.rep[d.index].dual_value()
            nu[d.index] = y if y >= 0 or d.max_replicas is not None else 0.0
        dual_value = sum(mu[d.index] * d.concurrency
                         + nu[d.index] * (d.min_replicas if nu[d.index] >= 0 else d.max_replicas) for d in demands)
        theta = 1.0  # largest value / cost ratio of any pattern (Farley's bound: dual_value / theta)
        worst: dict[str, float] = defaultdict(float)  # largest value - cost per GPU type (Lagrangian bound)
        added = 0
        priced = range(len(classes)) if full else sorted(active)
        for c in priced:
            g, t, pool = classes[c]
            cost = master.gpu_price[g, t]
            value, members = _price(pool, steps, mu, nu, cost)
            worst[g] = max(worst[g], value - cost)
            theta = max(theta, value / cost)
            if members:
                active.add(c)
            else:
                active.discard(c)
            for _ in range(COLUMNS_PER_CLASS):  # then the best pattern without those deployments, and so on
                if not members:
                    break
                ms = _repair(members, by_key, pool[0].limit_bytes)
                if ms and master.add(_pattern(g, ms)):
                    added += 1
                taken = {d for d, _, _ in members}
                pool = [it for it in pool if it.d not in taken]
                if not pool:
                    break
                members = _price(pool, steps, mu, nu, cost)[1]
        if full:
            lagrangian = dual_value - sum(gpus_cap[g] * max(0.0, v) for g, v in worst.items())
            best_bound = max(best_bound, lagrangian, dual_value / theta)
        say(f"patterns: iteration {it_no}{'' if full else ' (partial)'}, LP ${lp_value:.2f}/h, "
            f"bound ${max(best_bound, 0):.2f}/h, {len(master.columns)} columns")
        if added == 0 and full:
            converged = True
            break
        full = added == 0 or not active
        if time.perf_counter() > deadline:
            break
    return master, max(best_bound, 0.0), lp_value, it_no, converged


def integer_plan(master: _Master, demands: list[Demand], offers: list[Offer], slot_bounds: dict[str, int],
                 policy: Policy, time_limit_s: float, threads: int, hint: Plan | None) -> Plan | None:
    """Integer master over the uniform patterns (whole TP blocks), then blocks onto instances."""
    from ortools.sat.python import cp_model

    from planner.solver import run_cp_sat

    m = cp_model.CpModel()
    uniform = []
    for (g, members) in master.columns:
        tps = {demands[d].options[p].tp for d, p, _ in members}
        if len(tps) == 1:
            uniform.append((g, members, tps.pop()))
    n_own, n_rent = {}, {}
    for o in offers:
        cap = slot_bounds[o.id]
        n_own[o.id] = m.NewIntVar(0, min(o.owned, cap), "")
        n_rent[o.id] = m.NewIntVar(0, max(0, cap - o.owned), "")
        if o.owned and cap > o.owned:  # rent only once every owned unit is in use
            full = m.NewBoolVar("")
            m.Add(n_own[o.id] == o.owned).OnlyEnforceIf(full)
            m.Add(n_rent[o.id] == 0).OnlyEnforceIf(full.Not())
    beta = []
    cover: dict[int, list] = defaultdict(list)
    count: dict[int, list] = defaultdict(list)
    size: dict[tuple[str, int], list] = defaultdict(list)
    lp_values = master.values
    for g, members, t in uniform:
        top = max(-(-demands[d].concurrency // k) + demands[d].min_replicas for d, _, k in members)
        b = m.NewIntVar(0, top, "")
        beta.append((g, members, t, b))
        m.AddHint(b, math.ceil(lp_values.get((g, members), 0.0) / t - 1e-9))
        for d, _, k in members:
            cover[d].append(k * b)
            count[d].append(b)
        size[g, t].append(t * b)
    for d in demands:
        m.Add(sum(cover[d.index]) >= d.concurrency)
        m.Add(sum(count[d.index]) >= d.min_replicas)
        if d.max_replicas is not None:
            m.Add(sum(count[d.index]) <= d.max_replicas)
    for g in {g for g, _ in size}:
        sizes = sorted({t for gg, t in size if gg == g})
        for t in sizes:
            need = [x for tt in sizes if tt >= t for x in size[g, tt]]
            m.Add(sum(need) <= sum(o.gpu_count * (n_own[o.id] + n_rent[o.id]) for o in offers
                                   if o.gpu == g and o.gpu_count >= t))
    m.Minimize(sum(round(o.owned_price_usd_per_hour * MILLS_PER_USD) * n_own[o.id]
                   + round(o.price_usd_per_hour * MILLS_PER_USD) * n_rent[o.id] for o in offers))
    solver, code = run_cp_sat(m, max(0.5, time_limit_s), threads, policy.seed)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    counts = {o.id: (solver.Value(n_own[o.id]), solver.Value(n_rent[o.id])) for o in offers}
    chosen = [(g, members, t, solver.Value(b)) for g, members, t, b in beta if solver.Value(b)]
    return _assemble(chosen, counts, demands, offers)


def _assemble(chosen, counts, demands: list[Demand], offers: list[Offer]) -> Plan | None:
    """Blocks onto instances, largest block first into the largest instance with room (aligned by construction);
    then sequences beyond each deployment's concurrency are taken back from its fullest replicas."""
    by_id = {o.id: o for o in offers}
    slots = []  # [offer, owned, next free GPU]
    for oid, (own, rent) in sorted(counts.items(), key=lambda kv: (-by_id[kv[0]].gpu_count, kv[0])):
        slots += [[by_id[oid], True, 0] for _ in range(own)] + [[by_id[oid], False, 0] for _ in range(rent)]
    blocks = sorted(((t, g, members) for g, members, t, n in chosen for _ in range(n)),
                    key=lambda b: (-b[0], b[1], b[2]))
    replicas = []
    for t, g, members in blocks:
        slot = next((i for i, s in enumerate(slots) if s[0].gpu == g and s[0].gpu_count - s[2] >= t), None)
        if slot is None:
            return None
        first = slots[slot][2]
        slots[slot][2] += t
        replicas += [[d, p, slot, first, k] for d, p, k in members]
    excess = defaultdict(int)
    for r in replicas:
        excess[r[0]] += r[4]
    for d in demands:
        excess[d.index] -= d.concurrency
    for r in sorted(replicas, key=lambda r: -r[4]):
        take = min(excess[r[0]], r[4] - 1)
        if take > 0:
            r[4] -= take
            excess[r[0]] -= take
    used = sorted({r[2] for r in replicas})
    renumber = {old: new for new, old in enumerate(used)}
    return Plan(instances=[PlannedInstance(offer=slots[i][0].id, owned=slots[i][1]) for i in used],
                replicas=[PlacedReplica(deployment=d, option=p, instance=renumber[s], first_gpu=f, seqs=k)
                          for d, p, s, f, k in replicas])


def solve_patterns(demands: list[Demand], offers: list[Offer], policy: Policy, slot_bounds: dict[str, int],
                   incumbent: Plan | None, time_limit_s: float, threads: int, say, started: float) -> PatternResult:
    by_id = {o.id: o for o in offers}
    deadline = started + time_limit_s
    cg_deadline = time.perf_counter() + 0.5 * (deadline - time.perf_counter())
    master, bound, lp, iterations, converged = column_generation(demands, offers, slot_bounds, incumbent, cg_deadline, say)
    if lp is None:
        return PatternResult(None, None, None, iterations, len(master.columns), False)
    remaining = deadline - time.perf_counter()
    plan = integer_plan(master, demands, offers, slot_bounds, policy, max(0.5, 0.6 * remaining), threads, incumbent)
    if plan is not None:
        say(f"patterns: integer master ${plan.cost_usd_per_hour(by_id):.2f}/h")
    return PatternResult(bound, lp, plan, iterations, len(master.columns), converged)
