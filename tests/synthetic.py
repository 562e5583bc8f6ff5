"""Tiny synthetic planning instances for property tests, and an exhaustive enumerator that solves them exactly.

The enumerator shares no code with the solver: it tries fleets in order of cost and, for each, searches every
placement of every replica (aligned TP blocks, co-location and anti-affinity rules as documented in
docs/optimization.md) by depth-first search.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import strategies as st

from planner.catalog import Gpu
from planner.demands import Demand, ReplicaOption, gpu_limit_bytes
from planner.models import ExplicitModel, ModelSpec
from planner.offers import Offer
from planner.scenario import Deployment, Policy, Scenario, Workload
from validator import InstanceType, Rules, ShardSpec

MIB = 2**20
UTIL = 0.9


@dataclass
class Instance:
    demands: list[Demand]
    offers: list[Offer]
    gpus: dict[str, Gpu]
    policy: Policy

    def scenario(self) -> Scenario:
        return Scenario(name="synthetic", policy=self.policy, deployments=[
            Deployment(name=d.name, model="synthetic", workload=Workload(
                concurrency=d.concurrency, prompt_tokens=1, output_tokens=1)) for d in self.demands])

    def rules(self) -> Rules:
        table = {(d.name, p.gpu, p.tp): ShardSpec(p.static_bytes, p.kv_seq_bytes) for d in self.demands
                 for p in d.options}
        return Rules(
            instance_types={o.id: InstanceType(o.gpu, o.gpu_count, o.price_usd_per_hour, o.owned,
                                               o.owned_price_usd_per_hour, o.max_instances) for o in self.offers},
            gpu_limit_bytes={g: gpu_limit_bytes(x.memory_bytes, UTIL, self.policy.min_free_fraction)
                             for g, x in self.gpus.items()},
            concurrency={d.name: d.concurrency for d in self.demands},
            min_replicas={d.name: d.min_replicas for d in self.demands},
            max_replicas={d.name: d.max_replicas for d in self.demands},
            shard=lambda name, gpu, tp: table.get((name, gpu, tp)), colocate=self.policy.colocate)

    def with_offers(self, offers: list[Offer]) -> "Instance":
        return Instance(self.demands, offers, self.gpus, self.policy)


SPEC = ModelSpec(id="synthetic", source="explicit", explicit=ExplicitModel(params=1))


@st.composite
def instances(draw, max_deployments: int = 2, max_concurrency: int = 3,
              gpu_counts: tuple[int, ...] = (1, 2)) -> Instance:
    """A small random scenario: two GPU types, up to three offers of `gpu_counts` GPUs (quotas and owned units
    drawn), up to `max_deployments` deployments with TP-1 and TP-2 options."""
    gpu_mib = {"ga": draw(st.sampled_from([4096, 8192])), "gb": draw(st.sampled_from([8192, 16384]))}
    gpus = {g: Gpu(id=g, name=g, vendor="synthetic", memory_mib=m, memory_bandwidth_gb_per_s=1.0, source="test")
            for g, m in gpu_mib.items()}
    colocate = draw(st.booleans())
    policy = Policy(gpu_memory_utilization=UTIL, colocate=colocate, time_limit_s=20, threads=1)
    offers = []
    for k in range(draw(st.integers(1, 3))):
        gpu = draw(st.sampled_from(["ga", "gb"]))
        offers.append(Offer(id=f"cloud/o{k}", gpu=gpu, gpu_count=draw(st.sampled_from(gpu_counts)), nvlink=True,
                            price_usd_per_hour=float(draw(st.integers(1, 12))),
                            owned=draw(st.sampled_from([0, 0, 1])),
                            max_instances=draw(st.sampled_from([None, None, 2, 3]))))
    demands = []
    for i in range(draw(st.integers(1, max_deployments))):
        options = []
        for g, gpu in gpus.items():
            limit = gpu_limit_bytes(gpu.memory_bytes, UTIL, 0.0)
            for tp in (1, 2):
                # Mostly replicas smaller than half a GPU, so co-location and packing decide the cost.
                static_mib = draw(st.integers(256, limit // MIB // draw(st.sampled_from([1, 2, 3]))))
                static_mib = max(128, static_mib // tp)
                kv_mib = draw(st.integers(64, 1024))
                seqs = (limit - static_mib * MIB) // (kv_mib * MIB)
                if seqs >= 1:
                    options.append(ReplicaOption(gpu=g, tp=tp, weights_bytes=static_mib * MIB, activation_bytes=0,
                                                 overhead_bytes=0, kv_seq_bytes=kv_mib * MIB, limit_bytes=limit,
                                                 max_seqs=int(seqs)))
        demands.append(Demand(index=i, name=f"d{i}", model="synthetic", spec=SPEC, dtype="bf16", kv_dtype="bf16",
                              context_tokens=2, concurrency=(c := draw(st.integers(1, max_concurrency))),
                              concurrency_required=c,
                              min_replicas=draw(st.sampled_from([1, 1, 2])), max_replicas=None, options=options))
    return Instance(demands, offers, gpus, policy)


class Budget(Exception):
    """The enumerator gave up (too many search nodes): the example is skipped, never judged."""


def brute_force(inst: Instance, max_per_type: int = 4, node_budget: int = 400_000) -> float | None:
    """Exact minimum cost in USD/h over fleets of at most `max_per_type` instances per type, or None."""
    offers = inst.offers
    ranges = [range(min(o.max_instances if o.max_instances is not None else max_per_type, max_per_type) + 1)
              for o in offers]

    def fleet_cost(vec):
        return sum(min(n, o.owned) * o.owned_price_usd_per_hour + max(0, n - o.owned) * o.price_usd_per_hour
                   for n, o in zip(vec, offers))

    nodes = [0]
    for vec in sorted(itertools.product(*ranges), key=lambda v: (fleet_cost(v), v)):
        fleet = [(o.gpu, o.gpu_count) for n, o in zip(vec, offers) for _ in range(n)]
        if _placeable(inst, fleet, nodes, node_budget):
            return fleet_cost(vec)
    return None


def _shares(total: int, parts: int):
    """Non-increasing splits of `total` into `parts` positive shares."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total - parts + 1, 0, -1):
        for rest in _shares(total - first, parts - 1):
            if rest[0] <= first:
                yield (first, *rest)


def _placeable(inst: Instance, fleet, nodes, budget) -> bool:
    limit = {g: gpu_limit_bytes(x.memory_bytes, UTIL, inst.policy.min_free_fraction) for g, x in inst.gpus.items()}
    load = [[0] * n for _, n in fleet]
    tenants = [[set() for _ in range(n)] for _, n in fleet]

    def place_dep(di: int) -> bool:
        if di == len(inst.demands):
            return True
        d = inst.demands[di]
        lo = d.min_replicas
        hi = max(d.concurrency, d.min_replicas)
        for r in range(lo, hi + 1):
            total = max(d.concurrency, r)
            for shares in _shares(total, r):
                if place_replicas(di, d, list(shares)):
                    return True
        return False

    def place_replicas(di, d, shares) -> bool:
        nodes[0] += 1
        if nodes[0] > budget:
            raise Budget
        if not shares:
            return place_dep(di + 1)
        seqs = shares[0]
        for p in d.options:
            if seqs > p.max_seqs:
                continue
            need = p.static_bytes + seqs * p.kv_seq_bytes
            for b, (gpu, count) in enumerate(fleet):
                if gpu != p.gpu or count < p.tp:
                    continue
                for first in range(0, count - p.tp + 1, p.tp):
                    gpus = range(first, first + p.tp)
                    if any(load[b][j] + need > limit[gpu] or d.index in tenants[b][j]
                           or (not inst.policy.colocate and tenants[b][j]) for j in gpus):
                        continue
                    for j in gpus:
                        load[b][j] += need
                        tenants[b][j].add(d.index)
                    ok = place_replicas(di, d, shares[1:])
                    for j in gpus:
                        load[b][j] -= need
                        tenants[b][j].discard(d.index)
                    if ok:
                        return True
        return False

    return place_dep(0)
