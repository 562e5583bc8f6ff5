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
    rounding  sum_p alpha_p r_dp >= beta   (r_dp: replicas of option p; MIR cuts from integer replica counts,
                                            added when the LP breaks one: _mir_cut)
    minimise  sum_S gpu_price_S lambda_S
Pricing: with the LP duals (a shard of option p is worth mu_d k plus nu_dp, the replica row's and the cuts'
duals, per replica), the most valuable pattern of each GPU type and TP class is a multiple-choice knapsack
(one shard per deployment, any k in 1..M) solved by dynamic programming over the GPU's memory in UNITS steps, weights
rounded down. Bounds, valid with any duals: Farley's duals . rhs / max(value / cost) and the Lagrangian
duals . rhs - sum_g U_g max(0, value - cost) (U_g: GPUs of type g a plan no dearer than the incumbent can pay for),
with pattern values bounded by _value_bound, then for the most valuable classes by the exact pricing problem
(_exact_value_bound, CP-SAT), when column generation stops; both equal the LP optimum once no pattern prices out.
The memory-price bound is their floor. A class whose every pattern is a pattern of a class no dearer
(`_dominated`) is never priced: that class's value stands for it.

Plan: the integer master over the *uniform* patterns found (every shard of the same TP degree t: a t-GPU block whose
GPUs hold identical shards), solved by SCIP with integer block counts over the columns of column generation, their
near-optimal neighbours (`_Generator.enrich`) and a price-and-dive (`_Generator.dive`); power-of-two blocks packed
largest first
into instances never fragment, so block supply per size class is exactly what the instances hold (`_fleet`).
One more candidate: the uniform LP's block counts rounded down, housed, and the rest placed first fit around
them (`_completed_floor`); it wins where a quota binds the cheap type and the LP spreads the rest thinly over
large GPUs, which every rounding up pays for in whole GPUs.

Large fleets (more than GROUP_WHOLE_MAX deployments) are planned in groups of 25-100 dealt round-robin by size:
each group gets its own column generation, dive and integer master (groups run in parallel worker processes when
there are threads for them), and one instance-sizing program then houses
every group's blocks together. Small groups converge and solve to near their LP within the time a 2,000-deployment
fleet allows, where one integer master over the whole fleet does not (bench/scale.py). The bound still comes from
column generation over the whole fleet, warm-started with every group's columns. A group whose completed floor
beats its blocks keeps that plan of its own; a group with no plan goes first fit around the others'.

Owned units and quotas: a GPU type with either has no constant price per GPU, so its patterns draw on supply
variables per offer (owned GPUs at the owned price, rented ones up to the quota) through one row per TP size, and
pricing charges its classes the rows' duals (`_Master`); the integer master and the instance sizing buy owned
units first and keep every quota, and a large fleet's groups each get their share of both (`_group_offers`).

Without co-location a pattern is one shard, and every one is a column from the start; so is every replica of a
throughput-sized (Melange) deployment, which owns its GPUs, its buckets assigned to options by rows of their own
(`_Master`: one option per bucket, each option's load within its whole replicas). When the fleet holds nothing
else the integer master over every column is the exact model, and SCIP's bound there is the fleet's.

Applies to power-of-two TP degrees and no offer free without limit (`applicable`); other scenarios keep the
aggregated fleet model.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from planner.demands import LOAD_UNITS, Demand, bucket_load
from planner.greedy import (
    best_heuristic_plan,
    drain,
    drain_said,
    drained_is_better,
    owned_first,
    split_concurrency,
    start_from,
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

# Pricing resolution: one GPU's usable memory in this many steps (weights rounded down: a relaxation). Coarse steps
# let pricing count patterns that overfill their GPU by up to a step per shard; column generation then stalls with
# patterns priced out that the master cannot have, and the bound stays under the LP (100 deployments: LP $88.01/h,
# certified $87.30/h at 256 steps, where exact pricing finds real columns until the LP is $87.89/h). Thirteenth
# session, bounds of one solve each at 256 / 512 / 1,024 / 2,048 / 4,096 steps: 100 deployments in 10 s $87.30 /
# 87.51 / 87.69 / 87.76 / 87.75/h; 500 in 60 s $429.75 / - / 431.89 / 432.29 / 432.04/h; 2,000 in 120 s
# $1,701-1,707 (earlier runs) / - / 1,710.97 / 1,708.5-1,710.5 / 1,703.23/h. Plans within their usual spread.
UNITS = 2048
EPS_USD_PER_HOUR = 1e-7  # a pattern must beat its GPU's price by more than this to count as improving
# Disjoint improving patterns taken per pricing class and iteration: a tenth of the deployments, within these
# limits (more columns per LP solve converge large fleets several times faster: bench/scale.py, 500 deployments).
COLUMNS_PER_CLASS_MIN, COLUMNS_PER_CLASS_MAX = 8, 48
FULL_ROUND_EVERY = 8  # partial rounds between full (exact, bound-giving) pricing rounds
FINE_UNITS = 4096  # memory steps of the bound's knapsack (two choices per option, so it can afford fine steps)
CANDIDATES = 48  # deployments (densest value per memory step) a heuristic pricing round considers per class
COARSE_K = 12  # sequence counts per option tried by the heuristic pricing of partial rounds
SEED_OPTIONS = 4  # options per deployment in the first columns (pricing adds the rest as the duals ask)
# Time shares of the pattern path: column generation, then the dive (its columns are what the integer master
# combines into plans near the LP), then the integer master, each a share of the time left; certification gets a
# share of the path's whole limit (bench/scale.py).
# (100 deployments in 10 s: CG_SHARE 0.3 left the bound at $83.10/h, 0.6 lets column generation converge, $86.8/h;
# then DIVE_SHARE 0.5 left SCIP too little time, plans $94-112/h over four runs, 0.3 gave $93.6-94.1/h. Groups of a
# large fleet converge fast; 0.3 leaves their plans more time: 500 deployments $459/h, at 0.6 $473/h.
# With the near-optimal columns of `enrich`, a whole fleet does better with a shorter dive: 100 deployments,
# DIVE_SHARE 0.15 $91.14-91.63/h over three runs, 0.3 $91.63-93.59/h over five, 0.05 $92.12-93.59/h; groups keep
# 0.3: 500 deployments $455.50/h at 0.15, $454.56-454.61/h at 0.3; 2,000 $1,849.91/h and $1,842.62/h.)
CG_SHARE, GROUP_CG_SHARE, CERTIFY_SHARE, INTEGER_SHARE = 0.6, 0.3, 0.05, 0.9
# Of the limit: repairing the duals of a whole fleet's column generation that stalled without converging
# (`_Generator.repair`; 100 deployments: it converges in about 1 s, bound $86.97/h -> $87.26/h; at 10% it got
# 0.5 s after its certification's share and stopped at $86.52/h).
REPAIR_SHARE = 0.15
# The repair scales each deployment's coverage dual (per sequence) and its other rows' (per replica: replica
# count, rounding cuts, load) apart, not by one factor: 2,000 bench deployments, 120 s, bound $1,722.16-1,722.85/h
# over three runs against $1,718.52-1,721.60/h over six (docs/optimization.md, item 20).
REPAIR_SPLIT = True
# The LP's own duals are certified beside the repaired ones unless their best bound at a full round is more than
# this fraction below the repaired duals' (2,000 deployments: about 25% below, and certifying them took 6 s for the
# memory-price floor; 20 deployments: within 1%, and they certify $19.71/h against the repaired $19.66/h).
CERTIFY_BOTH_WITHIN = 0.05
# The repair's "best pattern without each member" looks at this many x CANDIDATES densest deployments, not all:
# on 2,000 deployments a knapsack over all of them took 70 ms, three per class and round (about 1.5 s a round).
REPAIR_NEAR = 4
# The repair also cuts with every deployment's best two-shard pattern (`_pairs_priced_out`), over this many rooms
# per GPU, this many items at a time.
PAIR_ROOM_STEPS, PAIR_CHUNK = 2048, 256
DIVE_SHARE, GROUP_DIVE_SHARE = 0.15, 0.3
# Each dive step rounds up this fraction of the fractional block counts (1/8: as good a plan on 100 deployments as
# one count per step, $92.16/h, in a third of the time; 1/4 gave $92.65/h).
DIVE_ROUND_FRACTION = 1 / 8
# The integer master takes the dive's blocks and the uniform columns priced within this fraction of their price at
# column generation's last duals (100 deployments, three runs each: all ~2,000 columns $94.08/h; within 10%, about
# 700 columns, $92.61-93.10/h; within 5% $92.07-93.59/h; within 2% $94.03-94.52/h).
INTEGER_REDUCED_COST_KEEP = 0.1
# ... but a pool of up to this many columns per second left goes to it whole (20 deployments, 557 columns, 7 s
# left: $21.07/h whole, $21.51/h over the 303 kept; 100 deployments, about 2,300 columns, 3.5 s left: whole
# $94.08/h, kept $92.6-93.1/h; groups of 25 of 2,000 deployments, about 400 columns, under 1 s left: whole
# $1,889/h for the fleet, kept $1,852/h).
INTEGER_ALL_COLUMNS_PER_S = 200
# ... and when the master over the kept columns ends (proven) with at least this long left, a second master over
# every column gets the rest, from its plan (groups of 500 deployments proved theirs in 0.7 s of 4 s).
INTEGER_REST_MIN_S = 0.5
# Near-optimal columns for the integer master (`_Generator.enrich`): exclusions deep, least value as a fraction of
# the GPU's price, share of the time left after column generation (20 deployments: depth 4 and 0.3 gave 193 columns
# in 0.1 s and the $21.07/h plan; depth 2 or 0.6 added a handful and left it at $21.51/h; depth 7, up to 1,129
# columns (1.2 s without a deadline; in a 10 s solve its share stops it sooner), the $20.58/h plan, 42 GPUs
# instead of 43, in every run, as did depth 8; 5 and 6 $21.02/h. At 100, 500 and 2,000 deployments depth 7
# changed nothing beyond the runs' spread: $91.14-91.63/h, $445.94/h, $1,787.11/h. Depth 10 and 0.1 at 100
# deployments: 11,000 columns, more than SCIP can use in the time). A whole fleet gets 0.15 since the thirteenth
# session: at 0.1 its deadline cut the 20-deployment search short in 3 runs of 11 (1,193 columns instead of 1,328,
# and $21.02/h), at 0.15 none of 5 ($20.58/h each; 100 deployments $91.14/h four times, $91.63/h once, as at 0.1).
# Groups keep 0.1 (2,000 deployments at 0.15: $1,787.39/h in one run, against $1,781.58-1,782.08/h).
ENRICH_DEPTH, ENRICH_MIN_VALUE, ENRICH_SHARE, GROUP_ENRICH_SHARE = 7, 0.3, 0.15, 0.1
# Large fleets are planned in groups (measured on bench/fleet.py, 2,000 deployments, about 100 s: groups of 25
# $1,869/h, of 50 $1,889/h, of 100 $1,954/h, the whole fleet at once $2,226/h; 500 deployments, about 55 s: groups
# of 50 $460/h, of 25 $465/h, whole $468/h). Group size: this many x the limit in s / deployments, within limits.
# Since pricing is compiled (planner/knapsack.py, tenth session) larger groups pay: 500 deployments in 60 s, groups
# of 50 $451.57/h, of 100 $446.96/h, 125 and 167 $447.86/h, 250 $446.39/h; 2,000 in 120 s, groups of 25
# $1,817.25/h, of 50 $1,804.30/h, of 100 $1,790.31/h, of 182 $1,836.59/h (bounds $1,702/h, $1,702/h, $1,694/h,
# $1,685/h: bigger groups leave the fleet-wide bound less time).
GROUP_WHOLE_MAX = 200
GROUP_SIZE_MIN, GROUP_SIZE_MAX, GROUP_SIZE_PER_S_PER_DEPLOYMENT = 25, 100, 1800
# Of the pattern path's limit, the groups' share; the rest: emptying instances on their plan, then the bound (column
# generation over the whole fleet and the dual repair). From the fifth to the ninth session fleets of over 1,000
# deployments gave their groups 0.85, as their fleet-wide column generation certified no more than the memory-price
# floor in any time; since the dual repair it does (2,000 deployments, groups of 100, one run each: 0.6 $1,789.92/h,
# bound $1,700.52/h, gap 5.0%; 0.7 $1,795.75/h, $1,697.20/h, 5.5%; 0.85 $1,792.80/h, $1,671.29/h, 6.8%).
GROUPS_SHARE = 0.6
# Wentges dual smoothing for the fleet-wide bound of a large fleet, whose column generation tails off in its time
# (500 deployments, 30 s warm-started from the groups' columns: bound $416.32/h without, $420.48/h at 0.5,
# $419.96/h at 0.8). Not on a whole fleet of up to GROUP_WHOLE_MAX, which converges: on 100 deployments it took
# 10.9 s instead of 6.5 s and certified $86.68/h instead of $86.97/h.
FLEET_BOUND_SMOOTHING = 0.5
# ... and of the time a large fleet's groups leave for the fleet-wide bound, the share of the repair (the rest:
# column generation from the groups' columns, which then moves its LP by cents per round). 500 deployments, 60 s:
# bound $425.83/h with 10% of the limit, $429.30/h with 30%, $429.76/h at 0.8 of what the groups leave. The repair
# ends so that its certification ends by the path's deadline however late column generation's rounds end (`run`'s
# `end`); at 2,000 deployments those rounds take about 10 s with the fleet-wide master's build, whatever their
# share, more than 0.8 left them, so the path used to run into the polishing time. With the cap the repair has the
# rest: 0.95 gave 2,000 deployments bounds of $1,690.69-1,701.48/h over five runs (mean $1,697.9/h), against
# $1,695.34-1,698.83/h over three at 0.8 without the cap (mean $1,696.8/h); 500 deployments, whose repair
# converges, $429.97-430.01/h in three against $430.21-430.30/h.
FLEET_REPAIR_SHARE = 0.95
# ... before which emptying instances (greedy.drain) may take this share of the time left on the housed groups' plan
# (2,000 deployments: a pass takes about 4 s; 500: about 1 s, and it ends on its own).
GROUPED_DRAIN_SHARE = 0.25
MAX_CUTS_PER_DEPLOYMENT = 8  # rounding cuts kept per deployment (each charges a fractional replica's weights)
CUT_MIN_VIOLATION = 1e-3  # replicas by which the LP point must break a cut (scaled by its largest coefficient)
SCIP_MIN_LIMIT_S = 0.2  # SCIP stops at once below this; every SCIP call gets at least this long
FLEET_SIZING_LIMIT_S = 10.0  # instance sizing for fixed blocks: a few integers per GPU type, solved in milliseconds


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
    exclusive: bool = False  # a throughput-sized replica: it owns its GPUs (max_k: LOAD_UNITS of capacity)


Pattern = tuple[str, tuple[tuple[int, int, int], ...]]  # (gpu, ((d, p, k), ...)) sorted


def applicable(demands: list[Demand], offers: list[Offer], policy: Policy) -> bool:
    """Power-of-two TP degrees and no instance type free without limit (a rented price above zero, or a quota);
    other scenarios keep the aggregated fleet model. Any GPU count per instance: a box of G GPUs holds aligned
    blocks of t GPUs on its first (G // t) x t (`_fleet`), and the master LP prices its GPUs at price / G, a
    relaxation. Owned units and quotas are supply the master LP prices by its duals (`_Master`); without
    co-location a pattern is one shard (`_Generator.single`); a throughput-sized deployment's replicas own their
    GPUs (one-shard patterns too) and its buckets are assigned in the master."""
    return not _unplannable(demands, offers)


def _unplannable(demands: list[Demand], offers: list[Offer]) -> set[str]:
    """GPU types that keep the pattern path from a scenario (`applicable`): those with an option of a TP degree
    that is not a power of two, or an offer free without limit."""
    return ({p.gpu for d in demands for p in d.options if p.tp & (p.tp - 1)}
            | {o.gpu for o in offers if o.price_usd_per_hour <= 0 and o.max_instances is None})


def capped_offer(o: Offer) -> bool:
    """An offer whose GPUs the master LP cannot price as a constant: owned units (cheaper, limited) or a quota."""
    return bool(o.owned) or o.max_instances is not None


def _may_bind(o: Offer, slot_bounds: dict[str, int]) -> bool:
    """Whether the master LP models the offer's supply (`_Master`): owned units always (pricing them at the rented
    price would overstate what a plan pays); a quota only where it is the offer's tightest slot bound. A quota above
    the others (`max_instances: 1000` on a type no plan near the incumbent can afford 1,000 of) binds no plan the
    bound must cover, and the LP without it is a relaxation all the same; left out, the type keeps a constant
    price and stays in Farley's scaling (100 bench deployments with such a quota: bound $86.97/h instead of
    $86.58/h, as without the quota)."""
    return bool(o.owned) or (o.max_instances is not None and slot_bounds[o.id] >= o.max_instances)


@dataclass
class PatternResult:
    bound_usd_per_hour: float | None
    lp_usd_per_hour: float | None
    plan: Plan | None
    converged: bool
    # The plan has been through greedy.drain to its end (the pass ended before its deadline): polishing it again
    # repeats a pass that moves nothing (2,000 deployments: about 4 s of the last 4 s).
    drained: bool = False


class _Master:
    """The restricted master LP; columns are added as pricing finds them. A GPU of type g holding a shard of TP
    degree up to T lies in an instance of at least T GPUs, so it costs at least gpu_price[g, T], the cheapest price
    per GPU of such an instance: pricing patterns directly (no instance variables) keeps the LP a relaxation and
    its duals free of the degeneracy that empty instance-supply rows bring.

    A GPU type with owned units or a quota that may bind (`capped`, `_may_bind`) has no such constant price: its
    owned GPUs are cheaper but few, a quota caps its cheapest offer. Its patterns cost nothing in the objective and
    draw on *supply* instead:
    per offer o of the type, y_own (at most G_o x owned, at the owned price per GPU) and y_rent (at most
    G_o x (quota - owned), at the price per GPU), and per TP size t of the type a row
        sum of y over offers with G_o >= t  >=  sum of lambda over the type's patterns with a shard of TP >= t
    (instances of at least t GPUs hold every GPU with a TP-t group; the sets are nested, so these rows are exactly
    what lets a fleet house the patterns). Still a relaxation of every plan; a class's price is then the sum of
    the duals pi of the rows up to its TP size."""

    def __init__(self, demands: list[Demand], offers: list[Offer], items: dict[str, list[_Item]],
                 slot_bounds: dict[str, int]):
        from ortools.linear_solver import pywraplp

        self.lp = pywraplp.Solver.CreateSolver("GLOP")
        lp, inf = self.lp, self.lp.infinity()
        self.demands = demands
        self.capped = capped = {o.gpu for o in offers if _may_bind(o, slot_bounds) and o.gpu in items}
        self.gpu_price = _gpu_prices(items, [o for o in offers if o.gpu not in capped])
        self.sizes = {g: sorted({it.tp for it in its}) for g, its in items.items()}
        self.supply_rows = {(g, t): lp.Constraint(0, inf) for g in sorted(capped) for t in self.sizes[g]}
        # (gpu, the largest TP size <= G_o or 0, USD/h per GPU, GPUs a plan within the slot bounds may take): the
        # Lagrangian's view of each supply variable (`_Generator.bound`)
        self.supply: list[tuple[str, int, float, int]] = []
        for o in offers:
            if o.gpu not in capped:
                continue
            top = max((t for t in self.sizes[o.gpu] if t <= o.gpu_count), default=0)
            bound = slot_bounds[o.id]
            rented = None if o.max_instances is None else max(0, o.max_instances - o.owned)
            for price, lp_cap, plan_cap in ((o.owned_price_usd_per_hour, o.owned, min(o.owned, bound)),
                                            (o.price_usd_per_hour, rented, max(0, bound - o.owned))):
                if lp_cap == 0:
                    continue
                y = lp.NumVar(0, inf if lp_cap is None else o.gpu_count * lp_cap, "")
                lp.Objective().SetCoefficient(y, price / o.gpu_count)
                for t in self.sizes[o.gpu]:
                    if t <= o.gpu_count:
                        self.supply_rows[o.gpu, t].SetCoefficient(y, 1)
                self.supply.append((o.gpu, top, price / o.gpu_count, o.gpu_count * plan_cap))
        # Throughput-sized deployments (Melange): z[d, b, p] in [0, 1] puts bucket b on option p, one option per
        # bucket (a row >= 1), and each option's replicas carry LOAD_UNITS of capacity each:
        #     LOAD_UNITS x replicas of p - sum_b load_bp z_dbp >= 0        (the row `load[d, p]`)
        # and, since replicas are whole, replicas of p >= ceil(load_bp / LOAD_UNITS) z_dbp  (the row `whole[d, b, p]`:
        # a bucket on p alone needs that many; the LP would otherwise hold 2.3 replicas for a load of 2.3)
        self.load: dict[tuple[int, int], object] = {}
        self.whole: dict[tuple[int, int, int], object] = {}
        self.assign: dict[tuple[int, int], dict[int, object]] = {}  # (d, b) -> {p: z}
        self.bucket_loads = _fleet_bucket_loads(demands, items)
        for d, loads in self.bucket_loads.items():
            for p in {p for by_p in loads.values() for p in by_p}:
                self.load[d, p] = lp.Constraint(0, inf)
            for b, by_p in loads.items():
                row = lp.Constraint(1, inf)
                self.assign[d, b] = {}
                for p, need in by_p.items():
                    z = self.assign[d, b][p] = lp.NumVar(0, 1, "")
                    row.SetCoefficient(z, 1)
                    self.load[d, p].SetCoefficient(z, -need)
                    self.whole[d, b, p] = lp.Constraint(0, inf)
                    self.whole[d, b, p].SetCoefficient(z, -math.ceil(need / LOAD_UNITS))
        self.offset = lp.NumVariables()  # pattern columns come after the supply and bucket variables
        self.cov = {d.index: lp.Constraint(d.concurrency, inf) for d in demands if d.mode == "concurrency"}
        self.rep = {d.index: lp.Constraint(d.min_replicas, inf if d.max_replicas is None else d.max_replicas)
                    for d in demands}
        lp.Objective().SetMinimization()
        self.columns: dict[Pattern, object] = {}  # in the order added: a column's variable index is its position
        self.values: list[float] = []  # every column's value in the last LP solved, read at once (`solve`)
        self.shards: dict[int, list[tuple[object, int, int, int]]] = defaultdict(list)  # d -> (column, its index,
        #                                                                                    option, tp)
        self.cuts: dict[int, list[tuple[object, dict[int, float], float]]] = defaultdict(list)  # d -> (row, alpha, rhs)

    def add(self, pattern: Pattern) -> bool:
        if pattern in self.columns:
            return False
        g, members = pattern
        lam = self.lp.NumVar(0, self.lp.infinity(), "")
        index = len(self.columns)
        self.columns[pattern] = lam
        top = max(self.demands[d].options[p].tp for d, p, _ in members)
        if g in self.capped:
            for t in self.sizes[g]:
                if t <= top:
                    self.supply_rows[g, t].SetCoefficient(lam, -1)
        else:
            self.lp.Objective().SetCoefficient(lam, self.gpu_price[g, top])
        for d, p, k in members:
            tp = self.demands[d].options[p].tp
            if d in self.cov:
                self.cov[d].SetCoefficient(lam, k / tp)
            else:  # throughput-sized: a replica's whole capacity, whatever share of it a plan uses
                self.load[d, p].SetCoefficient(lam, LOAD_UNITS / tp)
                for b in self.bucket_loads[d]:
                    if (d, b, p) in self.whole:
                        self.whole[d, b, p].SetCoefficient(lam, 1 / tp)
            self.rep[d].SetCoefficient(lam, 1 / tp)
            self.shards[d].append((lam, index, p, tp))
            for row, alpha, _ in self.cuts[d]:
                row.SetCoefficient(lam, alpha[p] / tp)
        return True

    def replicas(self) -> dict[int, dict[int, float]]:
        """Replicas of each deployment by option in the current LP solution."""
        out: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        values = self.values
        for d, shards in self.shards.items():
            for _, index, p, tp in shards:
                if index < len(values):  # a column added since the LP was solved is at 0
                    out[d][p] += values[index] / tp
        return out

    def cut(self, d: int, alpha: dict[int, float], rhs: float) -> None:
        """Add sum_p alpha_p r_dp >= rhs over deployment d's replicas by option (a valid inequality)."""
        row = self.lp.Constraint(rhs, self.lp.infinity())
        for lam, _, p, tp in self.shards[d]:
            row.SetCoefficient(lam, alpha[p] / tp)
        self.cuts[d].append((row, alpha, rhs))

    def solve(self) -> bool:
        """Solve the LP; on success read every column's value at once (one call, not one per column: on 500
        deployments the per-column reads took about a tenth of column generation's time)."""
        from ortools.linear_solver import linear_solver_pb2, pywraplp

        if self.lp.Solve() != pywraplp.Solver.OPTIMAL:
            return False
        response = linear_solver_pb2.MPSolutionResponse()
        self.lp.FillSolutionResponseProto(response)
        self.values = list(response.variable_value)[self.offset:]
        return True


def _gpu_prices(items: dict[str, list[_Item]], offers: list[Offer]) -> dict[tuple[str, int], float]:
    """gpu_price[g, t]: the cheapest price per GPU of an instance of type g with at least t GPUs (types of
    `offers` only)."""
    gpus = {o.gpu for o in offers}
    return {(g, t): min(o.price_usd_per_hour / o.gpu_count for o in offers if o.gpu == g and o.gpu_count >= t)
            for g, its in items.items() if g in gpus for t in {it.tp for it in its}}


def _floor_prices(items: dict[str, list[_Item]], offers: list[Offer]) -> dict[tuple[str, int], float]:
    """The least any GPU of type g in an instance of at least t GPUs can cost per hour: rented, or owned (then at
    the owned price, 0 for cloud capacity already paid for). Bounds built on these hold with owned units."""
    def per_gpu(o: Offer) -> float:
        prices = [o.owned_price_usd_per_hour] if o.owned else []
        if o.max_instances is None or o.max_instances > o.owned:  # rentable beyond the owned units
            prices.append(o.price_usd_per_hour)
        return min(prices) / o.gpu_count

    return {(g, t): min(per_gpu(o) for o in offers if o.gpu == g and o.gpu_count >= t and o.max_instances != 0)
            for g, its in items.items() for t in {it.tp for it in its}}


def type_floors(demands: list[Demand], offers: list[Offer], policy: Policy) -> dict[str, float]:
    """Per GPU type of `offers`, a lower bound on every plan that uses that type alone, needing no solve: the
    memory price of `memory_price_bound` per sequence (not in whole replicas: a few percent lower, but no dynamic
    program) over the type's options and offers; 0 where the pattern path would not apply to the type alone (its
    bounds assume it), infinite when some deployment has no option the type's instances can house. One pass over
    the options for every type at once:
    `greedy.best_heuristic_plan` uses it to skip first-fit runs that cannot beat its best plan (2,000 bench
    deployments: 16 of the 18 GPU types offered, 0.9 s of floors for about 3 s of greedy runs), the single-GPU-type
    baselines to order and prune their solves."""
    gpus = sorted({o.gpu for o in offers})
    odd = _unplannable(demands, offers)  # `applicable` per type
    items = _items(demands, offers)
    prices = _floor_prices(items, offers)
    everyone = {d.index for d in demands}
    floors = {}
    for g in gpus:
        own = items.get(g, [])
        if {it.d for it in own} != everyone:
            floors[g] = math.inf
        elif g in odd:
            floors[g] = 0.0
        else:
            floors[g] = memory_price_bound(demands, {key: v for key, v in prices.items() if key[0] == g},
                                           {g: own}, whole_replicas=False, whole_gpus=not policy.colocate)
    return floors


def _uniform_tp(demands: list[Demand], members) -> int | None:
    """The TP degree every shard of a pattern shares (a whole t-GPU block), or None for a mixed pattern."""
    tps = {demands[d].options[p].tp for d, p, _ in members}
    return tps.pop() if len(tps) == 1 else None


def _items(demands: list[Demand], offers: list[Offer]) -> dict[str, list[_Item]]:
    """Every replica option an offer can house (a GPU type with an instance of at least its TP degree, not capped
    at zero), per GPU type."""
    widest: dict[str, int] = {}  # GPU type -> the most GPUs one of its instances may have
    for o in offers:
        if o.max_instances != 0:
            widest[o.gpu] = max(widest.get(o.gpu, 0), o.gpu_count)
    out: dict[str, list[_Item]] = defaultdict(list)
    for d in demands:
        for pi, p in enumerate(d.options):
            if p.tp <= widest.get(p.gpu, 0):
                if p.exclusive:  # a whole GPU per rank, LOAD_UNITS of capacity per replica
                    out[p.gpu].append(_Item(d.index, pi, p.gpu, p.tp, p.limit_bytes, 0, LOAD_UNITS, p.limit_bytes,
                                            True))
                else:
                    out[p.gpu].append(_Item(d.index, pi, p.gpu, p.tp, p.static_bytes, p.kv_seq_bytes,
                                            min(p.max_seqs, d.concurrency), p.limit_bytes))
    return dict(out)


def _bucket_loads(d: Demand, options) -> dict[int, dict[int, int]]:
    """A throughput-sized deployment's load per bucket b and option p in `options` that serves it:
    {b: {p: thousandths of a replica}} (Melange's bucket_load, rounded up as in the exact model)."""
    return {b: {p: bucket_load(bk.requests_per_s, d.options[p].bucket_rps[b]) for p in options
                if d.options[p].bucket_rps[b] > 0} for b, bk in enumerate(d.buckets)}


def _fleet_bucket_loads(demands: list[Demand], items: dict[str, list[_Item]]) -> dict[int, dict[int, dict[int, int]]]:
    """`_bucket_loads` of every throughput-sized deployment over its options that `items` holds."""
    options: dict[int, set[int]] = defaultdict(set)
    for its in items.values():
        for it in its:
            if it.exclusive:
                options[it.d].add(it.p)
    return {d.index: _bucket_loads(d, sorted(options[d.index])) for d in demands if d.mode == "throughput"}


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
    bound; ("flat", variant) every item's choices of that variant in two flat arrays (sequences, steps) and where
    each item's lie in them, for the compiled knapsack (`planner.knapsack`)."""
    steps = {}
    for it in items:
        ks, w = steps[it.d, it.p, "all"] = _steps(it)
        pick = np.unique(np.linspace(0, len(ks) - 1, min(len(ks), COARSE_K)).round().astype(int))
        steps[it.d, it.p, "coarse"] = ks[pick], w[pick]
        steps[it.d, it.p, "density"] = (
            (float((ks / np.maximum(w, 1e-12)).max()) if (w > 0).all() else math.inf,
             1.0 / w[0] if w[0] > 0 else math.inf) if len(ks) else (0.0, 0.0))
    for variant in ("all", "coarse"):
        tables = [steps[it.d, it.p, variant] for it in items]
        counts = [len(ks) for ks, _ in tables]
        firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if items else []
        steps["flat", variant] = (
            np.concatenate([ks for ks, _ in tables] or [np.zeros(0)]).astype(np.float64),
            np.concatenate([w for _, w in tables] or [np.zeros(0)]).astype(np.int64),
            {(it.d, it.p): (int(f), n) for it, f, n in zip(items, firsts, counts)})
    return steps


def _price(items: list[_Item], steps, mu: dict[int, float], nu: dict[int, float], cost: float,
           coarse: bool = False):
    """Best pattern over `items` for the duals: (upper bound on its value, members (d, p, k) or None when nothing
    can beat `cost`, the items that can add value, their deployments densest first, the `_Pool` the knapsack ran
    on or None). Weights are rounded down to
    UNITS steps, so the value bounds every exact pattern's. `coarse` tries only COARSE_K sequence counts per
    option and the CANDIDATES densest deployments: a heuristic that finds columns faster, whose value is no bound
    (the full rounds that give the bound price exactly)."""
    quick, per_item, order = _rank(items, steps, mu, nu)
    if quick <= cost + EPS_USD_PER_HOUR:
        return quick, None, per_item, order, None
    pool = _Pool(per_item, steps, mu, nu, coarse)
    value, members = pool.solve(pool.densest(order, set()) if coarse else pool.deployments)
    return value, (members if value > cost + EPS_USD_PER_HOUR else None), per_item, order, pool


def _rank(items: list[_Item], steps, mu: dict[int, float], nu: dict[int, float]):
    """(quick bound on any pattern's value, the items that can add value, their deployments densest first)."""
    # Quick bound (fractional relaxation): a deployment's shard is worth at most V_d and at most rho_d per step it
    # weighs; filling the GPU's steps in decreasing rho_d bounds every pattern's value. In arrays over the pool
    # (its constants kept in `steps`): a Python loop over the items took a sixth of column generation's time.
    # Keyed by the list itself (the classes' pools live as long as their generator), kept beside its arrays so
    # that its id cannot be reused while they are cached.
    key = ("rank", id(items))
    if key not in steps or steps[key][0] is not items:
        useful = [i for i, it in enumerate(items) if len(steps[it.d, it.p, "all"][0])]
        steps[key] = (items, np.array(useful, np.int64),
                      np.array([items[i].d for i in useful], np.int64),
                      np.array([steps[items[i].d, items[i].p, "all"][0][-1] for i in useful], np.float64),
                      np.array([items[i].tp for i in useful], np.float64),
                      np.array([steps[items[i].d, items[i].p, "density"] for i in useful], np.float64).reshape(-1, 2))
    _, useful, ds, k_max, tp, density = steps[key]
    m = np.array([mu.get(d, 0.0) for d in ds.tolist()])
    n = np.maximum(np.array([nu.get((items[i].d, items[i].p), 0.0) for i in useful.tolist()]), 0.0)
    top = (m * k_max + n) / tp
    keep = np.flatnonzero(top > 0)
    if not len(keep):
        return 0.0, [], []
    with np.errstate(invalid="ignore"):  # 0 x inf (a choice of no steps, nothing to be worth): no density
        rho = (m[keep] * density[keep, 0] + n[keep] * density[keep, 1]) / tp[keep]
    # per deployment, in order of its first useful item: the most a shard is worth, and per step
    deps, where = np.unique(ds[keep], return_inverse=True)
    firsts = np.full(len(deps), len(keep))
    np.minimum.at(firsts, where, np.arange(len(keep)))
    top_value = np.zeros(len(deps))
    np.maximum.at(top_value, where, top[keep])
    top_density = np.zeros(len(deps))
    np.fmax.at(top_density, where, rho)  # fmax: a nan (0 x inf) leaves the deployment's density as it was
    seen = np.argsort(firsts, kind="stable")
    ranked = seen[np.argsort(-top_density[seen], kind="stable")]
    quick, room = 0.0, float(UNITS)
    for j in ranked.tolist():
        v, r = float(top_value[j]), float(top_density[j])
        if r == math.inf:
            quick += v
            continue
        take = min(room, v / r) if r > 0 else 0.0
        quick += take * r
        room -= take
        if room <= 0:
            break
    return quick, [items[i] for i in useful[keep].tolist()], deps[ranked].tolist()


class _Pool:
    """Items at fixed duals, in arrays, for many knapsacks over subsets of their deployments (the dynamic program
    of `planner.knapsack`, compiled once loaded, over the step tables' flat arrays, "coarse" or "all"). Built once per
    class and round: the repair's windows and exclusions and pricing's further columns then pay no Python loop
    over the items per knapsack (on 2,000 deployments that loop cost as much as the knapsacks)."""

    def __init__(self, per_item: list[_Item], steps, mu: dict[int, float], nu: dict[tuple[int, int], float],
                 coarse: bool):
        self.ks, self.w, where = steps["flat", "coarse" if coarse else "all"]
        by_d: dict[int, list[_Item]] = defaultdict(list)
        for it in per_item:
            by_d[it.d].append(it)
        self.deployments = list(by_d)  # in order of first appearance
        self.position = {d: i for i, d in enumerate(self.deployments)}
        self.items = [it for its in by_d.values() for it in its]
        self.rows: dict[int, tuple[int, int]] = {}  # d -> its items' rows in the arrays below (first, past the last)
        at = 0
        for d, its in by_d.items():
            self.rows[d] = at, at + len(its)
            at += len(its)
        first_count = np.array([where[it.d, it.p] for it in self.items], np.int64).reshape(-1, 2)
        self.first, self.count = first_count[:, 0], first_count[:, 1]
        self.mu = np.array([mu.get(it.d, 0.0) for it in self.items])
        self.nu = np.array([nu.get((it.d, it.p), 0.0) for it in self.items])
        self.inv_tp = np.array([1.0 / it.tp for it in self.items])

    def densest(self, order: list[int], taken: set[int]) -> list[int]:
        """The CANDIDATES densest deployments (`order`: densest first) not in `taken`, in order of appearance."""
        keep = []
        for d in order:
            if d not in taken and d in self.position:
                keep.append(d)
                if len(keep) == CANDIDATES:
                    break
        return sorted(keep, key=self.position.__getitem__)

    def solve(self, deployments: list[int]) -> tuple[float, list[tuple[int, int, int]]]:
        """The multiple-choice knapsack over `deployments`' items (one shard per deployment, stages in the order
        given): (value, members (d, p, k)). Ties: a deployment stays out. Compiled, it releases the GIL."""
        from planner.knapsack import mckp

        if not deployments:
            return 0.0, []
        spans = np.array([self.rows[d] for d in deployments], np.int64)
        sizes = spans[:, 1] - spans[:, 0]
        stage_start = np.zeros(len(deployments) + 1, np.int64)
        np.cumsum(sizes, out=stage_start[1:])
        rows = np.arange(stage_start[-1]) + np.repeat(spans[:, 0] - stage_start[:-1], sizes)
        value, chosen, seqs = mckp(stage_start, self.first[rows], self.count[rows], self.mu[rows], self.nu[rows],
                                   self.inv_tp[rows], self.ks, self.w, UNITS)
        return float(value), [(self.items[rows[i]].d, self.items[rows[i]].p, int(k))
                              for i, k in zip(chosen[::-1].tolist(), seqs[::-1].tolist()) if i >= 0]


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
        m, n = mu.get(it.d, 0.0), max(0.0, nu.get((it.d, it.p), 0.0))
        if m <= 0 and n <= 0:
            continue
        by_d[it.d].append(it)
        w1 = math.floor((it.static_bytes + it.kv_bytes) / unit)
        if m > 0 and it.max_k > 1 and w1 <= FINE_UNITS:
            fill.append((w1, (m + n) / it.tp, m * unit / (it.tp * it.kv_bytes), (it.max_k - 1) * it.kv_bytes / unit))
    for its in by_d.values():
        best = dp.copy()
        for it in its:
            m, n = mu.get(it.d, 0.0), max(0.0, nu.get((it.d, it.p), 0.0))
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


def _single_value(items: list[_Item], mu: dict[int, float], nu: dict[tuple[int, int], float]) -> float:
    """The most a one-shard pattern over `items` is worth, exactly: (mu_d M + nu_dp) / tp at the most sequences M
    (the value grows with k, and M fits by construction)."""
    return max([0.0] + [(mu.get(it.d, 0.0) * it.max_k + nu.get((it.d, it.p), 0.0)) / it.tp for it in items])


def _exact_value_bound(items: list[_Item], mu: dict[int, float], nu: dict[int, float], cost: float,
                       time_limit_s: float, threads: int, seed: int) -> float:
    """An upper bound on any pattern's value over `items` from the exact pricing problem, solved by CP-SAT: one
    shard per deployment at most, k_i in 1..M_i sequences, sum of a_i + k_i b_i within the GPU's usable bytes.
    Bytes are counted in KiB rounded in the relaxing direction (demands down, the limit up) and values are scaled
    to integers rounded up, so the optimum bounds every real pattern's value; a time-limited solve still gives a
    valid bound (CP-SAT's best objective bound)."""
    from ortools.sat.python import cp_model

    from planner.solver import KIB, run_cp_sat

    scale = 1e6 / max(cost, 1e-3)  # integer value units: a millionth of the GPU's price (a capped one's may be 0)
    m = cp_model.CpModel()
    used, value, one = [], [], defaultdict(list)
    for it in items:
        a, b = mu.get(it.d, 0.0) / it.tp, nu.get((it.d, it.p), 0.0) / it.tp
        if a <= 0 and b <= 0:
            continue
        y = m.NewBoolVar("")
        k = m.NewIntVar(0, it.max_k, "")
        m.Add(k >= y)
        m.Add(k <= it.max_k * y)
        used.append((it.static_bytes // KIB) * y + (it.kv_bytes // KIB) * k)
        value.append(math.ceil(a * scale) * k + math.ceil(b * scale) * y)
        one[it.d].append(y)
    if not used:
        return 0.0
    m.Add(sum(used) <= -(-items[0].limit_bytes // KIB))
    for ys in one.values():
        if len(ys) > 1:
            m.AddAtMostOne(ys)
    m.Maximize(sum(value))
    solver, code = run_cp_sat(m, time_limit_s, threads, seed)
    if code == cp_model.OPTIMAL:
        return solver.ObjectiveValue() / scale
    return solver.BestObjectiveBound() / scale if code == cp_model.FEASIBLE else math.inf


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


def _mir_cut(concurrency: int, max_k: dict[int, int], replicas: dict[int, float]):
    """The most violated mixed-integer rounding cut on a deployment's replica counts: (alpha, rhs) or None.

    Any plan has integer replicas r_p of each option p, each holding at most M_p sequences, so
    sum_p M_p r_p >= C. Divided by an M_q in use and rounded (MIR for a >= row, with remainder
    f = C mod M_q > 0): sum_p (floor(M_p / M_q) + min(M_p mod M_q, f) / f) r_p >= floor(C / M_q) + 1. The LP may
    hold 1.3 replicas of a deployment that needs 2, paying for 1.3 copies of its weights; these cuts charge what
    rounding costs. Integer arithmetic, coefficients rounded up (a weaker, still valid, cut)."""
    best, best_violation = None, CUT_MIN_VIOLATION
    for m_q in {max_k[p] for p, r in replicas.items() if r > 1e-9}:
        f = concurrency % m_q
        if f == 0:
            continue
        alpha = {p: math.nextafter(m // m_q + min(m % m_q, f) / f, math.inf) for p, m in max_k.items()}
        rhs = concurrency // m_q + 1
        violation = (rhs - sum(alpha[p] * r for p, r in replicas.items())) / max(alpha.values())
        if violation > best_violation:
            best, best_violation = (alpha, float(rhs)), violation
    return best


def _pairs_priced_out(items: list[_Item], mu: dict[int, float], nu: dict[tuple[int, int], float],
                      cost: float) -> list[list[tuple[int, int, int]]]:
    """Two-shard patterns over `items` worth more than `cost`, the most valuable one per deployment: the repair's
    cuts when big shards fill the GPU two at a time. The best pair has one shard at one or at its most sequences
    and the other filling the room left (value and weight are linear in each k), so every item at those two
    counts is paired with the best shard of another deployment for the room it leaves, read from a table over
    PAIR_ROOM_STEPS rooms (rounded down: every pair found fits in bytes; a few may be missed)."""
    limit = items[0].limit_bytes
    useful = [it for it in items if mu.get(it.d, 0.0) > 0 or nu.get((it.d, it.p), 0.0) > 0]
    if len(useful) < 2:
        return []
    a = np.array([it.static_bytes for it in useful], np.float64)
    b = np.array([max(1, it.kv_bytes) for it in useful], np.float64)
    top = np.array([it.max_k for it in useful], np.float64)
    m = np.array([mu.get(it.d, 0.0) / it.tp for it in useful])
    n = np.array([nu.get((it.d, it.p), 0.0) / it.tp for it in useful])
    dep = np.array([it.d for it in useful], np.int64)
    rooms = (np.arange(PAIR_ROOM_STEPS + 1, dtype=np.int64) * limit) // PAIR_ROOM_STEPS  # bytes, rounded down
    # per room: the best filler (value, item) and the best of another deployment than that one's
    best_v = np.full(len(rooms), -np.inf)
    best_i = np.full(len(rooms), -1, np.int64)
    second_v = np.full(len(rooms), -np.inf)
    second_i = np.full(len(rooms), -1, np.int64)
    for lo in range(0, len(useful), PAIR_CHUNK):
        sl = slice(lo, lo + PAIR_CHUNK)
        k = np.minimum(top[sl, None], np.floor((rooms[None, :] - a[sl, None]) / b[sl, None]))
        v = np.where(k >= 1, m[sl, None] * k + n[sl, None], -np.inf)
        for _ in range(2):  # each chunk's best and its best of another deployment
            i = v.argmax(axis=0)
            vi = v[i, np.arange(len(rooms))]
            gi = i + lo
            new_dep = dep[gi]
            same = (best_i >= 0) & (dep[np.maximum(best_i, 0)] == new_dep)
            better = vi > best_v
            # merge (vi, gi) into the running top two of distinct deployments
            second_v, second_i = (
                np.where(better & ~same, best_v, np.where(~better & ~same & (vi > second_v), vi, second_v)),
                np.where(better & ~same, best_i, np.where(~better & ~same & (vi > second_v), gi, second_i)))
            best_v, best_i = np.where(better, vi, best_v), np.where(better, gi, best_i)
            v[dep[sl][:, None] == new_dep[None, :]] = -np.inf  # next: the chunk's best of another deployment
    pairs: dict[int, tuple[float, list[tuple[int, int, int]]]] = {}
    for x, it in enumerate(useful):
        for k in {1, it.max_k}:
            left = limit - it.static_bytes - k * it.kv_bytes
            if left < 0:
                continue
            g = left * PAIR_ROOM_STEPS // limit  # rooms[g] <= left
            if best_i[g] >= 0 and dep[best_i[g]] != it.d:
                j, vj = best_i[g], best_v[g]
            else:  # the best filler for this room is another shard of the same deployment
                j, vj = second_i[g], second_v[g]
            if j < 0 or not np.isfinite(vj):
                continue
            value = m[x] * k + n[x] + vj
            if value > cost + EPS_USD_PER_HOUR and value > pairs.get(it.d, (-math.inf,))[0]:
                other = useful[j]
                kj = int(min(other.max_k, (int(rooms[g]) - other.static_bytes) // int(b[j])))  # as in the table
                pairs[it.d] = (value, [(it.d, it.p, k), (other.d, other.p, kj)])
    return [members for _, members in pairs.values()]


def memory_price_bound(demands: list[Demand], gpu_price: dict[tuple[str, int], float],
                       items: dict[str, list[_Item]], whole_replicas: bool = True, whole_gpus: bool = False) -> float:
    """A bound that needs no LP: a replica of option p holding k <= M sequences fills tp GPUs to (a + k b) / L each,
    and a GPU costs at least gpu_price, so the replica costs at least sigma_p + beta_p k (sigma_p = gpu_price x tp x
    a / L, beta_p = gpu_price x tp x b / L), and every plan at least the sum over deployments of the cheapest whole
    replicas that hold the concurrency (`_cheapest_replicas`), and at least min_replicas one-sequence replicas.
    Whole replicas matter: 50 sequences on 40-sequence replicas pay two copies of the weights, where a price per
    sequence would charge 1.25 (on the benchmark fleets this raises the bound 0.5-1.3%). Without `whole_replicas`,
    the price per sequence: concurrency x min over options of (sigma_p / M_p + beta_p). With `whole_gpus` (no
    co-location: a replica's GPUs hold nothing else) a replica costs its whole GPUs, sigma_p = gpu_price x tp and
    beta_p = 0, and the bound is each deployment's cheapest replica set, exact but for housing blocks in
    instances."""
    options: dict[int, list[tuple[int, float, float]]] = defaultdict(list)  # d -> (M, sigma, beta)
    replica_price: dict[int, dict[int, float]] = defaultdict(dict)  # throughput-sized: d -> {p: its whole GPUs}
    for g, its in items.items():
        for it in its:
            if it.exclusive:
                replica_price[it.d][it.p] = gpu_price[g, it.tp] * it.tp
                continue
            if whole_gpus:
                options[it.d].append((it.max_k, gpu_price[g, it.tp] * it.tp, 0.0))
                continue
            price = gpu_price[g, it.tp] * it.tp / it.limit_bytes
            options[it.d].append((it.max_k, price * it.static_bytes, price * it.kv_bytes))
    total = 0.0
    for d in demands:
        if d.mode == "throughput":  # each bucket on one option, taking its load's share of a replica's GPUs
            price = replica_price[d.index]
            loads = _bucket_loads(d, sorted(price))
            total += max(d.min_replicas * min(price.values()),
                         sum(min((need / LOAD_UNITS * price[p] for p, need in by_p.items()), default=0.0)
                             for by_p in loads.values()))
            continue
        m, sigma, beta = (np.array(x) for x in zip(*options[d.index]))
        held = (_cheapest_replicas(d.concurrency, m, sigma, beta) if whole_replicas
                else d.concurrency * float((sigma / m + beta).min()))
        total += max(held, d.min_replicas * float((sigma + beta).min()))
    return total


def _cheapest_replicas(concurrency: int, max_k: np.ndarray, sigma: np.ndarray, beta: np.ndarray) -> float:
    """The least sum of sigma_p + beta_p k over replicas (option p, 1 <= k <= M_p sequences) holding `concurrency`
    sequences. Some cheapest set has at most one replica below its M (two partial ones: move sequences to the one
    with the lower beta until it is full or the other empty, which costs no more), so: full replicas by dynamic
    programming over the sequences they cover, plus one partial replica."""
    full = sigma + beta * max_k
    cover = np.zeros(concurrency + 1)  # cover[c]: cheapest full replicas holding at least c sequences
    for c in range(1, concurrency + 1):
        cover[c] = (cover[np.maximum(0, c - max_k)] + full).min()
    best = cover[concurrency]
    for rest in range(1, concurrency + 1):  # the partial replica holds the last `rest` sequences
        fits = max_k >= rest
        if fits.any():
            best = min(best, cover[concurrency - rest] + float((sigma + beta * rest)[fits].min()))
    return float(best)


def _dominated(classes, gpu_price: dict[tuple[str, int], float],
               exclusive: set[int] = frozenset()) -> dict[int, int]:
    """Pricing classes that never need pricing: b -> a when every pattern of b is also a pattern of a and a's GPUs
    cost no more, so no pattern of b prices out unless one of a does, and a's pattern value bounds b's.

    b's pattern is one of a's when each of its shards has a counterpart on a (same deployment and TP degree) with
    no more bytes per sequence, at least as many sequences, and static bytes that exceed b's by so little that
    even the most shards a b GPU can hold fit in what a's larger memory adds. (The counterpart is worth at least
    as much under any duals: a rounding cut's coefficient never falls as an option's M grows.) Classes are compared
    within their TP degree and kind, cheapest first, and only against classes kept, so every b maps to a priced
    class. Classes without a constant price (GPU types with owned units or a quota: not in `gpu_price`) take no
    part: their price moves with the duals; nor do `exclusive` classes (throughput-sized replicas, worth their
    option's load dual, which differs from option to option)."""
    order = sorted((c for c in range(len(classes)) if (classes[c][0], classes[c][1]) in gpu_price
                    and c not in exclusive),
                   key=lambda c: (classes[c][1], classes[c][2], gpu_price[classes[c][0], classes[c][1]],
                                  classes[c][0]))
    kept: list[int] = []
    out: dict[int, int] = {}
    for b in order:
        gb, t, uniform, pool_b = classes[b]
        for a in kept:
            ga, ta, ua, pool_a = classes[a]
            if (ta, ua) != (t, uniform) or gpu_price[ga, t] > gpu_price[gb, t]:
                continue
            limit_a, limit_b = pool_a[0].limit_bytes, pool_b[0].limit_bytes
            if limit_a < limit_b:
                continue
            twin = {(it.d, it.tp): it for it in pool_a}
            most_shards = limit_b // min(it.static_bytes + it.kv_bytes for it in pool_b)
            extra, ok = 0, True
            for it in pool_b:
                other = twin.get((it.d, it.tp))
                if other is None or other.kv_bytes > it.kv_bytes or other.max_k < it.max_k:
                    ok = False
                    break
                extra = max(extra, other.static_bytes - it.static_bytes)
            if ok and most_shards * extra <= limit_a - limit_b:
                out[b] = a
                break
        else:
            kept.append(b)
    return out


def _mix(center, raw, weight: float):
    """weight x center + (1 - weight) x raw, row by row (a row missing from one side counts as 0 there)."""
    return tuple({k: weight * a.get(k, 0.0) + (1 - weight) * b.get(k, 0.0) for k in a.keys() | b.keys()}
                 for a, b in zip(center, raw))


def _scaled(raw, scale: dict[int, float], other: dict[int, float]):
    """Row duals `raw` (raw_duals' tuple) with deployment d's coverage row multiplied by scale[d] and its other rows
    by other[d]; the supply rows, which belong to no deployment, as they are."""
    mu, rep, pi, supply, load = raw
    return ({d: v * scale[d] for d, v in mu.items()}, {d: v * other[d] for d, v in rep.items()},
            {key: v * other[key[0]] for key, v in pi.items()}, supply,
            {key: v * other[key[0]] for key, v in load.items()})


@dataclass
class _Search:
    """`_Generator.enrich`'s search in one uniform class: the exclusion sets to try at the next level."""

    gpu: str
    cost: float  # the class's price per GPU, USD/h
    items: list[_Item]
    pool: _Pool | None = None
    frontier: list[frozenset[int]] = field(default_factory=lambda: [frozenset()])
    seen: set[frozenset[int]] = field(default_factory=set)


def _pattern(g: str, members) -> Pattern:
    return g, tuple(sorted(members))


class _Generator:
    """The master LP with everything pricing needs: items, their sequence steps, the pricing classes."""

    def __init__(self, demands: list[Demand], offers: list[Offer], slot_bounds: dict[str, int],
                 incumbent: Plan | None, colocate: bool = True):
        self.demands = demands
        # Without co-location every GPU holds one shard: a pattern is one shard, and the fullest (k = M) is worth
        # the most at the same price, so every such pattern is a column from the start and pricing is exact.
        self.single = not colocate
        # ... as every throughput-sized replica's: with only those two kinds, the integer master over every
        # column is the exact model, and SCIP's bound there bounds every plan.
        self.complete = self.single or all(d.mode == "throughput" for d in demands)
        self.items = items = _items(demands, offers)
        self.by_key = by_key = {(it.d, it.p): it for its in items.values() for it in its}
        self.master = master = _Master(demands, offers, items, slot_bounds)
        self.floor_price = _floor_prices(items, offers)
        # Start: each deployment's SEED_OPTIONS cheapest options alone (by price per sequence), full replicas and
        # the replica that holds the rest, so the integer master is feasible from the first iteration; and, if
        # none of those is on a GPU type without a quota, the cheapest that is (quotas may not hold them all).
        by_d: dict[int, list[_Item]] = defaultdict(list)
        for its in items.values():
            for it in its:
                by_d[it.d].append(it)
        unlimited = {o.gpu for o in offers if o.max_instances is None}
        for it in by_key.values():  # a throughput-sized replica owns its GPUs: every such pattern, from the start
            if it.exclusive:
                master.add(_pattern(it.gpu, [(it.d, it.p, LOAD_UNITS)]))
        for d in demands:
            if d.mode == "throughput":
                continue
            ranked = sorted(by_d[d.index], key=lambda it: (self.floor_price[it.gpu, it.tp] * it.tp / it.max_k, it.tp,
                                                            it.gpu))
            seeds = ranked[:SEED_OPTIONS]
            if not any(it.gpu in unlimited for it in seeds):
                seeds += [it for it in ranked if it.gpu in unlimited][:1]
            for it in seeds:
                for k in {it.max_k, max(1, d.concurrency % it.max_k),
                          max(1, -(-d.concurrency // max(1, d.min_replicas)))}:
                    ms = _repair([(it.d, it.p, min(k, it.max_k))], by_key, it.limit_bytes)
                    if ms:
                        master.add(_pattern(it.gpu, ms))
        if self.single:
            for it in by_key.values():
                master.add(_pattern(it.gpu, [(it.d, it.p, it.max_k)]))
        if incumbent is not None:  # and every GPU's content in the incumbent plan
            content: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
            for r in incumbent.replicas:
                for j in range(r.first_gpu, r.first_gpu + demands[r.deployment].options[r.option].tp):
                    content[r.instance, j].append((r.deployment, r.option, r.seqs))
            for members in content.values():
                g = demands[members[0][0]].options[members[0][1]].gpu
                if all(key[:2] in by_key for key in members):
                    master.add(_pattern(g, [(d, p, LOAD_UNITS if by_key[d, p].exclusive else k)
                                            for d, p, k in members]))
        incumbent_usd_per_hour = incumbent.cost_usd_per_hour({o.id: o for o in offers}) if incumbent else None
        self.gpus_cap = {}  # U_g: GPUs of type g a plan no dearer than the incumbent can pay for (owned ones too)
        for g in items:
            offs = [o for o in offers if o.gpu == g]
            total = sum(o.gpu_count * slot_bounds[o.id] for o in offs)
            rentable = [o for o in offs if o.max_instances is None or o.max_instances > o.owned]
            rented = [o.price_usd_per_hour / o.gpu_count for o in rentable if o.price_usd_per_hour > 0]
            if incumbent_usd_per_hour is not None:  # owned and free (quota'd) GPUs, and what the rest can buy
                free = sum(o.gpu_count * o.owned for o in offs) + sum(
                    o.gpu_count * (o.max_instances - o.owned) for o in rentable if o.price_usd_per_hour <= 0)
                total = min(total, free + (math.floor(incumbent_usd_per_hour / min(rented) + 1e-9) if rented
                                           else 0))
            self.gpus_cap[g] = total
        self.classes = []  # (gpu, tp, uniform, items)
        self.exclusive: set[int] = set()  # classes of throughput-sized replicas, which own their GPUs
        for g, everything in items.items():
            its = [it for it in everything if not it.exclusive]
            tps = sorted({it.tp for it in its})
            for t in tps:
                self.classes.append((g, t, True, [it for it in its if it.tp == t]))
            for t in tps[1:] if colocate else []:  # one shard per GPU: every pattern is uniform
                self.classes.append((g, t, False, [it for it in its if it.tp <= t]))
            for t in sorted({it.tp for it in everything if it.exclusive}):
                self.exclusive.add(len(self.classes))
                self.classes.append((g, t, True, [it for it in everything if it.exclusive and it.tp == t]))
        self.dominated = _dominated(self.classes, master.gpu_price, self.exclusive)
        self.columns_per_class = min(COLUMNS_PER_CLASS_MAX, max(COLUMNS_PER_CLASS_MIN, len(demands) // 10))
        self.kept = [c for c in range(len(self.classes)) if c not in self.dominated]
        self.last_duals: tuple[dict, dict, dict] = ({}, {}, {})  # column generation's last (mu, nu, prices)
        self.integer_bounds: list[float] = []  # SCIP's proven bounds over every column (when `complete`)
        self.threads = 1  # pricing threads (`_each`); `run` sets them
        self.max_k: dict[int, dict[int, int]] = defaultdict(dict)
        for (d, p), it in by_key.items():
            self.max_k[d][p] = it.max_k
        self.steps = _step_tables(list({(it.d, it.p): it for c in self.kept for it in self.classes[c][3]}.values()))

    def raw_duals(self) -> tuple[dict, dict, dict, dict, dict]:
        """The LP's row duals with the signs the Lagrangian needs (GLOP's may stray by its tolerance): coverage
        mu_d >= 0, replicas y_d (>= 0 unless a maximum binds), cuts pi_di >= 0, supply rows pi_gt >= 0, load rows
        eta_dp >= 0 and whole-replica rows kappa_dbp >= 0 (both in `load`, keyed (d, p) and (d, b, p)). The bucket
        rows' duals are not needed: `duals` keeps those rows in the Lagrangian's subproblem."""
        mu = {d: max(0.0, row.dual_value()) for d, row in self.master.cov.items()}
        rep = {}
        for d in self.demands:
            y = self.master.rep[d.index].dual_value()
            rep[d.index] = y if y >= 0 or d.max_replicas is not None else 0.0
        pi = {(d, i): max(0.0, row.dual_value()) for d, cuts in self.master.cuts.items()
              for i, (row, _, _) in enumerate(cuts)}
        supply = {key: max(0.0, row.dual_value()) for key, row in self.master.supply_rows.items()}
        load = {key: max(0.0, row.dual_value()) for key, row in self.master.load.items()}
        load.update({key: max(0.0, row.dual_value()) for key, row in self.master.whole.items()})
        return mu, rep, pi, supply, load

    def duals(self, raw=None) -> tuple[dict[int, float], dict[tuple[int, int], float], float,
                                       dict[tuple[str, int], float]]:
        """(mu, nu, duals . rhs, prices) for row duals `raw` (the LP's by default): nu[d, p] is what one replica
        of option p is worth, cuts included; prices[g, t] what a GPU of pricing class (g, t) costs: gpu_price, or
        on a capped GPU type the supply rows' duals up to t. The bound and the pricing both use these, so the
        bound is valid for any `raw` with the signs of raw_duals.

        A throughput-sized replica of option p is worth LOAD_UNITS x eta_dp + sum_b kappa_dbp more; its
        deployment's buckets, whose rows (one option each) stay constraints of the Lagrangian's subproblem, add
        sum_b min_p (load_bp eta_dp + ceil(load_bp / LOAD_UNITS) kappa_dbp)."""
        raw = raw if raw is not None else self.raw_duals()
        mu, rep, pi, supply, load = raw
        value = sum(self.parts(raw).values())
        nu = {(d, p): rep[d] for d, p in self.by_key}
        for d, loads in self.master.bucket_loads.items():
            for b, by_p in loads.items():
                for p in by_p:
                    nu[d, p] += load.get((d, b, p), 0.0)
            for p in {p for by_p in loads.values() for p in by_p}:
                nu[d, p] += LOAD_UNITS * load.get((d, p), 0.0)
        for d, cuts in self.master.cuts.items():
            for i, (_, alpha, _) in enumerate(cuts):
                weight = pi.get((d, i), 0.0)
                for p, a in alpha.items():
                    nu[d, p] += weight * a
        prices = {}
        for g, t, _, _ in self.classes:
            if g in self.master.capped:
                prices[g, t] = sum(supply.get((g, s), 0.0) for s in self.master.sizes[g] if s <= t)
            else:
                prices[g, t] = self.master.gpu_price[g, t]
        return mu, nu, value, prices

    def parts(self, raw) -> dict[int, float]:
        """Each deployment's share of duals . rhs at row duals `raw` (raw_duals' signs): its coverage and replica
        rows, its buckets (the Lagrangian's subproblem, see `duals`) and its rounding cuts. Every row of the right-hand
        side belongs to one deployment (the supply rows' is 0), so these sum to the whole."""
        mu, rep, pi, _, load = raw
        parts = {d.index: mu.get(d.index, 0.0) * d.concurrency
                 + rep[d.index] * (d.min_replicas if rep[d.index] >= 0 else d.max_replicas) for d in self.demands}
        for d, loads in self.master.bucket_loads.items():
            for b, by_p in loads.items():
                parts[d] += min((need * load.get((d, p), 0.0) + math.ceil(need / LOAD_UNITS) * load.get((d, b, p), 0.0)
                                 for p, need in by_p.items()), default=0.0)
        for d, cuts in self.master.cuts.items():
            for i, (_, _, rhs) in enumerate(cuts):
                parts[d] += pi.get((d, i), 0.0) * rhs
        return parts

    def bound(self, dual_value: float, values: dict[int, float], prices: dict[tuple[str, int], float]) -> float:
        """A lower bound on every plan from duals whose dot product with the rows' right-hand sides is
        `dual_value`, `values[c]` bounding the value of class c's patterns (every class), `prices` the classes'
        prices. The best of: the Lagrangian, duals . rhs - sum_g U_g max(0, value - price) over GPU types g, and
        Farley's, duals . rhs / theta with theta = max(1, value / price) over the classes of constant price (the
        Lagrangian at the duals scaled by 1 / theta, where none of those is worth more than it costs). Capped GPU
        types (priced by the supply rows' duals pi) add each supply variable's term, min(0, its price - the pi it
        meets) x the GPUs a plan may take there; in Farley's bound either with pi scaled too or with pi as is
        (then their classes' values are scaled, their prices not). Valid at any duals with the right signs."""
        capped = self.master.capped
        worst: dict[str, float] = defaultdict(float)  # per GPU type: the largest value - price
        scaled: dict[str, float] = defaultdict(float)  # per capped type: the largest value / theta - price
        theta = max([1.0] + [v / prices[self.classes[c][:2]] for c, v in values.items()
                             if self.classes[c][0] not in capped])
        for c, v in values.items():
            g, t = self.classes[c][:2]
            worst[g] = max(worst[g], v - prices[g, t])
            if g in capped:
                scaled[g] = max(scaled[g], v / theta - prices[g, t])

        def supply(scale: float) -> float:
            return sum(min(0.0, c - scale * prices[g, t]) * cap if t else 0.0 for g, t, c, cap in self.master.supply)

        def loss(excess: dict[str, float]) -> float:
            return sum(self.gpus_cap[g] * max(0.0, v) for g, v in excess.items())

        lost = loss({g: v for g, v in worst.items() if g in capped})
        return max(dual_value - loss(worst) + supply(1.0), (dual_value - lost) / theta + supply(1.0 / theta),
                   dual_value / theta - loss(scaled) + supply(1.0))

    def price(self, which, mu, nu, prices, coarse: bool) -> tuple[int, dict[int, float], set[int]]:
        """Price classes `which` at `prices`; add improving columns. Returns (columns added, every class's value
        bound, a dominated class's its dominator's, when `which` holds them all; classes that found a column).
        Classes are priced on `self.threads` threads (the compiled knapsack releases the GIL) and their columns
        added in class order, so the columns do not depend on the threads."""
        added, found, values = 0, set(), {}
        columns = partial(self._class_columns, mu=mu, nu=nu, prices=prices, coarse=coarse)
        for c, (value, hit, patterns) in zip(which, self._each(columns, which)):
            values[c] = value
            if hit:
                found.add(c)
            added += sum(self.master.add(pattern) for pattern in patterns)
        for b, a in self.dominated.items():  # every pattern of b is one of a, at no lower price
            if a in values:
                values[b] = values[a]
        return added, values, found

    def _class_columns(self, c: int, mu, nu, prices, coarse: bool) -> tuple[float, bool, list[Pattern]]:
        """Class c at the duals: (its value bound, whether a pattern prices out, improving patterns: the most
        valuable, then the best without its deployments, and so on, up to columns_per_class). Reads the generator
        only."""
        g, t, _, pool = self.classes[c]
        cost = prices[g, t]
        if self.single or c in self.exclusive:  # every pattern is a column already: exact value, nothing to add
            return _single_value(pool, mu, nu), False, []
        value, members, per_item, order, priced = _price(pool, self.steps, mu, nu, cost, coarse)
        hit = bool(members)
        patterns: list[Pattern] = []
        taken: set[int] = set()
        # further columns price coarsely: on the pool _price built when it did, else on one of their own
        further = (priced if coarse else _Pool(per_item, self.steps, mu, nu, True)) if members else None
        for _ in range(self.columns_per_class):  # then the best pattern without those deployments, and so on
            if not members:
                break
            ms = _repair(members, self.by_key, pool[0].limit_bytes, mu)
            if ms:
                patterns.append(_pattern(g, ms))
            taken |= {d for d, _, _ in members}
            rest = further.densest(order, taken)  # ranked once per class: the duals have not changed
            if not rest:
                break
            more, members = further.solve(rest)
            if more <= cost + EPS_USD_PER_HOUR:
                break
        return value, hit, patterns

    def _each(self, f, classes) -> list:
        """[f(c) for c in classes], on up to `self.threads` threads."""
        if self.threads <= 1 or len(classes) <= 1:
            return [f(c) for c in classes]
        with ThreadPoolExecutor(min(self.threads, len(classes))) as pool:
            return list(pool.map(f, classes))

    def run(self, deadline: float, say, certify_s: float, threads: int, seed: int,
            smoothing: float = 0.0, repair_s: float = 0.0, end: float = math.inf) -> tuple[float, float | None, bool]:
        """Column generation until no pattern prices out or `deadline`, then, unless it converged, `repair` of the
        duals it would certify for up to `repair_s` (and so that its certifications end by `end`, however late
        column generation's last round ended), then `certify` (for up to `certify_s`, if any) both, or only the
        repaired ones when the others are far behind (CERTIFY_BOTH_WITHIN):
        (best bound, LP value, converged: no pattern prices out even with weights rounded down, so the LP value is
        the LP optimum). Partial rounds price (coarsely) only the classes that found columns last
        time; a full round, exact over every class, comes when a partial round finds nothing or every
        FULL_ROUND_EVERY rounds, and only full rounds give a bound. With `smoothing` (Wentges), pricing uses
        smoothing x the duals of the best bound so far + (1 - smoothing) x the LP's, and the LP's own when that
        finds no column; every bound is valid at any duals, so each round's bound is taken where it priced."""
        master = self.master
        self.threads = _cores(threads)
        everything = self.kept
        active = set(everything)
        # The floor only when a bound is wanted: groups of a large fleet (certify_s = 0) discard theirs.
        best = (memory_price_bound(self.demands, self.floor_price, self.items, whole_gpus=self.single)
                if certify_s > 0 else 0.0)
        lp_value, it_no, since_full, full = None, 0, 0, False  # the first columns are far off: price coarsely
        center, center_bound = None, -math.inf  # the row duals with the best bound so far (stabilisation)
        while True:
            it_no += 1
            if not master.solve():
                return best, None, False
            if self.separate():
                continue
            lp_value = master.lp.Objective().Value()
            self.lp_values = master.values  # a new list at every solve
            raw = self.raw_duals()
            mu, nu, dual_value, prices = self.duals(raw)
            self.last_duals = mu, nu, prices
            which = everything if full else sorted(active)
            # With smoothing, price first at a point between the center and the LP's duals, then at the LP's own
            # if that finds no column (a mis-price).
            points = [_mix(center, raw, smoothing), raw] if center is not None and smoothing > 0 else [raw]
            for point in points:
                pmu, pnu, pvalue, pprices = (mu, nu, dual_value, prices) if point is raw else self.duals(point)
                added, values, found = self.price(which, pmu, pnu, pprices, coarse=not full)
                if full:
                    bound = self.bound(pvalue, values, pprices)
                    best = max(best, bound)
                    if bound > center_bound:
                        center, center_bound = point, bound
                if added:
                    break
            # Mixed-TP classes (the largest pools) wait for full rounds; their columns matter only near the optimum.
            active = {c for c in found if self.classes[c][2]}
            if full:
                since_full = 0
            else:
                since_full += 1
            say(f"patterns: iteration {it_no}{'' if full else ' (partial)'}, LP ${lp_value:.2f}/h, "
                f"bound ${max(best, 0):.2f}/h, {len(master.columns)} columns")
            # Stalled: a full round adds nothing. Converged only if no pattern priced out at all: a pattern the
            # rounded-down knapsack overfills can be repaired into one the master has, while exact pricing still
            # finds patterns worth more than their GPU (100 deployments: up to 1% at the stall).
            stalled = added == 0 and full
            converged = stalled and not found
            if stalled or time.perf_counter() > deadline:
                if certify_s > 0:  # groups of a large fleet skip it: their bounds are not the fleet's
                    if not stalled and center is not None:  # out of time: the duals with the best bound
                        mu, nu, dual_value, prices = self.duals(center)
                    candidates = [(mu, nu, dual_value, prices)]
                    if repair_s > 0 and not converged:
                        # The repaired duals' certification comes out of the repair's time, unless the others' is
                        # not worth its own: their bound far under what is proven already (the floor, at 2,000).
                        if center_bound < (1 - CERTIFY_BOTH_WITHIN) * best:
                            candidates, repair_s = [], repair_s + certify_s
                        # the duals certified without repair: the LP's at a stall, else the best bound's (500
                        # deployments: repaired to $430.03/h, the LP's last to $429.49-429.76/h in three runs)
                        until = min(time.perf_counter() + max(0.0, repair_s - certify_s),
                                    end - certify_s * (len(candidates) + 1))
                        repaired, values = self.repair(raw if stalled or center is None else center, until)
                        repaired = self.duals(repaired)
                        quick = self.bound(repaired[2], values, repaired[3])
                        say(f"patterns: the LP's duals repaired (LP ${repaired[2]:.2f}/h), bound ${quick:.2f}/h")
                        best = max(best, quick)
                        if center_bound < (1 - CERTIFY_BOTH_WITHIN) * quick:  # the others far behind
                            candidates = []
                        candidates.append(repaired)
                    # Both, unless the LP's are far behind: exact pricing can certify the duals as they are higher
                    # than the repaired ones, whose repair counted patterns the rounded-down knapsack overfills (20
                    # deployments: $19.71/h against $19.66/h).
                    for duals in candidates:
                        best = max(best, self.certify(*duals, time.perf_counter() + certify_s, threads, seed, end))
                state = "converged" if converged else "stalled" if stalled else "stopped"
                say(f"patterns: {state}, bound ${best:.2f}/h")
                return best, lp_value, converged
            full = added == 0 or not active or since_full >= FULL_ROUND_EVERY

    def repair(self, raw, deadline: float):
        """Dual repair: the best per-deployment scaling of row duals `raw` that no known pattern prices out at.

        An unconverged column generation's duals overvalue some deployments: patterns of them are worth more than
        their GPU, and Farley's bound divides *every* dual by the worst such ratio (500 deployments: 11%). Scaling
        deployment d's rows by s_d in [0, 1] keeps the duals' signs, and a pattern's value is linear in the s of
        its members: sum_d v_dP s_d, v_dP its shard's value at `raw`. (With REPAIR_SPLIT, d's coverage row, worth
        mu_d per sequence, and its other rows, worth nu_dp per replica, have a factor each; below, s_d stands for
        the pair.) So this is a small LP, solved by cutting
        planes: maximise sum_d s_d (d's share of duals . rhs) subject to sum_d v_dP s_d <= price for the patterns
        pricing finds worth more than their price at the current s (the most valuable per class, disjoint ones
        after it, the best without each member of the first, and each deployment's best pair of shards: on 2,000
        deployments, pairs of big shards are most of what is left, and cutting a few dozen of them per round left
        1,446 deployments of one class in pairs still priced out after 55 rounds), until a round over every class
        finds none or `deadline`. Uniform scaling (Farley) is one feasible point, so at convergence this is at
        least as good. Capped GPU types are left to the Lagrangian's charge (a quota'd type may be priced at 0).

        Returns (scaled row duals, every class's value bound at them): the values come from the last round, which
        priced every class (the first always does, whatever the time); with them `bound` is valid whatever the
        scaling (and so is `certify`)."""
        from ortools.linear_solver import pywraplp

        parts = self.parts(raw)
        mu0, nu0, _, _ = self.duals(raw)
        lp = pywraplp.Solver.CreateSolver("GLOP")
        s = {d: lp.NumVar(0.0, 1.0, "") for d in parts}  # d's coverage row
        o = {d: lp.NumVar(0.0, 1.0, "") for d in parts} if REPAIR_SPLIT else s  # its other rows
        per_seq = {d.index: raw[0].get(d.index, 0.0) * d.concurrency for d in self.demands}
        for d, v in parts.items():
            lp.Objective().SetCoefficient(s[d], per_seq[d])
            lp.Objective().SetCoefficient(o[d], lp.Objective().GetCoefficient(o[d]) + v - per_seq[d])
        lp.Objective().SetMaximization()

        def row(members, cost: float) -> None:
            r = lp.Constraint(-lp.infinity(), cost)
            for d, p, k in members:
                tp = self.by_key[d, p].tp
                r.SetCoefficient(s[d], r.GetCoefficient(s[d]) + mu0.get(d, 0.0) * k / tp)
                r.SetCoefficient(o[d], r.GetCoefficient(o[d]) + nu0.get((d, p), 0.0) / tp)

        scale = dict.fromkeys(parts, 1.0)
        other = dict.fromkeys(parts, 1.0)
        free = {c for c in self.kept if self.classes[c][0] not in self.master.capped}
        which, everything, values = self.kept, True, {}  # first every class; then those that priced out
        full_s = 0.0  # how long pricing every class took: the last such round must end by `deadline`
        while True:
            started = time.perf_counter()
            mu, nu, _, prices = self.duals(_scaled(raw, scale, other))
            cutting = started + full_s < deadline  # else only every class's value at the scaling reached
            if not cutting and not everything:
                which, everything = self.kept, True
                continue
            found, round_values = set(), {}
            check = partial(self._violations, mu=mu, nu=nu, prices=prices, cut=free if cutting else set())
            for c, (value, priced_out, rows) in zip(which, self._each(check, which)):
                round_values[c] = value
                if priced_out:
                    found.add(c)
                for members, cost in rows:
                    row(members, cost)
            if everything:
                values = {b: round_values[self.dominated.get(b, b)] for b in range(len(self.classes))}
                full_s = time.perf_counter() - started
            if not found:
                if everything:
                    break
                which, everything = self.kept, True  # what priced out is repaired: check every class
                continue
            which, everything = sorted(found), False
            if lp.Solve() != pywraplp.Solver.OPTIMAL:  # (not seen) keep the scaling reached, value it, and stop
                deadline = -math.inf
                continue
            scale = {d: min(1.0, max(0.0, var.solution_value())) for d, var in s.items()}
            other = {d: min(1.0, max(0.0, var.solution_value())) for d, var in o.items()}
        return _scaled(raw, scale, other), values

    def _violations(self, c: int, mu, nu, prices, cut: set[int]) -> tuple[float, bool, list]:
        """Class c at duals (mu, nu) and `prices`: (its value bound, whether it prices out and rows were found, the
        rows: (members, cost) of every pattern the repair cuts with, when c is in `cut`). One-shard classes: each
        shard worth more than its GPU; others the most valuable pattern, each deployment's best two-shard pattern
        worth more than its GPU (`_pairs_priced_out`), the best without each of its members
        (among the REPAIR_NEAR x CANDIDATES densest deployments), and disjoint ones, CANDIDATES deployments at a
        time, densest first, until the deployments run out. Reads the generator only."""
        pool = self.classes[c][3]
        cost, cutting = prices[self.classes[c][:2]], c in cut
        if self.single or c in self.exclusive:
            rows = [([(it.d, it.p, it.max_k)], cost) for it in (pool if cutting else ())  # one shard, at its most
                    if _single_value([it], mu, nu) > cost + EPS_USD_PER_HOUR]
            return _single_value(pool, mu, nu), bool(rows), rows
        value, members, _, order, items = _price(pool, self.steps, mu, nu, cost)
        if members is None or not cutting:
            return value, False, []
        rows = [(members, cost)]
        rows += [(pair, cost) for pair in _pairs_priced_out(pool, mu, nu, cost)]
        near = order[:REPAIR_NEAR * CANDIDATES]
        for d in {d for d, _, _ in members}:
            more, others = items.solve([e for e in near if e != d])
            if more > cost + EPS_USD_PER_HOUR and others:
                rows.append((others, cost))
        taken, window, i = {d for d, _, _ in members}, [], 0
        while True:
            while len(window) < CANDIDATES and i < len(order):
                if order[i] not in taken:
                    window.append(order[i])
                i += 1
            if not window:
                return value, True, rows
            more, others = items.solve(window)
            if more > cost + EPS_USD_PER_HOUR and others:
                rows.append((others, cost))
                used = {d for d, _, _ in others}
                taken |= used
                window = [d for d in window if d not in used]
            else:  # none among these: the next ones
                taken.update(window)
                window = []

    def enrich(self, deadline: float) -> set[Pattern]:
        """Near-optimal uniform columns at column generation's last duals, for the integer master to combine: in
        every kept uniform class, the most valuable pattern, then the most valuable without each of its
        deployments, and so on ENRICH_DEPTH exclusions deep, each worth at least ENRICH_MIN_VALUE of its GPU's
        price. The LP's own columns fit fractional plans; integer plans need their near neighbours (20
        deployments, four exclusions deep: 193 such columns in 0.1 s, and the integer master over them proves
        $21.07/h where it found $21.51/h without; seven deep: the $20.58/h plan). Every class is searched one
        level at a time, so a deadline leaves them all at the same depth (class by class, at 100 deployments the
        first classes took the time). Returns the columns, added to the master."""
        mu, nu, prices = self.last_duals
        out: set[Pattern] = set()
        searches = [_Search(g, prices[g, t], items)  # one per uniform class
                    for c in (self.kept if not self.single else [])  # one shard per GPU: every pattern a column
                    for g, t, uniform, items in [self.classes[c]] if uniform and c not in self.exclusive]
        # Level by level over every class, so that a deadline leaves every class searched to the same depth.
        for _ in range(ENRICH_DEPTH):
            for search in searches:
                if search.pool is None:  # built when first reached: a deadline may come first
                    search.pool = _Pool(search.items, self.steps, mu, nu, False)
                deeper = []
                for excluded in search.frontier:
                    if time.perf_counter() > deadline:
                        return out
                    value, members = search.pool.solve([d for d in search.pool.deployments if d not in excluded])
                    if not members or value < ENRICH_MIN_VALUE * search.cost:
                        continue
                    ms = _repair(members, self.by_key, search.items[0].limit_bytes, mu)
                    if ms:
                        key = _pattern(search.gpu, ms)
                        self.master.add(key)
                        out.add(key)
                    for branch in (excluded | {d} for d, _, _ in members):
                        if branch not in search.seen:
                            search.seen.add(branch)
                            deeper.append(branch)
                search.frontier = deeper
        return out

    def promising(self, fraction: float) -> set[Pattern]:
        """Columns whose reduced cost under column generation's last duals is within `fraction` of their price:
        the ones an integer plan near the LP is made of."""
        mu, nu, prices = self.last_duals
        out = set()
        for key in self.master.columns:
            cost = prices[key[0], max(self.demands[d].options[p].tp for d, p, _ in key[1])]
            value = sum((mu.get(d, 0.0) * k + nu.get((d, p), 0.0)) / self.demands[d].options[p].tp
                        for d, p, k in key[1])
            if cost - value <= fraction * cost:
                out.add(key)
        return out

    def separate(self) -> int:
        """Add the most violated rounding cut (_mir_cut) of each deployment whose LP replicas break one; how many."""
        added = 0
        for d, by_option in self.master.replicas().items():
            if len(self.master.cuts[d]) >= MAX_CUTS_PER_DEPLOYMENT or d not in self.master.cov:
                continue  # (throughput-sized deployments hold load, not sequences)
            cut = _mir_cut(self.demands[d].concurrency, self.max_k[d], by_option)
            if cut is not None:
                self.master.cut(d, *cut)
                added += 1
        return added

    def certify(self, mu, nu, dual_value: float, prices, deadline: float, threads: int, seed: int,
                end: float = math.inf) -> float:
        """Farley's and the Lagrangian bound for duals (mu, nu, prices). Every class is bounded by _value_bound
        (past `end`, the pattern path's own deadline, by pricing's quick bound: that pass takes about 3 s at 2,000
        deployments, and the solve must end in its limit); then, while time lasts (`deadline`), by the exact
        pricing problem (_exact_value_bound): first the classes of capped GPU types still worth more than their
        price (each costs the bound U_g times that), most first; then the others, most valuable per price first,
        until no class left unrefined can raise max value / cost above what the refined ones reach."""
        capped = self.master.capped
        values = {}
        for c in self.kept:
            items = self.classes[c][3]
            if self.single or c in self.exclusive:
                values[c] = _single_value(items, mu, nu)
            elif time.perf_counter() < end:
                values[c] = _value_bound(items, mu, nu)
            else:  # out of time: pricing's quick fractional bound, looser but just as valid, in milliseconds
                values[c] = _rank(items, self.steps, mu, nu)[0]
        gain = {c: (0, prices[g, t] - values[c]) if g in capped else (1, -values[c] / prices[g, t])
                for c in self.kept for g, t in [self.classes[c][:2]]}
        refined = 1.0
        for c in sorted(self.kept, key=lambda c: gain[c]):
            if time.perf_counter() > deadline:
                break
            g, t, _, pool = self.classes[c]
            if self.single:  # exact already
                break
            if c in self.exclusive:
                continue
            if g in capped:
                if values[c] <= prices[g, t]:
                    continue
            elif values[c] / prices[g, t] <= refined:
                break
            budget = max(0.05, min(1.0, (deadline - time.perf_counter()) / 4))
            values[c] = min(values[c], _exact_value_bound(pool, mu, nu, prices[g, t], budget, threads, seed))
            if g not in capped:
                refined = max(refined, values[c] / prices[g, t])
        return self.bound(dual_value, {c: values[self.dominated.get(c, c)] for c in range(len(self.classes))},
                          prices)

    def uniform_only(self) -> None:
        """Leave only uniform columns (whole TP blocks) free in the master LP: what the dive and the completed
        floor round."""
        for key, var in self.master.columns.items():
            if _uniform_tp(self.demands, key[1]) is None:
                var.SetUb(0.0)

    def dive(self, deadline: float) -> dict[Pattern, int] | None:
        """Price-and-dive rounding over uniform patterns (whole TP blocks): round up the DIVE_ROUND_FRACTION of the
        block counts closest to their next integer (and any within 0.1 of it), price uniform classes for what is
        left, re-solve; until every count is integral. Past 60% of the time it stops pricing and rounds bigger
        batches, so it ends in time with a covering. A throughput-sized deployment's buckets are first each put
        wholly on the option holding most of it. Returns blocks per pattern (None only if the LP fails). Changes
        the master."""
        master, demands = self.master, self.demands
        uniform = [c for c in self.kept if self.classes[c][2]]
        start = time.perf_counter()
        soft = start + 0.6 * (deadline - start)
        tps: dict[Pattern, int | None] = {}
        self.uniform_only()
        while True:
            if not master.solve():
                return None
            now = time.perf_counter()
            if now < soft:
                mu, nu, _, prices = self.duals()
                if self.price(uniform, mu, nu, prices, coarse=True)[0]:  # new uniform columns are born free
                    continue
            # Buckets of throughput-sized deployments split between options: each goes wholly to the option
            # holding most of it (an integer plan serves a bucket from one option), then blocks are rounded.
            split = [max(zs.values(), key=lambda z: z.solution_value()) for zs in master.assign.values()
                     if max(z.solution_value() for z in zs.values()) < 1 - 1e-6]
            if split:
                for z in split:
                    z.SetLb(1.0)
                continue
            frac = []
            for key, value in zip(master.columns, master.values):
                if key not in tps:
                    tps[key] = _uniform_tp(demands, key[1])
                t = tps[key]
                if t is None:
                    continue
                blocks = value / t
                if blocks - math.floor(blocks + 1e-6) > 1e-6:
                    frac.append((blocks - math.floor(blocks), blocks, key, t))
            if not frac:
                return {key: round(value / tps[key]) for key, value in zip(master.columns, master.values)
                        if tps.get(key) is not None and value > 0.5}
            frac.sort(reverse=True)
            if now < soft:
                batch = max(1, int(len(frac) * DIVE_ROUND_FRACTION))
            else:
                batch = max(1, len(frac) // (4 if now < deadline else 1))
            for n, (part, blocks, key, t) in enumerate(frac):
                if part >= 0.9 or n < batch:
                    master.columns[key].SetLb(math.ceil(blocks) * t)


def _fleet(mip, offers: list[Offer], slot_bounds: dict[str, int], size: dict[tuple[str, int], list]) -> dict:
    """Instance counts per offer, (owned, rented) variables of `mip` (its objective their price; owned units first,
    rented only once every owned unit is in use, as in the exact model), whose GPUs hold every block: `size[g, t]`
    lists the GPUs in blocks of t GPUs of type g (expressions or numbers). An instance of G GPUs holds aligned
    blocks of t or more on its first (G // t) x t GPUs (all G when G is a power of two >= t). Power-of-two blocks
    packed largest first never fragment: each instance's used GPUs end on a multiple of every smaller block size,
    so the blocks of size t find exactly (G // t) x t less the larger blocks' GPUs; these rows are then enough.
    Returns {offer id: (owned, rented, all owned in use)}, the last two None where the offer has no owned units."""
    n = {}
    for o in offers:
        cap = slot_bounds[o.id]
        own = mip.IntVar(0, min(o.owned, cap), "") if o.owned else None
        rent = mip.IntVar(0, max(0, cap - o.owned), "")
        full = None
        if o.owned and cap > o.owned:
            full = mip.BoolVar("")
            mip.Add(own >= o.owned * full)
            mip.Add(rent <= (cap - o.owned) * full)
        n[o.id] = (own, rent, full)

    def gpus(o: Offer, t: int):  # GPUs of offer o that blocks of t GPUs or more can use
        own, rent, _ = n[o.id]
        return (o.gpu_count // t) * t * (rent if own is None else own + rent)

    for g in {g for g, _ in size}:
        sizes = sorted({t for gg, t in size if gg == g})
        for t in sizes:
            need = [x for tt in sizes if tt >= t for x in size[g, tt]]
            mip.Add(mip.Sum(need) <= mip.Sum([gpus(o, t) for o in offers if o.gpu == g and o.gpu_count >= t]))
    mip.Minimize(mip.Sum([o.price_usd_per_hour * n[o.id][1] for o in offers]
                         + [o.owned_price_usd_per_hour * n[o.id][0] for o in offers if o.owned]))
    return n


def _counts(n: dict, offers: list[Offer]) -> dict[str, tuple[int, int]]:
    """The (owned, rented) instance counts of a solved `_fleet`."""
    return {o.id: (0 if n[o.id][0] is None else round(n[o.id][0].solution_value()),
                   round(n[o.id][1].solution_value())) for o in offers}


def _hint_fleet(n: dict, offers: list[Offer], counts: dict[str, tuple[int, int]]) -> tuple[list, list]:
    """Hint variables and values for `_fleet` variables `n` at instance counts `counts`."""
    variables, values = [], []
    for o in offers:
        own, rent, full = n[o.id]
        variables.append(rent)
        values.append(float(counts[o.id][1]))
        if own is not None:
            variables.append(own)
            values.append(float(counts[o.id][0]))
        if full is not None:
            variables.append(full)
            values.append(float(counts[o.id][1] > 0 or counts[o.id][0] >= o.owned))
    return variables, values


def _scip(threads: int, seed: int, time_limit_s: float):
    from ortools.linear_solver import pywraplp

    mip = pywraplp.Solver.CreateSolver("SCIP")
    mip.SetNumThreads(max(1, threads))
    mip.SetSolverSpecificParametersAsString(f"randomization/randomseedshift = {seed}\n")
    mip.SetTimeLimit(int(1000 * max(SCIP_MIN_LIMIT_S, time_limit_s)))
    return mip


def _solved(mip) -> bool:
    from ortools.linear_solver import pywraplp

    return mip.Solve() in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE)


def integer_blocks(master: _Master, demands: list[Demand], offers: list[Offer], slot_bounds: dict[str, int],
                   policy: Policy, time_limit_s: float, threads: int, hint: dict[Pattern, int] | None,
                   hint_counts: dict[str, tuple[int, int]] | None = None, keep: set[Pattern] | None = None,
                   seed_shift: int = 0, bounds: list[float] | None = None):
    """Integer master over the uniform patterns (whole TP blocks; those in `keep`, if given): (blocks chosen as
    (gpu, members, tp, count), instance counts) or None. SCIP's proven bound is appended to `bounds`, if given.

    Solved by SCIP (bundled with OR-Tools) rather than CP-SAT: this is a set-covering program whose strength is
    its LP, and LP-based branch-and-cut finds and proves near-LP plans where CP-SAT's search does not (100
    deployments, same columns: SCIP $92.16/h in 2 s, CP-SAT $98.48/h after 60 s; docs/optimization.md)."""
    mip = _scip(threads, policy.seed + seed_shift, time_limit_s)
    beta = []
    cover: dict[int, list] = defaultdict(list)
    count: dict[int, list] = defaultdict(list)
    replicas: dict[tuple[int, int], list] = defaultdict(list)
    size: dict[tuple[str, int], list] = defaultdict(list)
    for g, members in master.columns:
        t = _uniform_tp(demands, members)
        if t is None:
            continue
        if keep is not None and (g, members) not in keep:
            continue
        b = mip.IntVar(0, mip.infinity(), "")
        beta.append((g, members, t, b))
        for d, p, k in members:
            cover[d].append(k * b)
            count[d].append(b)
            replicas[d, p].append(b)
        size[g, t].append(t * b)
    z = {}  # throughput-sized deployments: (d, bucket, option) -> that option serves the bucket
    for d in demands:
        mip.Add(mip.Sum(count[d.index]) >= d.min_replicas)
        if d.max_replicas is not None:
            mip.Add(mip.Sum(count[d.index]) <= d.max_replicas)
        if d.mode == "concurrency":
            mip.Add(mip.Sum(cover[d.index]) >= d.concurrency)
            continue
        held: dict[int, list] = defaultdict(list)
        for bucket, by_p in master.bucket_loads[d.index].items():
            for p, need in by_p.items():
                z[d.index, bucket, p] = mip.BoolVar("")
                held[p].append(need * z[d.index, bucket, p])
            mip.Add(mip.Sum([z[d.index, bucket, p] for p in by_p]) == 1)
        for p, needs in held.items():
            mip.Add(mip.Sum(needs) <= LOAD_UNITS * mip.Sum(replicas[d.index, p]))
    n = _fleet(mip, offers, slot_bounds, size)
    if hint:  # with the instance counts too, the hint is a complete solution SCIP need not complete by search
        variables = [b for *_, b in beta]
        values = [float(hint.get((g, members), 0)) for g, members, _, _ in beta]
        served = _assignments([(g, members, t, hint.get((g, members), 0)) for g, members, t, _ in beta],
                              demands, master.bucket_loads) if z else {}
        if served is not None:
            variables += list(z.values())
            values += [float(served.get((d, bucket)) == p) for d, bucket, p in z]
        if hint_counts:
            more, at = _hint_fleet(n, offers, hint_counts)
            variables += more
            values += at
        mip.SetHint(variables, values)
    solved = _solved(mip)
    if bounds is not None and math.isfinite(mip.Objective().BestBound()):
        bounds.append(mip.Objective().BestBound())
    if not solved:
        return None
    chosen = [(g, members, t, round(b.solution_value())) for g, members, t, b in beta if b.solution_value() > 0.5]
    return chosen, _counts(n, offers)


def _fleet_for(chosen, offers: list[Offer], slot_bounds: dict[str, int], policy: Policy, threads: int):
    """The cheapest instances that hold `chosen` blocks (gpu, members, tp, count): instance counts or None."""
    mip = _scip(threads, policy.seed, FLEET_SIZING_LIMIT_S)
    size: dict[tuple[str, int], list] = defaultdict(list)
    for g, _, t, count in chosen:
        size[g, t].append(t * count)
    n = _fleet(mip, offers, slot_bounds, size)
    return _counts(n, offers) if _solved(mip) else None


def _price_of(counts: dict[str, tuple[int, int]], offers: list[Offer]) -> float:
    """USD/h of instance counts (owned, rented) per offer id."""
    by_id = {o.id: o for o in offers}
    return sum(by_id[oid].owned_price_usd_per_hour * own + by_id[oid].price_usd_per_hour * rent
               for oid, (own, rent) in counts.items())


def _assignments(chosen, demands: list[Demand], bucket_loads: dict[int, dict[int, dict[int, int]]],
                 max_nodes: int = 100_000) -> dict[tuple[int, int], int] | None:
    """Buckets of throughput-sized deployments onto the replicas `chosen` holds ((gpu, members, tp, count)
    blocks): {(d, bucket): option}, each option's buckets within LOAD_UNITS per replica, or None if none is found
    (depth-first, heaviest bucket first, within `max_nodes`; the integer master guarantees one exists)."""
    held: dict[tuple[int, int], int] = defaultdict(int)
    for _, members, _, n in chosen:
        for d, p, _ in members:
            held[d, p] += n
    out: dict[tuple[int, int], int] = {}
    nodes = [0]
    for d, loads in bucket_loads.items():
        room = {p: LOAD_UNITS * held[d, p] for p in {p for by_p in loads.values() for p in by_p}}
        order = sorted(loads, key=lambda b: -max(loads[b].values(), default=0))
        served: dict[int, int] = {}
        if not _place_buckets(order, loads, room, served, nodes, max_nodes):
            return None
        out.update({(d, b): p for b, p in served.items()})
    return out


def _place_buckets(order: list[int], loads: dict[int, dict[int, int]], room: dict[int, int], served: dict[int, int],
                   nodes: list[int], max_nodes: int) -> bool:
    """Depth-first: buckets `order` onto options with `room` left (most room after it first); True when all are
    placed (in `served`), False when none fits or `nodes` passes `max_nodes`."""
    if len(served) == len(order):
        return True
    nodes[0] += 1
    if nodes[0] > max_nodes:
        return False
    b = order[len(served)]
    for p in sorted(loads[b], key=lambda p: -(room[p] - loads[b][p])):
        if loads[b][p] <= room[p]:
            room[p] -= loads[b][p]
            served[b] = p
            if _place_buckets(order, loads, room, served, nodes, max_nodes):
                return True
            del served[b]
            room[p] += loads[b][p]
    return False


def _assemble(chosen, counts, demands: list[Demand], offers: list[Offer],
              bucket_loads: dict[int, dict[int, dict[int, int]]] | None = None) -> Plan | None:
    """Blocks onto instances, largest block first into the largest instance with room (aligned by construction);
    then sequences beyond each deployment's concurrency are taken back from its fullest replicas. Throughput-sized
    deployments (`bucket_loads`, as the master has them) get their buckets assigned (`_assignments`) and each
    replica an even share of its option's load."""
    served = _assignments(chosen, demands, bucket_loads) if bucket_loads else {}
    if served is None:
        return None
    by_id = {o.id: o for o in offers}
    slots = []  # [offer, owned, next free GPU]: the largest instances first, the cheapest (owned) among them
    for oid, (own, rent) in counts.items():
        slots += [[by_id[oid], True, 0] for _ in range(own)] + [[by_id[oid], False, 0] for _ in range(rent)]
    slots.sort(key=lambda s: (-s[0].gpu_count, instance_price(s[0], s[1]), s[0].id, not s[1]))
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
        if take > 0 and demands[r[0]].mode == "concurrency":
            r[4] -= take
            excess[r[0]] -= take
    load: dict[tuple[int, int], int] = defaultdict(int)  # throughput-sized: (d, option) -> its buckets' load
    for (d, b), p in served.items():
        load[d, p] += bucket_loads[d][b][p]
    by_option: dict[tuple[int, int], list] = defaultdict(list)
    for r in replicas:
        if demands[r[0]].mode == "throughput":
            by_option[r[0], r[1]].append(r)
    for (d, p), rs in by_option.items():
        for r, share in zip(rs, split_concurrency(load[d, p], len(rs))):
            r[4] = share
    used = sorted({r[2] for r in replicas})
    renumber = {old: new for new, old in enumerate(used)}
    return Plan(instances=[PlannedInstance(offer=slots[i][0].id, owned=slots[i][1]) for i in used],
                replicas=[PlacedReplica(deployment=d, option=p, instance=renumber[s], first_gpu=f, seqs=k)
                          for d, p, s, f, k in replicas],
                assignments=[BucketAssignment(deployment=d, bucket=b, option=p)
                             for (d, b), p in sorted(served.items())])


def _completed_floor(gen: _Generator, offers: list[Offer], slot_bounds: dict[str, int], policy: Policy,
                     threads: int) -> Plan | None:
    """The uniform LP's whole blocks (each block count rounded down) on the cheapest instances that hold them, the
    sequences they leave then placed first-fit around them (`best_heuristic_plan` from that start). A plan, or None
    (throughput-sized deployments: their buckets are not split that way).

    Where the LP spreads a few GPUs over many fractional patterns of a large GPU (a quota binds the cheap type and
    the rest goes to 192 GB MI300X), rounding them up costs a whole large GPU each: 100 bench deployments with the
    RTX A6000 capped at 19 GPUs, LP $112.09/h, the dive's blocks $152.73/h, SCIP over every column $152.77/h; the
    LP's floor completed first-fit $121.02/h. Changes the master's LP (only uniform columns left free), as the dive
    does next."""
    demands, master = gen.demands, gen.master
    if any(d.mode != "concurrency" for d in demands):
        return None
    gen.uniform_only()
    if not master.solve():
        return None
    chosen = []
    covered: dict[int, int] = defaultdict(int)
    replicas: dict[int, int] = defaultdict(int)
    for (g, members), value in zip(master.columns, master.values):
        t = _uniform_tp(demands, members)
        n = math.floor(value / t + 1e-6) if t is not None else 0
        if n > 0:
            chosen.append((g, members, t, n))
            for d, _, k in members:
                covered[d] += k * n
                replicas[d] += n
    counts = _fleet_for(chosen, offers, slot_bounds, policy, threads)
    base = _assemble(chosen, counts, demands, offers) if counts is not None else None
    if base is None:
        return None
    rest = []
    for d in demands:
        need, least = d.concurrency - covered[d.index], max(0, d.min_replicas - replicas[d.index])
        if need > 0 or least > 0:
            most = None if d.max_replicas is None else d.max_replicas - replicas[d.index]
            rest.append(d.model_copy(update={"concurrency": max(0, need), "min_replicas": least,
                                             "max_replicas": most}))
    if not rest:
        return base
    # The start's instances count against quotas and owned units (greedy's `opened`).
    return best_heuristic_plan(rest, offers, policy, start_from(base, demands, offers))


def _plan_blocks(gen: _Generator, offers: list[Offer], slot_bounds: dict[str, int], policy: Policy,
                 deadline: float, threads: int, say, dive_share: float = DIVE_SHARE,
                 enrich_share: float = ENRICH_SHARE):
    """After column generation: enrichment (`enrich_share` of the time left), the price-and-dive, then the
    integer master over its columns, hinted with it (`dive_share`, then INTEGER_SHARE of the time left).
    (chosen blocks, instance counts) or None."""
    demands = gen.demands
    enriched = gen.enrich(time.perf_counter() + enrich_share * (deadline - time.perf_counter()))
    dived = gen.dive(time.perf_counter() + dive_share * (deadline - time.perf_counter()))
    covering = dived is not None  # a finished dive's blocks hold every deployment: a plan of their own
    if covering:
        say(f"patterns: dive rounded the LP to {sum(dived.values())} blocks, "
            f"${gen.master.lp.Objective().Value():.2f}/h")
    else:  # the LP failed mid-dive: round the column generation's last LP up instead, as a hint only
        dived = {}
        for (g, members), value in zip(gen.master.columns, gen.lp_values):
            t = _uniform_tp(demands, members)
            if t is not None and value > 1e-6:
                dived[g, members] = math.ceil(value / t - 1e-6)
    fallback = None  # a finished dive's blocks and the instances that hold them: a complete hint, and a plan
    if covering:
        chosen = [(g, members, _uniform_tp(demands, members), n) for (g, members), n in dived.items() if n > 0]
        counts = _fleet_for(chosen, offers, slot_bounds, policy, threads)
        fallback = (chosen, counts) if counts is not None else None
    keep = None  # a pool SCIP has time for goes whole: columns far from the LP's duals still combine into plans
    if len(gen.master.columns) > INTEGER_ALL_COLUMNS_PER_S * (deadline - time.perf_counter()):
        keep = {key for key, n in dived.items() if n > 0} | gen.promising(INTEGER_REDUCED_COST_KEEP) | enriched
    # SCIP runs on one core; with more, a second SCIP searches at once (it releases the GIL): over the whole pool
    # when the first has the kept columns, else with another random seed. The cheaper plan wins.
    pools = [keep] if _cores(threads) < 2 else [keep, None]
    say(f"patterns: integer master over {len(gen.master.columns) if keep is None else len(keep)} of "
        f"{len(gen.master.columns)} columns" + (f", and over all {len(gen.master.columns)} at once"
                                                if len(pools) > 1 else ""))
    limit_s = INTEGER_SHARE * (deadline - time.perf_counter())
    # Without co-location (or with only throughput-sized deployments) every pattern is a column from the start, so
    # SCIP's bound over every column bounds every plan (its blocks, instances and slot bounds are exact there):
    # kept in gen.integer_bounds.
    proven = gen.integer_bounds

    def master(seed_shift: int, columns: set[Pattern] | None):
        return integer_blocks(gen.master, demands, offers, slot_bounds, policy, limit_s, 1, dived,
                              fallback[1] if fallback else None, columns, seed_shift,
                              proven if gen.complete and columns is None else None)

    with ThreadPoolExecutor(len(pools)) as pool:
        results = list(pool.map(master, range(len(pools)), pools))
    best = _cheapest(results, offers, slot_bounds, policy, threads, say)
    left_s = deadline - time.perf_counter()
    if keep is not None and len(pools) == 1 and (left_s > INTEGER_REST_MIN_S or (best is None and fallback is None)):
        # The kept columns' master ended early (proven over them), or found nothing: every column, from its plan.
        hint, counts = ({(g, members): n for g, members, _, n in best[0]}, best[1]) if best else (dived, None)
        say(f"patterns: integer master over all {len(gen.master.columns)} columns for the {left_s:.1f} s left")
        again = integer_blocks(gen.master, demands, offers, slot_bounds, policy, INTEGER_SHARE * left_s, threads,
                               hint, counts, bounds=proven if gen.complete else None)
        best = _cheapest([best, again], offers, slot_bounds, policy, threads, say)
    return best if best is not None else fallback  # SCIP may find nothing in a short time


def _cores(threads: int) -> int:
    """Threads the pattern path may use: `threads`, or every core when it is 0 (the policy's "all cores")."""
    return threads or os.cpu_count() or 1


def _cheapest(results, offers: list[Offer], slot_bounds: dict[str, int], policy: Policy, threads: int, say):
    """The cheapest of integer masters' results (None where one found nothing), each on exactly sized instances
    (a time-limited master may keep instances its blocks do not need)."""
    best = None
    for result in results:
        if result is None:
            continue
        counts = _fleet_for(result[0], offers, slot_bounds, policy, threads)
        if counts is not None and _price_of(counts, offers) < _price_of(result[1], offers) - EPS_USD_PER_HOUR:
            say("patterns: instances re-sized for the integer master's blocks")
            result = (result[0], counts)
        if best is None or _price_of(result[1], offers) < _price_of(best[1], offers) - EPS_USD_PER_HOUR:
            best = result
    return best


def _groups(demands: list[Demand], time_limit_s: float) -> list[list[int]]:
    """Deployments in groups solved separately (one group up to GROUP_WHOLE_MAX deployments). Sizes follow
    the time per deployment: GROUP_SIZE_PER_S_PER_DEPLOYMENT x limit / deployments, within GROUP_SIZE_MIN..MAX.
    Deployments are dealt round-robin by the smallest GPU memory their replicas need, so every group holds the
    fleet's mix of large and small shards to pack together."""
    n = len(demands)
    if n <= GROUP_WHOLE_MAX:
        return [[d.index for d in demands]]
    size = min(GROUP_SIZE_MAX, max(GROUP_SIZE_MIN, round(GROUP_SIZE_PER_S_PER_DEPLOYMENT * time_limit_s / n)))
    count = -(-n // size)
    order = sorted(demands, key=lambda d: (min(p.static_bytes * p.tp for p in d.options), d.index))
    return [[d.index for d in order[i::count]] for i in range(count)]


def _restrict(plan: Plan | None, members: list[int]) -> Plan | None:
    """`plan`'s replicas of deployments `members` (renumbered 0..) on the instances they use."""
    if plan is None:
        return None
    index = {d: j for j, d in enumerate(members)}
    replicas = [r for r in plan.replicas if r.deployment in index]
    used = sorted({r.instance for r in replicas})
    renumber = {old: new for new, old in enumerate(used)}
    return Plan(instances=[plan.instances[i] for i in used],
                replicas=[r.model_copy(update={"deployment": index[r.deployment], "instance": renumber[r.instance]})
                          for r in replicas])


def _apportion(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` into whole numbers that sum to it (largest remainders first)."""
    exact = [total * w / sum(weights) for w in weights]
    out = [math.floor(x) for x in exact]
    for i in sorted(range(len(weights)), key=lambda i: (out[i] - exact[i], i))[:total - sum(out)]:
        out[i] += 1
    return out


def _group_offers(offers: list[Offer], slot_bounds: dict[str, int],
                  groups: list[list[int]]) -> list[tuple[list[Offer], dict[str, int]]]:
    """Each group's (offers, slot bounds): its share of every quota and of the owned units, in proportion to its
    deployments, so the groups' blocks together keep every quota. (The housing program then puts the owned units
    wherever the blocks are, whichever group's they are.)"""
    sizes = [len(m) for m in groups]
    shares: list[tuple[list[Offer], dict[str, int]]] = [([], dict(slot_bounds)) for _ in groups]
    for o in offers:
        if not capped_offer(o):
            for offs, _ in shares:
                offs.append(o)
            continue
        quotas = [None] * len(groups) if o.max_instances is None else _apportion(o.max_instances, sizes)
        for (offs, bounds), quota, owned in zip(shares, quotas, _apportion(o.owned, sizes)):
            if quota is not None:
                owned = min(owned, quota)
                bounds[o.id] = min(bounds[o.id], quota)
            offs.append(o.model_copy(update={"owned": owned, "max_instances": quota}))
    return shares


# (demands, policy, incumbent, threads, each group's (offers, slot bounds)) while a large fleet's groups run
_GROUP_FLEET = None


def _plan_group(job: tuple[list[int], float, float, int]):
    """Group `i` of a large fleet (deployments `members` of _GROUP_FLEET, for `budget_s` but not past `end`): its
    column generation, dive and integer master. Returns (LP value or None, blocks chosen or None, every column),
    in fleet deployment indices, and the group's own plan (fleet indices) when its LP's whole blocks completed
    first fit (`_completed_floor`) cost less than its blocks (which are then empty). Runs inline or in a forked
    worker process, which inherits _GROUP_FLEET."""
    members, budget_s, end, i = job
    demands, policy, incumbent, threads, shares = _GROUP_FLEET
    offers, slot_bounds = shares[i]
    end = min(end, time.perf_counter() + budget_s)
    sub = [demands[d].model_copy(update={"index": j}) for j, d in enumerate(members)]
    gen = _Generator(sub, offers, slot_bounds, _restrict(incumbent, members), policy.colocate)
    _, lp, _ = gen.run(time.perf_counter() + GROUP_CG_SHARE * (end - time.perf_counter()), lambda _msg: None,
                       0.0, threads, policy.seed)
    completed = _completed_floor(gen, offers, slot_bounds, policy, threads) if lp is not None else None
    result = (_plan_blocks(gen, offers, slot_bounds, policy, end, threads, lambda _msg: None, GROUP_DIVE_SHARE,
                           GROUP_ENRICH_SHARE) if lp is not None else None)

    def fleet(ms) -> tuple[tuple[int, int, int], ...]:
        return tuple(sorted((members[d], p, k) for d, p, k in ms))

    chosen = [(g, fleet(ms), t, n) for g, ms, t, n in result[0]] if result is not None else None
    alone = None  # the group's own plan, when its LP's floor completed first fit beats its blocks
    if completed is not None and (result is None or completed.cost_usd_per_hour({o.id: o for o in offers})
                                  < _price_of(result[1], offers) - EPS_USD_PER_HOUR):
        chosen, alone = [], _renumbered(completed, members)
    return lp, chosen, [(g, fleet(ms)) for g, ms in gen.master.columns], alone


def _collect(results, groups: list[list[int]], chosen: list, columns: list, alone: list[Plan], failed: list[int],
             say) -> None:
    """Gather the groups' blocks into `chosen`, their columns into `columns`, the plans of groups planned on their
    own into `alone` and the deployments of groups that found no plan into `failed`, in group order."""
    for i, (members, (lp, blocks, cols, own)) in enumerate(zip(groups, results)):
        columns += cols
        if blocks is None:  # its share of a quota may leave it nothing to run on: first fit places it at the end
            say(f"patterns: group {i + 1} of {len(groups)} found no plan; its deployments go first fit around the "
                f"others' plan")
            failed += members
            continue
        chosen += blocks
        if own is not None:
            alone.append(own)
        say(f"patterns: group {i + 1} of {len(groups)} ({len(members)} deployments): LP ${lp:.2f}/h, "
            + (f"{sum(n for *_, n in blocks)} blocks" if own is None else
               f"its LP's whole blocks completed first fit, {len(own.instances)} instances"))


def _renumbered(plan: Plan, members: list[int]) -> Plan:
    """A group's plan in fleet deployment indices (group deployment j is fleet deployment members[j])."""
    return Plan(instances=plan.instances,
                replicas=[r.model_copy(update={"deployment": members[r.deployment]}) for r in plan.replicas],
                assignments=[a.model_copy(update={"deployment": members[a.deployment]}) for a in plan.assignments])


def _merged(plans: list[Plan], offers: list[Offer]) -> Plan:
    """Plans over disjoint instances as one plan. A plan may rent an instance of a type whose owned units another
    left unused: such instances become owned ones (the same GPUs, never dearer), so no instance is rented while
    an owned one sits idle."""
    instances, replicas, assignments = [], [], []
    for plan in plans:
        replicas += [r.model_copy(update={"instance": len(instances) + r.instance}) for r in plan.replicas]
        instances += plan.instances
        assignments += plan.assignments
    return owned_first(Plan(instances=instances, replicas=replicas, assignments=assignments), offers)


def _left_over(offers: list[Offer], slot_bounds: dict[str, int],
               plans: list[Plan]) -> tuple[list[Offer], dict[str, int]]:
    """Offers and slot bounds less the instances `plans` already use (owned units, quotas)."""
    own: dict[str, int] = defaultdict(int)
    rent: dict[str, int] = defaultdict(int)
    for plan in plans:
        for inst in plan.instances:
            (own if inst.owned else rent)[inst.offer] += 1
    left, bounds = [], dict(slot_bounds)
    for o in offers:
        used = own[o.id] + rent[o.id]
        if not used:
            left.append(o)
            continue
        quota = None if o.max_instances is None else o.max_instances - used
        if quota is not None:
            bounds[o.id] = max(0, min(bounds[o.id], quota))
        left.append(o.model_copy(update={"owned": max(0, o.owned - own[o.id]), "max_instances": quota}))
    return left, bounds


def solve_patterns(demands: list[Demand], offers: list[Offer], policy: Policy, slot_bounds: dict[str, int],
                   incumbent: Plan | None, time_limit_s: float, threads: int, say, started: float,
                   bound_until: float | None = None) -> PatternResult:
    """Column generation for the bound, then the plan. Large fleets (`_groups`) are planned group by group (in
    worker processes, one per thread, where fork is the default), each
    group on its own column generation, dive and integer master, their blocks then housed together by one
    instance-sizing program and instances emptied into the others' room (`greedy.drain`); the bound comes from
    column generation over the whole fleet, started from every group's columns, and the dual repair
    (GROUPS_SHARE of the time goes to the groups). When that emptying ends on its own, the fleet-wide bound may
    run until `bound_until` (if later than `started + time_limit_s`): the time the caller kept for polishing the
    plan, where only its neighbourhood search is left to run, which has found nothing on such fleets."""
    by_id = {o.id: o for o in offers}
    deadline = started + time_limit_s
    # Without co-location one integer master over the whole fleet is exact and fast (2,000 deployments, about
    # 100,000 one-shard columns: proven optimal in 72 s), and groups could only lose.
    groups = _groups(demands, time_limit_s) if policy.colocate else [[d.index for d in demands]]
    if len(groups) == 1:
        gen = _Generator(demands, offers, slot_bounds, incumbent, policy.colocate)
        bound, lp, converged = gen.run(time.perf_counter() + CG_SHARE * (deadline - time.perf_counter()), say,
                                       CERTIFY_SHARE * time_limit_s, threads, policy.seed,
                                       repair_s=REPAIR_SHARE * time_limit_s)
        if lp is None:
            return PatternResult(None, None, None, False)
        completed = _completed_floor(gen, offers, slot_bounds, policy, threads)
        result = _plan_blocks(gen, offers, slot_bounds, policy, deadline, threads, say)
        plan = _assemble(*result, demands, offers, gen.master.bucket_loads) if result is not None else None
        if plan is not None:
            say(f"patterns: integer master ${plan.cost_usd_per_hour(by_id):.2f}/h")
        if completed is not None:
            say(f"patterns: the LP's whole blocks completed first-fit ${completed.cost_usd_per_hour(by_id):.2f}/h")
            if plan is None or completed.cost_usd_per_hour(by_id) < plan.cost_usd_per_hour(by_id) - EPS_USD_PER_HOUR:
                plan = completed
        if gen.integer_bounds and max(gen.integer_bounds) > bound:
            bound = max(gen.integer_bounds)
            say(f"patterns: the integer master over every column proves ${bound:.2f}/h")
        return PatternResult(max(bound, 0.0), lp, plan, converged)

    groups_end = started + GROUPS_SHARE * time_limit_s
    cores = _cores(threads)
    # Worker processes where fork is the platform's default (Linux): they inherit the fleet instead of pickling it,
    # and the pattern path is single-threaded Python (about 1 core busy); elsewhere the groups run here in turn.
    workers = min(len(groups), cores) if multiprocessing.get_start_method() == "fork" else 1
    global _GROUP_FLEET
    if workers > 1:  # forked with the compiled knapsack loaded, and no thread of ours still loading it
        from planner.knapsack import finish_loading

        finish_loading()
    _GROUP_FLEET = (demands, policy, incumbent, max(1, cores // workers), _group_offers(offers, slot_bounds, groups))
    chosen: list = []
    columns = []
    alone: list[Plan] = []  # plans of groups planned on their own (their LP's whole blocks completed first fit)
    failed: list[int] = []  # deployments of groups that found no plan
    try:
        if workers > 1:  # each worker process takes the next group; every group gets the same share of the time
            budget_s = workers * (groups_end - time.perf_counter()) / len(groups)
            say(f"patterns: {len(groups)} groups on {workers} worker processes")
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                _collect(pool.imap(_plan_group, [(m, budget_s, groups_end, i) for i, m in enumerate(groups)]),
                         groups, chosen, columns, alone, failed, say)
        else:  # one after another, each with its share of the time left
            _collect((_plan_group((m, (groups_end - time.perf_counter()) / (len(groups) - i), groups_end, i))
                      for i, m in enumerate(groups)), groups, chosen, columns, alone, failed, say)
    finally:
        _GROUP_FLEET = None
    # The other groups' blocks are housed together, in what the groups planned on their own leave; the deployments
    # of groups without a plan then go first fit around it all.
    left, left_bounds = _left_over(offers, slot_bounds, alone)
    counts = _fleet_for(chosen, left, left_bounds, policy, threads)
    unplanned = set(failed)
    loads = {d: by_b for d, by_b in _fleet_bucket_loads(demands, _items(demands, offers)).items() if d not in unplanned}
    plan = _assemble(chosen, counts, demands, left, loads) if counts is not None else None
    if plan is not None and alone:
        plan = _merged([plan, *alone], offers)
    if plan is not None and failed:
        plan = best_heuristic_plan([demands[d] for d in failed], offers, policy, start_from(plan, demands, offers))
    settled = False
    if plan is not None:
        say(f"patterns: {len(groups)} groups housed together: ${plan.cost_usd_per_hour(by_id):.2f}/h")
        # Empty instances into the others' room now, not only when polishing at the end: on 2,000 deployments a
        # pass takes about 4 s, more than the polishing share leaves, and the cheaper incumbent tightens the
        # Lagrangian's GPU counts for the bound below.
        drain_by = time.perf_counter() + GROUPED_DRAIN_SHARE * (deadline - time.perf_counter())
        drained = drain(plan, demands, offers, policy, drain_by)
        settled = time.perf_counter() < drain_by
        if drained_is_better(plan, drained, demands, by_id):
            say(f"patterns: {drain_said(plan, drained, by_id)}")
            plan = drained
    if settled and bound_until is not None and bound_until > deadline:
        deadline = bound_until
    gen = _Generator(demands, offers, slot_bounds, plan or incumbent, policy.colocate)
    for key in columns:
        gen.master.add(key)
    repair_s = FLEET_REPAIR_SHARE * (deadline - CERTIFY_SHARE * time_limit_s - time.perf_counter())
    bound, lp, converged = gen.run(deadline - CERTIFY_SHARE * time_limit_s - repair_s, say,
                                   CERTIFY_SHARE * time_limit_s, threads, policy.seed, FLEET_BOUND_SMOOTHING, repair_s,
                                   deadline)
    if lp is None:
        return PatternResult(None, None, plan, False, settled)
    return PatternResult(max(bound, 0.0), lp, plan, converged, settled)
