"""Large fleets by column generation over GPU patterns: a valid lower bound that sees bin packing, and a plan.

The aggregated fleet model (planner.decompose) pools each GPU type's memory, so its bound ignores that a replica's
weights and its KV cache must sit together on its own GPUs; on fleets of small deployments that bound sits 30-50%
under the best plans. Here a *pattern* is the content of one GPU: a set of shards (deployment d, option p, k
sequences per replica), at most one per deployment (anti-affinity), static + k x KV bytes summed within the GPU's
usable bytes.

Master LP (GLOP), a relaxation of every plan (valid for any mix of TP degrees on one GPU):
    lambda_S >= 0      GPUs of type g filled with pattern S, each at gpu_price[g, T]: the cheapest price per GPU of
                       an instance with at least T GPUs, T the largest TP degree in S
    coverage  sum_S lambda_S k_Sd / tp_Sd >= concurrency_d    (a TP-t replica is t shards holding the same k)
    replicas  min_d <= sum_S lambda_S [d in S] / tp_Sd <= max_d
    minimise  sum_S gpu_price_S lambda_S
Pricing: with the LP duals, the most valuable pattern of each GPU type and TP class is a multiple-choice knapsack
(one shard per deployment, any k in 1..M) solved by dynamic programming over the GPU's memory in UNITS steps, weights
rounded down. Bounds, valid with any duals: Farley's duals . rhs / max(value / cost) and the Lagrangian
duals . rhs - sum_g U_g max(0, value - cost) (U_g: GPUs of type g a plan no dearer than the incumbent can pay for),
with pattern values bounded by _value_bound when column generation stops; both equal the LP optimum once no
pattern prices out. The memory-price bound is their floor.

Plan: the integer master over the *uniform* patterns found (every shard of the same TP degree t: a t-GPU block whose
GPUs hold identical shards), solved by CP-SAT with integer block counts; power-of-two blocks packed largest first
into power-of-two instances never fragment, so block supply per size class is exactly what the instances hold.

Applies to concurrency-sized deployments with co-location allowed, rented offers without quotas and power-of-two
GPU counts (`applicable`); other scenarios keep the aggregated fleet model.
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
EPS_USD_PER_HOUR = 1e-7  # a pattern must beat its GPU's price by more than this to count as improving
COLUMNS_PER_CLASS = 8  # disjoint improving patterns taken per pricing class and iteration
FULL_ROUND_EVERY = 8  # partial rounds between full (exact, bound-giving) pricing rounds
FINE_UNITS = 4096  # memory steps of the bound's knapsack (two choices per option, so it can afford fine steps)
CANDIDATES = 48  # deployments (densest value per memory step) a heuristic pricing round considers per class
COARSE_K = 12  # sequence counts per option tried by the heuristic pricing of partial rounds
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


def _uniform_tp(demands: list[Demand], members) -> int | None:
    """The TP degree every shard of a pattern shares (a whole t-GPU block), or None for a mixed pattern."""
    tps = {demands[d].options[p].tp for d, p, _ in members}
    return tps.pop() if len(tps) == 1 else None


def _items(demands: list[Demand], offers: list[Offer]) -> dict[str, list[_Item]]:
    gpus = {o.gpu for o in offers}
    out: dict[str, list[_Item]] = defaultdict(list)
    for d in demands:
        for pi, p in enumerate(d.options):
            if p.gpu in gpus and any(o.gpu == p.gpu and o.gpu_count >= p.tp for o in offers):
                out[p.gpu].append(_Item(d.index, pi, p.gpu, p.tp, p.static_bytes, p.kv_seq_bytes,
                                        min(p.max_seqs, d.concurrency), p.limit_bytes))
    return dict(out)


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


def _step_tables(items: list[_Item]) -> dict:
    """What pricing reads per item, computed once: (d, p, "all") every useful (k, steps); (d, p, "coarse") COARSE_K of
    them for heuristic rounds; (d, p, "density") the most sequences and the most shards per step, for the quick
    bound."""
    steps = {}
    for it in items:
        ks, w = steps[it.d, it.p, "all"] = _steps(it)
        pick = np.unique(np.linspace(0, len(ks) - 1, min(len(ks), COARSE_K)).round().astype(int))
        steps[it.d, it.p, "coarse"] = ks[pick], w[pick]
        steps[it.d, it.p, "density"] = (
            (float((ks / np.maximum(w, 1e-12)).max()) if (w > 0).all() else math.inf,
             1.0 / w[0] if w[0] > 0 else math.inf) if len(ks) else (0.0, 0.0))
    return steps


def _price(items: list[_Item], steps, mu: dict[int, float], nu: dict[int, float], cost: float,
           coarse: bool = False):
    """Best pattern over `items` for the duals: (upper bound on its value, members (d, p, k)) or (bound, None) when
    nothing can beat `cost`. Weights are rounded down to UNITS steps, so the value bounds every exact pattern's.
    `coarse` tries only COARSE_K sequence counts per option: a heuristic that finds columns faster, whose value is
    no bound (the full rounds that give the bound price exactly)."""
    variant = "coarse" if coarse else "all"
    cols = np.arange(UNITS + 1)
    # Quick bound (fractional relaxation): a deployment's shard is worth at most V_d and at most rho_d per step it
    # weighs; filling the GPU's steps in decreasing rho_d bounds every pattern's value.
    per_item = []
    top_value: dict[int, float] = defaultdict(float)
    top_density: dict[int, float] = defaultdict(float)
    for it in items:
        m, n = mu.get(it.d, 0.0), nu.get(it.d, 0.0)
        ks, w = steps[it.d, it.p, "all"]
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
    if quick <= cost + EPS_USD_PER_HOUR:
        return quick, None
    if coarse and len(top_value) > CANDIDATES:  # heuristic rounds: only the densest deployments can join
        keep = set(sorted(top_value, key=lambda d: -top_density[d])[:CANDIDATES])
        per_item = [it for it in per_item if it.d in keep]
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
            ks, w = steps[it.d, it.p, variant]
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
    if value <= cost + EPS_USD_PER_HOUR:
        return value, None
    members = []
    c = UNITS
    for its, arg_e, arg_k in reversed(trace):
        ei = arg_e[c]
        if ei >= 0:
            it = its[ei]
            ks, w = steps[it.d, it.p, variant]
            members.append((it.d, it.p, int(ks[arg_k[c]])))
            c -= int(w[arg_k[c]])
    return value, members


def _value_bound(items: list[_Item], mu: dict[int, float], nu: dict[int, float]) -> float:
    """An upper bound on any pattern's value over `items`, much tighter than the pricing DP's at the same cost.

    For a fixed set of shards, the value and the weight are linear in each shard's k, so the best (continuous) k's
    form a vertex of {1 <= k_d <= M_d, sum b_d k_d <= room}: every shard at k = 1 or k = M but one, the *filler*,
    which takes what room is left. So the bound is the best of: a multiple-choice knapsack with two choices per
    option (k = 1, k = M) over FINE_UNITS memory steps, alone or plus any filler f whose extra sequences fill the
    room the others leave (the knapsack may hold f as well: counting f twice only loosens the bound). Weights are
    rounded down, so every real pattern, and every integer k, is covered."""
    limit = items[0].limit_bytes
    unit = limit / FINE_UNITS
    dp = np.zeros(FINE_UNITS + 1)
    by_d: dict[int, list[_Item]] = defaultdict(list)
    fill = []  # (weight of f at k = 1 in steps, value at k = 1, value per step of fill, fill cap in steps)
    for it in items:
        m, n = mu.get(it.d, 0.0), max(0.0, nu.get(it.d, 0.0))
        if m <= 0 and n <= 0:
            continue
        by_d[it.d].append(it)
        w1 = math.floor((it.static_bytes + it.kv_bytes) / unit)
        if m > 0 and it.max_k > 1 and w1 <= FINE_UNITS:
            fill.append((w1, (m + n) / it.tp, m * unit / (it.tp * it.kv_bytes), (it.max_k - 1) * it.kv_bytes / unit))
    for its in by_d.values():
        best = dp.copy()
        for it in its:
            m, n = mu.get(it.d, 0.0), max(0.0, nu.get(it.d, 0.0))
            for k in {1, it.max_k}:
                w = math.floor((it.static_bytes + k * it.kv_bytes) / unit)
                if w <= FINE_UNITS:
                    np.maximum(best[w:], dp[:FINE_UNITS + 1 - w] + (m * k + n) / it.tp, out=best[w:])
        dp = best
    bound = float(dp[FINE_UNITS])
    cols = np.arange(FINE_UNITS + 1)
    for start in range(0, len(fill), 128):
        chunk = np.array(fill[start:start + 128])
        w1, base, rho, cap = (chunk[:, i][:, None] for i in range(4))
        room = FINE_UNITS - w1 - cols[None, :]
        value = np.where(room >= 0, dp[None, :] + base + rho * np.minimum(np.maximum(room, 0), cap), -np.inf)
        bound = max(bound, float(value.max()))
    return bound


def _repair(members: list[tuple[int, int, int]], items_by_key, limit_bytes: int, mu: dict[int, float] | None = None):
    """Rounded-down weights may overfill a GPU by a few steps: take off the sequences worth least under the duals
    `mu` (the fewest bytes' worth without duals): the shard that can free the excess alone at the least value, or,
    if none can, the one whose sequences are cheapest per byte down to one; a shard at one sequence that still
    does not fit leaves. Taking from the wrong shard turns an improving pattern into a known one, and column
    generation would stop early."""
    members = list(members)
    while True:
        excess = sum(items_by_key[d, p].static_bytes + k * items_by_key[d, p].kv_bytes
                     for d, p, k in members) - limit_bytes
        if excess <= 0:
            return members
        options = []
        for i, (d, p, k) in enumerate(members):
            it = items_by_key[d, p]
            price = (mu or {}).get(d, 0.0) / it.tp if mu is not None else it.kv_bytes
            need = math.ceil(excess / it.kv_bytes)
            if need <= k - 1:
                options.append((0, need * price, i, k - need))
            elif k > 1:
                options.append((1, price / it.kv_bytes, i, 1))
        if not options:  # every shard at one sequence: the cheapest one leaves
            members.pop(min(range(len(members)), key=lambda i: (mu or {}).get(members[i][0], 0.0)))
            if not members:
                return None
            continue
        _, _, i, k = min(options)
        d, p, _ = members[i]
        members[i] = (d, p, k)


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


class _Generator:
    """The master LP with everything pricing needs: items, their sequence steps, the pricing classes."""

    def __init__(self, demands: list[Demand], offers: list[Offer], slot_bounds: dict[str, int],
                 incumbent: Plan | None):
        self.demands = demands
        self.items = items = _items(demands, offers)
        self.by_key = by_key = {(it.d, it.p): it for its in items.values() for it in its}
        self.master = master = _Master(demands, offers, items)
        self.steps = _step_tables([it for its in items.values() for it in its])
        # Start: each deployment's SEED_OPTIONS cheapest options alone (by price per sequence), full replicas and
        # the replica that holds the rest, so the integer master is feasible from the first iteration.
        by_d: dict[int, list[_Item]] = defaultdict(list)
        for its in items.values():
            for it in its:
                by_d[it.d].append(it)
        for d in demands:
            ranked = sorted(by_d[d.index], key=lambda it: (master.gpu_price[it.gpu, it.tp] * it.tp / it.max_k, it.tp,
                                                            it.gpu))
            for it in ranked[:SEED_OPTIONS]:
                for k in {it.max_k, max(1, d.concurrency % it.max_k),
                          max(1, -(-d.concurrency // max(1, d.min_replicas)))}:
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
        incumbent_usd_per_hour = incumbent.cost_usd_per_hour({o.id: o for o in offers}) if incumbent else None
        self.gpus_cap = {}  # U_g: GPUs of type g a plan no dearer than the incumbent can pay for
        for g in items:
            offs = [o for o in offers if o.gpu == g]
            total = sum(o.gpu_count * slot_bounds[o.id] for o in offs)
            if incumbent_usd_per_hour is not None:
                total = min(total, math.floor(incumbent_usd_per_hour / min(o.price_usd_per_hour / o.gpu_count
                                                                            for o in offs) + 1e-9))
            self.gpus_cap[g] = total
        self.classes = []  # (gpu, tp, uniform, items)
        for g, its in items.items():
            tps = sorted({it.tp for it in its})
            for t in tps:
                self.classes.append((g, t, True, [it for it in its if it.tp == t]))
            for t in tps[1:]:
                self.classes.append((g, t, False, [it for it in its if it.tp <= t]))

    def duals(self) -> tuple[dict[int, float], dict[int, float], float]:
        """Multipliers with the signs the Lagrangian needs (GLOP's may stray by its tolerance), and duals . rhs;
        the bound and the pricing both use these, so the bound is valid whatever their values."""
        mu = {d: max(0.0, row.dual_value()) for d, row in self.master.cov.items()}
        nu = {}
        for d in self.demands:
            y = self.master.rep[d.index].dual_value()
            nu[d.index] = y if y >= 0 or d.max_replicas is not None else 0.0
        value = sum(mu[d.index] * d.concurrency
                    + nu[d.index] * (d.min_replicas if nu[d.index] >= 0 else d.max_replicas) for d in self.demands)
        return mu, nu, value

    def price(self, which, mu, nu, coarse: bool) -> tuple[int, dict[str, float], float, set[int]]:
        """Price classes `which`; add improving columns. Returns (columns added, largest value - cost per GPU type,
        largest value / cost, classes that found a column)."""
        worst: dict[str, float] = defaultdict(float)
        theta, added, found = 1.0, 0, set()
        for c in which:
            g, t, _, pool = self.classes[c]
            cost = self.master.gpu_price[g, t]
            value, members = _price(pool, self.steps, mu, nu, cost, coarse=coarse)
            worst[g] = max(worst[g], value - cost)
            theta = max(theta, value / cost)
            if members:
                found.add(c)
            for _ in range(COLUMNS_PER_CLASS):  # then the best pattern without those deployments, and so on
                if not members:
                    break
                ms = _repair(members, self.by_key, pool[0].limit_bytes, mu)
                if ms and self.master.add(_pattern(g, ms)):
                    added += 1
                taken = {d for d, _, _ in members}
                pool = [it for it in pool if it.d not in taken]
                if not pool:
                    break
                members = _price(pool, self.steps, mu, nu, cost, coarse=True)[1]
        return added, worst, theta, found

    def run(self, deadline: float, say) -> tuple[float, float | None, bool]:
        """Column generation until no pattern prices out or `deadline`: (best bound, LP value, converged). Partial rounds price (coarsely) only the classes that found columns last time; a full round,
        exact over every class, comes when a partial round finds nothing or every FULL_ROUND_EVERY rounds, and
        only full rounds give a bound."""
        master = self.master
        everything = range(len(self.classes))
        active = set(everything)
        best = memory_price_bound(self.demands, master.gpu_price, self.items)
        lp_value, it_no, since_full, full = None, 0, 0, True
        while True:
            it_no += 1
            if not master.solve():
                return best, None, False
            lp_value = master.lp.Objective().Value()
            self.lp_values = {key: var.solution_value() for key, var in master.columns.items()}
            mu, nu, dual_value = self.duals()
            added, worst, theta, found = self.price(everything if full else sorted(active), mu, nu, coarse=not full)
            # Mixed-TP classes (the largest pools) wait for full rounds; their columns matter only near the optimum.
            active = {c for c in found if self.classes[c][2]}
            if full:
                lagrangian = dual_value - sum(self.gpus_cap[g] * max(0.0, v) for g, v in worst.items())
                best = max(best, lagrangian, dual_value / theta)
                since_full = 0
            else:
                since_full += 1
            say(f"patterns: iteration {it_no}{'' if full else ' (partial)'}, LP ${lp_value:.2f}/h, "
                f"bound ${max(best, 0):.2f}/h, {len(master.columns)} columns")
            converged = added == 0 and full
            if converged or time.perf_counter() > deadline:
                best = max(best, self.certify(mu, nu, dual_value))
                say(f"patterns: {'converged' if converged else 'stopped'}, bound ${best:.2f}/h")
                return best, lp_value, converged
            full = added == 0 or not active or since_full >= FULL_ROUND_EVERY

    def certify(self, mu, nu, dual_value: float) -> float:
        """Farley's and the Lagrangian bound for duals (mu, nu), every class bounded by _value_bound."""
        theta, worst = 1.0, defaultdict(float)
        for g, t, _, pool in self.classes:
            cost = self.master.gpu_price[g, t]
            value = _value_bound(pool, mu, nu)
            theta = max(theta, value / cost)
            worst[g] = max(worst[g], value - cost)
        return max(dual_value / theta, dual_value - sum(self.gpus_cap[g] * max(0.0, v) for g, v in worst.items()))

    def dive(self, deadline: float) -> dict[Pattern, int] | None:
        """Price-and-dive rounding over uniform patterns (whole TP blocks): fix the block count closest to its next
        integer up (with any within 0.1 of theirs), price uniform classes for what is left, re-solve; until every
        count is integral. Past 60% of the time it stops pricing and rounds several counts per step, so it ends
        in time with a covering. Returns blocks per pattern (None only if the LP fails). Changes the master."""
        master, demands = self.master, self.demands
        uniform = [c for c, cl in enumerate(self.classes) if cl[2]]
        start = time.perf_counter()
        soft = start + 0.6 * (deadline - start)
        tps: dict[Pattern, int | None] = {}
        for key, var in master.columns.items():
            if _uniform_tp(demands, key[1]) is None:
                var.SetUb(0.0)
        while True:
            if not master.solve():
                return None
            now = time.perf_counter()
            if now < soft:
                mu, nu, _ = self.duals()
                if self.price(uniform, mu, nu, coarse=True)[0]:  # new uniform columns are born free
                    continue
            frac = []
            for key, var in master.columns.items():
                if key not in tps:
                    tps[key] = _uniform_tp(demands, key[1])
                t = tps[key]
                if t is None:
                    continue
                blocks = var.solution_value() / t
                if blocks - math.floor(blocks + 1e-6) > 1e-6:
                    frac.append((blocks - math.floor(blocks), blocks, key, t))
            if not frac:
                return {key: round(var.solution_value() / tps[key]) for key, var in master.columns.items()
                        if tps.get(key) is not None and var.solution_value() > 0.5}
            frac.sort(reverse=True)
            batch = 1 if now < soft else max(1, len(frac) // (4 if now < deadline else 1))
            for n, (part, blocks, key, t) in enumerate(frac):
                if part >= 0.9 or n < batch:
                    master.columns[key].SetLb(math.ceil(blocks) * t)


def integer_plan(master: _Master, demands: list[Demand], offers: list[Offer], slot_bounds: dict[str, int],
                 policy: Policy, time_limit_s: float, threads: int, hint: dict[Pattern, int] | None) -> Plan | None:
    """Integer master over the uniform patterns (whole TP blocks), then blocks onto instances."""
    from ortools.sat.python import cp_model

    from planner.decompose import instance_counts
    from planner.solver import run_cp_sat

    m = cp_model.CpModel()
    uniform = [(g, members, t) for g, members in master.columns if (t := _uniform_tp(demands, members)) is not None]
    n_own, n_rent, cost = instance_counts(m, offers, slot_bounds)
    beta = []
    cover: dict[int, list] = defaultdict(list)
    count: dict[int, list] = defaultdict(list)
    size: dict[tuple[str, int], list] = defaultdict(list)
    for g, members, t in uniform:
        top = max(-(-demands[d].concurrency // k) + demands[d].min_replicas for d, _, k in members)
        b = m.NewIntVar(0, top, "")
        beta.append((g, members, t, b))
        if hint is not None:
            m.AddHint(b, hint.get((g, members), 0))
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
    m.Minimize(cost)
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
    gen = _Generator(demands, offers, slot_bounds, incumbent)
    bound, lp, converged = gen.run(time.perf_counter() + 0.4 * (deadline - time.perf_counter()), say)
    if lp is None:
        return PatternResult(None, None, None, False)
    dived = gen.dive(time.perf_counter() + 0.4 * (deadline - time.perf_counter()))
    if dived is not None:
        say(f"patterns: dive rounded the LP to {sum(dived.values())} blocks, ${gen.master.lp.Objective().Value():.2f}/h")
    else:  # the LP failed mid-dive: round the column generation's last LP up instead
        dived = {}
        for (g, members), value in gen.lp_values.items():
            t = _uniform_tp(demands, members)
            if t is not None and value > 1e-6:
                dived[g, members] = math.ceil(value / t - 1e-6)
    plan = integer_plan(gen.master, demands, offers, slot_bounds, policy,
                        max(0.5, 0.8 * (deadline - time.perf_counter())), threads, dived)
    if plan is not None:
        say(f"patterns: integer master ${plan.cost_usd_per_hour(by_id):.2f}/h")
    return PatternResult(max(bound, 0.0), lp, plan, converged)
