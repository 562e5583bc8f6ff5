"""First-fit-decreasing baseline: the CP-SAT model's warm start, its fallback answer, and the benchmark's yardstick.

Deployments are taken largest first. For each, replica options are ranked by price per sequence held
(instance price x tp / GPUs in the instance / sequences per replica; owned instances first); the replicas of the
first option that can be placed go into the first open instance with a free, aligned GPU block that has room,
else into a newly opened instance (owned before rented, then the cheapest shape with enough GPUs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from planner.demands import LOAD_UNITS, Demand, bucket_load
from planner.offers import Offer
from planner.scenario import Policy
from planner.solution import BucketAssignment, PlacedReplica, Plan, PlannedInstance, instance_price


@dataclass
class _Box:
    offer: Offer
    owned: bool
    free: list[int]
    tenants: list[set[int]] = field(default_factory=list)
    room: int = 0  # max(free), kept current: first fit skips full instances without scanning their GPUs

    def take(self, start: int, tp: int, nbytes: int, d: int) -> None:
        """Put deployment d's shards of `nbytes` each on GPUs start..start+tp-1 (negative bytes: take them off)."""
        for j in range(start, start + tp):
            self.free[j] -= nbytes
            if nbytes > 0:
                self.tenants[j].add(d)
            else:
                self.tenants[j].discard(d)
        self.room = max(self.free)


def blocks(gpu_count: int, tp: int) -> list[int]:
    """First GPU of every aligned block of `tp` GPUs in an instance of `gpu_count` GPUs."""
    return [k * tp for k in range(gpu_count // tp)]


def split_concurrency(total: int, replicas: int) -> list[int]:
    """`total` sequences over `replicas` as evenly as possible, each replica at least one."""
    base, extra = divmod(total, replicas)
    return [max(1, base + (1 if i < extra else 0)) for i in range(replicas)]


def _fits(box: _Box, start: int, tp: int, need: int, d: int, colocate: bool) -> bool:
    for j in range(start, start + tp):
        if box.free[j] < need or d in box.tenants[j] or (not colocate and box.tenants[j]):
            return False
    return True


def _open(boxes: list[_Box], opened: dict[str, int], offers: list[Offer], gpu: str, tp: int,
          limit_bytes: int) -> _Box | None:
    candidates = []
    for o in offers:
        if o.gpu != gpu or o.gpu_count < tp:
            continue
        n = opened.get(o.id, 0)
        if o.max_instances is not None and n >= o.max_instances:
            continue
        owned = n < o.owned
        candidates.append((0 if owned else 1, instance_price(o, owned), o.gpu_count, o.id, o, owned))
    if not candidates:
        return None
    *_, offer, owned = min(candidates, key=lambda c: c[:4])
    opened[offer.id] = opened.get(offer.id, 0) + 1
    box = _Box(offer=offer, owned=owned, free=[limit_bytes] * offer.gpu_count,
               tenants=[set() for _ in range(offer.gpu_count)], room=limit_bytes)
    boxes.append(box)
    return box


def _price_per_seq(opt, offers: list[Offer], opened: dict[str, int]) -> float:
    best = math.inf
    for o in offers:
        if o.gpu == opt.gpu and o.gpu_count >= opt.tp:
            owned = opened.get(o.id, 0) < o.owned
            per_replica = instance_price(o, owned) / (o.gpu_count // opt.tp)
            best = min(best, per_replica / opt.max_seqs)
    return best


@dataclass
class Start:
    """A partial plan for greedy runs to complete: its instances as boxes, with the room its replicas leave."""
    boxes: list[_Box]
    opened: dict[str, int]
    placed: list[tuple[int, int, int, int, int]]
    assignments: list[BucketAssignment]


def usable_bytes(demands: list[Demand]) -> dict[str, int]:
    """Usable bytes per GPU of each type (the policy's, the same for every option on that type)."""
    return {p.gpu: p.limit_bytes for d in demands for p in d.options}


def start_from(plan: Plan, demands: list[Demand], offers: list[Offer]) -> Start:
    """`plan` (over `demands`, whose indices the demands to complete keep) as a greedy start: new replicas may fill
    the memory its GPUs have left, and its instances count against quotas and owned units."""
    by_id = {o.id: o for o in offers}
    limit = usable_bytes(demands)
    boxes, opened = [], {}
    for inst in plan.instances:
        o = by_id[inst.offer]
        boxes.append(_Box(offer=o, owned=inst.owned, free=[limit[o.gpu]] * o.gpu_count,
                          tenants=[set() for _ in range(o.gpu_count)]))
        opened[o.id] = opened.get(o.id, 0) + 1
    placed = []
    for r in plan.replicas:
        opt = demands[r.deployment].options[r.option]
        boxes[r.instance].take(r.first_gpu, opt.tp, opt.placed_bytes(r.seqs), r.deployment)
        placed.append((r.deployment, r.option, r.instance, r.first_gpu, r.seqs))
    for box in boxes:
        box.room = max(box.free)
    return Start(boxes, opened, placed, list(plan.assignments))


def greedy_plan(demands: list[Demand], offers: list[Offer], policy: Policy, start: Start | None = None,
                order: list[Demand] | None = None) -> Plan | None:
    """A feasible plan by first-fit decreasing, or None when the heuristic cannot place everything. With `start`,
    its replicas stay and `demands` (what is left to place) go around them. `order`: `demands` in
    `_largest_first` order, when the caller has it already."""
    boxes: list[_Box] = []
    opened: dict[str, int] = {}
    placed: list[tuple[int, int, int, int, int]] = []  # (deployment, option, box, first gpu, seqs)
    assignments: list[BucketAssignment] = []
    if start is not None:
        boxes = [_Box(offer=b.offer, owned=b.owned, free=list(b.free), tenants=[set(t) for t in b.tenants],
                      room=b.room) for b in start.boxes]
        opened, placed, assignments = dict(start.opened), list(start.placed), list(start.assignments)
    order = _largest_first(demands) if order is None else order
    cache: dict[tuple[str, int, int], float] = {}
    any_owned = any(o.owned for o in offers)

    def price_of(opt) -> float:
        if any_owned:  # owned units are used up as the plan grows, and prices change with them
            return _price_per_seq(opt, offers, opened)
        key = (opt.gpu, opt.tp, opt.max_seqs)
        if key not in cache:
            cache[key] = _price_per_seq(opt, offers, opened)
        return cache[key]

    for d in order:
        if d.mode == "throughput":
            groups = _throughput_groups(d, offers, opened)
            if groups is None:
                return None
            for option, buckets, shares in groups:
                assignments += [BucketAssignment(deployment=d.index, bucket=b, option=option) for b in buckets]
            trial = _place_all(d, [(k, share) for k, _, loads in groups for share in loads], boxes, opened, offers,
                               policy)
            if trial is None:
                return None
            placed += trial
            continue
        price = [price_of(opt) for opt in d.options]
        ranked = sorted(range(len(d.options)), key=lambda k: (price[k], d.options[k].tp, d.options[k].gpu))
        done = False
        for k in ranked:
            opt = d.options[k]
            if not math.isfinite(price[k]):
                continue
            replicas = max(d.min_replicas, math.ceil(d.concurrency / opt.max_seqs))
            if d.max_replicas is not None and replicas > d.max_replicas:
                continue
            trial = _place_all(d, [(k, seqs) for seqs in split_concurrency(d.concurrency, replicas)], boxes, opened,
                               offers, policy)
            if trial is not None:
                placed += trial
                done = True
                break
        if not done:
            return None
    return Plan(instances=[PlannedInstance(offer=b.offer.id, owned=b.owned) for b in boxes],
                replicas=[PlacedReplica(deployment=d, option=k, instance=b, first_gpu=s, seqs=q)
                          for d, k, b, s, q in placed], assignments=assignments)


def _place_all(d: Demand, replicas: list[tuple[int, int]], boxes: list[_Box], opened: dict[str, int],
               offers: list[Offer], policy: Policy) -> list[tuple[int, int, int, int, int]] | None:
    """First-fit every (option, seqs) replica of `d` into `boxes`, opening instances as needed. All or nothing:
    on failure every change is undone (an undo log, not a copy: large fleets have thousands of boxes)."""
    out = []
    n_boxes, opened_before = len(boxes), dict(opened)
    for k, seqs in replicas:
        opt = d.options[k]
        need = opt.placed_bytes(seqs)
        spot = next(((b, s) for b, box in enumerate(boxes)
                     if box.room >= need and box.offer.gpu == opt.gpu and box.offer.gpu_count >= opt.tp
                     for s in blocks(box.offer.gpu_count, opt.tp)
                     if _fits(box, s, opt.tp, need, d.index, policy.colocate)), None)
        if spot is None:
            if _open(boxes, opened, offers, opt.gpu, opt.tp, opt.limit_bytes) is None:
                for _, k_done, b, s, seqs_done in out:
                    done = d.options[k_done]
                    boxes[b].take(s, done.tp, -done.placed_bytes(seqs_done), d.index)
                del boxes[n_boxes:]
                opened.clear()
                opened.update(opened_before)
                return None
            spot = (len(boxes) - 1, 0)
        b, s = spot
        boxes[b].take(s, opt.tp, need, d.index)
        out.append((d.index, k, b, s, seqs))
    return out


def _throughput_groups(d: Demand, offers: list[Offer], opened: dict[str, int]):
    """Each bucket to the option with the lowest price for its load; returns (option, buckets, replica loads)."""
    per_option: dict[int, list[int]] = {}
    for b, bucket in enumerate(d.buckets):
        best = None
        for k, opt in enumerate(d.options):
            if opt.bucket_rps[b] <= 0:
                continue
            price = _price_per_seq(opt.model_copy(update={"max_seqs": 1}), offers, opened)
            cost = price * bucket_load(bucket.requests_per_s, opt.bucket_rps[b])
            if math.isfinite(cost) and (best is None or cost < best[0]):
                best = (cost, k)
        if best is None:
            return None
        per_option.setdefault(best[1], []).append(b)
    groups = []
    for k, buckets in sorted(per_option.items()):
        opt = d.options[k]
        load = sum(bucket_load(d.buckets[b].requests_per_s, opt.bucket_rps[b]) for b in buckets)
        n = max(1, math.ceil(load / LOAD_UNITS))
        groups.append((k, buckets, split_concurrency(load, n)))
    short = d.min_replicas - sum(len(g[2]) for g in groups)
    if short > 0:  # availability: spread the first group's load over more replicas
        k, buckets, loads = groups[0]
        groups[0] = (k, buckets, split_concurrency(sum(loads), len(loads) + short))
    return groups


def best_heuristic_plan(demands: list[Demand], offers: list[Offer], policy: Policy,
                        start: Start | None = None) -> Plan | None:
    """The cheapest of the greedy plan over every offer and the greedy plan restricted to each GPU type (new
    instances of that type only, around `start` if given). Without a start, a type whose floor
    (`patterns.type_floors`) is at least the best plan so far is not run: it cannot win, and large fleets run
    a few of the 18 types offered instead of all (2,000 bench deployments: 1.9 s instead of 4.1 s; without
    co-location 2.5 s instead of 17.8 s; the same plan)."""
    by_id = {o.id: o for o in offers}
    order = _largest_first(demands)
    best = greedy_plan(demands, offers, policy, start, order)
    floors: dict[str, float] = {}
    if start is None:  # (around a start, the start's room may hold sequences no bound here charges)
        from planner.patterns import type_floors

        floors = type_floors(demands, offers, policy)
    best_cost = best.cost_usd_per_hour(by_id) if best is not None else math.inf
    for gpu in sorted({o.gpu for o in offers}):
        if round(floors.get(gpu, 0.0), USD_PER_HOUR_DECIMALS) >= round(best_cost, USD_PER_HOUR_DECIMALS):
            continue  # no plan on this type alone costs less than the best one (on a tie the earlier plan stays)
        plan = greedy_plan(demands, [o for o in offers if o.gpu == gpu], policy, start, order)
        if plan is not None and plan.cost_usd_per_hour(by_id) < best_cost:
            best, best_cost = plan, plan.cost_usd_per_hour(by_id)
    return best


def _largest_first(demands: list[Demand]) -> list[Demand]:
    """First-fit decreasing's order: the deployments whose smallest replica (static bytes over all its GPUs) is
    largest first."""
    return sorted(demands, key=lambda d: -min((o.static_bytes * o.tp for o in d.options), default=0))


def owned_first(plan: Plan, offers: list[Offer]) -> Plan:
    """`plan` with rented instances of a type whose owned units sit idle made owned ones (the same GPUs, never
    dearer where owning costs less than renting), so no instance is rented while an owned one is unused."""
    idle = {o.id: o.owned if o.owned_price_usd_per_hour < o.price_usd_per_hour else 0 for o in offers}
    for inst in plan.instances:
        if inst.owned:
            idle[inst.offer] -= 1
    instances = list(plan.instances)
    for n, inst in enumerate(instances):
        if not inst.owned and idle[inst.offer] > 0:
            idle[inst.offer] -= 1
            instances[n] = inst.model_copy(update={"owned": True})
    return plan.model_copy(update={"instances": instances})


# Plans compare by cost to this many decimals of a dollar per hour: catalog prices carry at most four, so equal
# plans tie and only the rounding of float sums is absorbed.
USD_PER_HOUR_DECIMALS = 6


def held_bytes(plan: Plan, demands: list[Demand]) -> int:
    """Bytes `plan`'s replicas hold over all their GPUs (weights, workspace and KV cache)."""
    total = 0
    for r in plan.replicas:
        opt = demands[r.deployment].options[r.option]
        total += opt.tp * opt.placed_bytes(r.seqs)
    return total


def rounded_cost_usd_per_hour(plan: Plan, offers: dict[str, Offer]) -> float:
    """`plan`'s cost to USD_PER_HOUR_DECIMALS: what plans compare by."""
    return round(plan.cost_usd_per_hour(offers), USD_PER_HOUR_DECIMALS)


def plan_rank(plan: Plan, demands: list[Demand], offers: dict[str, Offer]) -> tuple[float, int]:
    """How plans compare, lowest best: cost, then the bytes they hold (fewer: more headroom, the solver's second
    objective after cost, and fewer copies of the weights to run)."""
    return rounded_cost_usd_per_hour(plan, offers), held_bytes(plan, demands)


def drained_is_better(plan: Plan, drained: Plan, demands: list[Demand], offers: dict[str, Offer]) -> bool:
    """Whether `drain`'s result should replace `plan` (`plan_rank`): it costs less, or the same while holding
    fewer bytes. A drain that empties no instance can still drop replicas their deployment's others absorb (100
    bench deployments, 60 s: the plan kept five such replicas, because its drain freed no instance)."""
    return plan_rank(drained, demands, offers) < plan_rank(plan, demands, offers)


def drain_said(plan: Plan, drained: Plan, offers: dict[str, Offer]) -> str:
    """The progress line for a drained plan that replaces `plan`."""
    return (f"emptying instances into the others' room: ${plan.cost_usd_per_hour(offers):.2f}/h -> "
            f"${drained.cost_usd_per_hour(offers):.2f}/h, {len(plan.replicas)} -> {len(drained.replicas)} replicas")


def drain(plan: Plan, demands: list[Demand], offers: list[Offer], policy: Policy, deadline: float) -> Plan:
    """Empty instances one at a time, least full first: each deployment's sequences on the instance go first fit,
    over its options from the cheapest per sequence, into the room the other instances have left, and the
    instance is dropped. Then the same move may open instances that cost less than the one emptied. Passes over
    the instances until one empties none or `deadline` passes. Instances holding a throughput-sized replica stay.
    The rules hold as in greedy_plan: anti-affinity per GPU, aligned TP blocks, quotas, owned units first
    (`owned_first` on the result), `replicas.min`/`max`.

    First, and after every instance emptied, replicas whose sequences fit beside their deployment's other replicas
    are dropped (`_absorb`), freeing their weights' memory for the moves.

    The pattern path's plans are made of whole TP blocks; a replica that leaves its GPU 16% empty, beside room
    on other instances, is a move neither its integer master nor the neighbourhood search (which re-places a few
    instances of one GPU type) makes: 100 bench deployments, $92.61/h -> $91.63/h in 0.3 s."""
    start = start_from(plan, demands, offers)
    boxes, opened = start.boxes, start.opened
    on: list[list[tuple[int, int, int, int]]] = [[] for _ in boxes]  # per box: (deployment, option, first, seqs)
    replicas: dict[int, int] = {}
    for r in plan.replicas:
        on[r.instance].append((r.deployment, r.option, r.first_gpu, r.seqs))
        replicas[r.deployment] = replicas.get(r.deployment, 0) + 1
    usable = usable_bytes(demands)

    def absorb(only: set[int] | None = None) -> int:
        """_absorb, and close the instances it empties: nothing may be placed on them after."""
        dropped = _absorb(on, boxes, demands, replicas, only)
        for n, held in enumerate(on):
            if not held and n not in closed:
                closed.add(n)
                boxes[n].free, boxes[n].room = [-1] * len(boxes[n].free), -1
        return dropped

    closed: set[int] = set()
    absorbed = absorb()
    # Each deployment's options, cheapest per sequence first: fixed unless owned units make prices move with
    # what is open (then ranked at each move, as greedy_plan does). Ranking at every try took 45% of a pass.
    ranked = None if any(o.owned for o in offers) else {
        d.index: sorted(range(len(d.options)), key=lambda k, d=d: (_price_per_seq(d.options[k], offers, {}),
                                                                   d.options[k].tp)) for d in demands}
    for may_open in (False, True):
        moved = True
        while moved and time.perf_counter() < deadline:
            moved = False
            fill = {n: 1 - sum(box.free) / (box.offer.gpu_count * usable[box.offer.gpu]) for n, box in enumerate(boxes)
                    if n not in closed and on[n]}
            for n in sorted(fill, key=lambda n: fill[n]):
                if time.perf_counter() > deadline:
                    break
                if n in closed or not on[n] or any(demands[d].mode != "concurrency" for d, *_ in on[n]):
                    continue
                first_new = len(boxes)
                box = boxes[n]
                # An owned instance emptied frees its unit for a rented one of the same type (owned_first).
                renting = box.owned and any(m not in closed and on[m] and not b.owned and b.offer.id == box.offer.id
                                            for m, b in enumerate(boxes))
                bonus = max(0.0, box.offer.price_usd_per_hour - box.offer.owned_price_usd_per_hour) if renting else 0.0
                placed = _rehome(n, on[n], boxes, opened, demands, offers if may_open else [], offers, policy,
                                 replicas, bonus, ranked)
                if placed is None:
                    continue
                moved = True
                closed.add(n)
                if bonus:  # a rented instance of the type takes the owned unit now free (priced so from here on)
                    next(b for m, b in enumerate(boxes) if m not in closed and on[m] and not b.owned
                         and b.offer.id == box.offer.id).owned = True
                on += [[] for _ in boxes[first_new:]]
                for d, *_ in on[n]:
                    replicas[d] -= 1
                on[n] = []
                for d, k, b, first, seqs in placed:
                    on[b].append((d, k, first, seqs))
                    replicas[d] += 1
                # The sequences re-placed may have been split over more replicas than the room now needs. Only
                # their deployments can have changed: elsewhere the move took room and freed none.
                absorbed += absorb({d for d, *_ in placed})
    if not closed and not absorbed:
        return plan
    keep = [n for n in range(len(boxes)) if n not in closed and on[n]]
    return owned_first(Plan(
        instances=[PlannedInstance(offer=boxes[n].offer.id, owned=boxes[n].owned) for n in keep],
        replicas=[PlacedReplica(deployment=d, option=k, instance=i, first_gpu=first, seqs=seqs)
                  for i, n in enumerate(keep) for d, k, first, seqs in on[n]],
        assignments=plan.assignments), offers)


def _absorb(on: list[list[tuple[int, int, int, int]]], boxes: list[_Box], demands: list[Demand],
            replicas: dict[int, int], only: set[int] | None = None) -> int:
    """Drop every replica whose sequences fit in the room its deployment's other replicas have (their GPUs' free
    memory, their options' max_seqs), moving the sequences there; `on`, `boxes` and `replicas` are updated in
    place. Returns how many replicas were dropped. With `only`, the first pass looks at those deployments alone
    (the others' replicas are known not to fit: nothing freed room since they were last looked at); a replica
    dropped frees room, so the passes after it look at every deployment.

    The pattern path's integer master covers a deployment's sequences with the columns it has: 32 sequences as
    31 + 1 on two replicas, each with its own copy of the weights, where one more sequence fits beside the 31.
    The housed plans of 500 and 2,000 bench deployments held about 25 and 155 (100 deployments: 4).
    The smallest replica goes first (ties: the one whose weights take most memory); sequences go to the replicas
    on the fullest instances first, leaving the emptiest for `drain` to empty."""
    def located(deployments: set[int] | None) -> dict[int, list[tuple[int, int]]]:
        """deployment -> its replicas' (box, position in on[box]), for `deployments` (None: all) that can lose one.
        (Locating every replica at each call was most of a call's time: 6 ms at 2,000 deployments.)"""
        where: dict[int, list[tuple[int, int]]] = {}
        for b, held in enumerate(on):
            for i, r in enumerate(held):
                if r is not None and (deployments is None or r[0] in deployments) and \
                        demands[r[0]].mode == "concurrency" and not demands[r[0]].options[r[1]].exclusive:
                    where.setdefault(r[0], []).append((b, i))
        return where

    fill = {b: -sum(box.free) / box.offer.gpu_count for b, box in enumerate(boxes)}
    dropped, where = 0, located(only)
    while where:  # until a pass drops nothing: a replica dropped frees room another deployment's may fit in
        before = dropped
        for d, spots in where.items():
            dropped += _absorb_one(d, spots, on, boxes, demands, replicas, fill)
        where = located(None) if dropped > before else {}
    if dropped:
        for b, held in enumerate(on):
            if any(r is None for r in held):
                on[b] = [r for r in held if r is not None]
    return dropped


def _absorb_one(d: int, spots: list[tuple[int, int]], on: list[list], boxes: list[_Box], demands: list[Demand],
                replicas: dict[int, int], fill: dict[int, float]) -> int:
    """_absorb for deployment d, whose replicas sit at `spots` ((box, position in on[box]); those dropped leave
    it, and their place in `on` becomes None). Returns how many were dropped."""

    def room(b: int, i: int) -> int:
        _, k, first, seqs = on[b][i]
        opt = demands[d].options[k]
        fits = min(boxes[b].free[j] for j in range(first, first + opt.tp)) // opt.kv_seq_bytes
        return max(0, min(fits, opt.max_seqs - seqs))

    def smallest_first(spot: tuple[int, int]) -> tuple[int, int]:  # ties: the most weights' memory first
        _, k, _, seqs = on[spot[0]][spot[1]]
        return seqs, -dem.options[k].static_bytes * dem.options[k].tp

    dem = demands[d]
    dropped = 0
    while len(spots) > 1 and replicas[d] > max(1, dem.min_replicas):
        for gone in sorted(spots, key=smallest_first):
            rest = sorted((s for s in spots if s != gone), key=lambda s: -fill[s[0]])
            left = on[gone[0]][gone[1]][3]
            if sum(room(*s) for s in rest) < left:
                continue
            for b, i in rest:
                more = min(left, room(b, i))
                if more:
                    _, k, first, seqs = on[b][i]
                    boxes[b].take(first, dem.options[k].tp, more * dem.options[k].kv_seq_bytes, d)
                    on[b][i] = (d, k, first, seqs + more)
                    left -= more
            b, i = gone
            _, k, first, seqs = on[b][i]
            boxes[b].take(first, dem.options[k].tp, -dem.options[k].placed_bytes(seqs), d)
            on[b][i] = None  # removed by _absorb, once positions no longer matter
            spots.remove(gone)
            replicas[d] -= 1
            dropped += 1
            break
        else:
            break
    return dropped


def _rehome(n: int, leaving: list[tuple[int, int, int, int]], boxes: list[_Box], opened: dict[str, int],
            demands: list[Demand], may_open: list[Offer], offers: list[Offer], policy: Policy,
            replicas: dict[int, int], bonus: float = 0.0,
            ranked: dict[int, list[int]] | None = None) -> list[tuple[int, int, int, int, int]] | None:
    """Move the replicas `leaving` instance n ((deployment, option, first GPU, seqs)) into the other instances
    (and instances of `may_open`), when every one finds room and what opens costs less than instance n (plus
    `bonus`, what else emptying it saves), trying each deployment's options in `ranked` order (else ranked here).
    Returns the placements (deployment, option, box, first GPU, seqs), instance n then closed (nothing fits on
    it), or None with `boxes` and `opened` as they were."""
    seqs: dict[int, int] = {}
    count: dict[int, int] = {}
    for d, _, _, q in leaving:
        seqs[d] = seqs.get(d, 0) + q
        count[d] = count.get(d, 0) + 1
    closed = boxes[n]
    free, room = closed.free, closed.room
    closed.free, closed.room = [-1] * len(free), -1  # nothing fits on the instance being emptied
    n_boxes, opened_before = len(boxes), dict(opened)
    placed: list[tuple[int, int, int, int, int]] = []
    for di, total in sorted(seqs.items(), key=lambda x: -x[1]):
        d = demands[di]
        others = replicas[di] - count[di]
        least = max(1, d.min_replicas - others)
        most = None if d.max_replicas is None else d.max_replicas - others
        order = ranked[di] if ranked is not None else sorted(
            range(len(d.options)), key=lambda k: (_price_per_seq(d.options[k], offers, opened), d.options[k].tp))
        for k in order:
            wanted = max(least, math.ceil(total / d.options[k].max_seqs))
            if most is not None and wanted > most:
                continue
            out = _place_all(d, [(k, q) for q in split_concurrency(total, wanted)], boxes, opened, may_open, policy)
            if out is not None:
                placed += out
                break
        else:
            break
    else:
        if sum(instance_price(b.offer, b.owned) for b in boxes[n_boxes:]) < instance_price(closed.offer,
                                                                                          closed.owned) + bonus - 1e-9:
            return placed
    for di, k, b, s, q in placed:  # undo
        opt = demands[di].options[k]
        boxes[b].take(s, opt.tp, -opt.placed_bytes(q), di)
    del boxes[n_boxes:]
    opened.clear()
    opened.update(opened_before)
    closed.free, closed.room = free, room
    return None
