"""One tiny instance per constraint family of the CP-SAT model (docs/optimization.md), each with a known optimum."""

from __future__ import annotations

from planner.catalog import Gpu
from planner.demands import Demand, ReplicaOption, gpu_limit_bytes
from planner.offers import Offer
from planner.scenario import Policy
from synthetic import MIB, SPEC, Instance
from test_solver import run

GPUS = {"ga": Gpu(id="ga", name="ga", vendor="s", memory_mib=8192, memory_bandwidth_gb_per_s=1, source="t")}
LIMIT = gpu_limit_bytes(GPUS["ga"].memory_bytes, 0.9, 0.0)


def demand(i: int, fraction: float, *, tp: int = 1, concurrency: int = 1, min_replicas: int = 1,
           max_replicas: int | None = None, kv_mib: int = 64) -> Demand:
    static = int(LIMIT * fraction) // MIB * MIB
    seqs = (LIMIT - static) // (kv_mib * MIB)
    return Demand(index=i, name=f"d{i}", model="synthetic", spec=SPEC, dtype="bf16", kv_dtype="bf16",
                  context_tokens=2, concurrency=concurrency, concurrency_required=concurrency,
                  min_replicas=min_replicas, max_replicas=max_replicas,
                  options=[ReplicaOption(gpu="ga", tp=tp, weights_bytes=static, activation_bytes=0, overhead_bytes=0,
                                         kv_seq_bytes=kv_mib * MIB, limit_bytes=LIMIT, max_seqs=int(seqs))])


def offer(name: str, count: int, price: float, **kw) -> Offer:
    return Offer(id=f"c/{name}", gpu="ga", gpu_count=count, nvlink=True, price_usd_per_hour=price, **kw)


def solve(demands, offers, **policy) -> dict:
    return run(Instance(demands, offers, GPUS, Policy(gpu_memory_utilization=0.9, threads=1, **policy)))


def test_memory_limit_forces_a_second_gpu():
    sol = solve([demand(0, 0.6), demand(1, 0.6)], [offer("one", 1, 1.0)])
    assert sol["cost"] == 2.0


def test_small_replicas_share_a_gpu_only_when_colocation_is_allowed():
    assert solve([demand(0, 0.4), demand(1, 0.4)], [offer("one", 1, 1.0)], colocate=True)["cost"] == 1.0
    assert solve([demand(0, 0.4), demand(1, 0.4)], [offer("one", 1, 1.0)], colocate=False)["cost"] == 2.0


def test_tp_group_stays_inside_one_instance():
    # Two 1-GPU boxes ($2) would be cheaper than one 2-GPU box ($3), but a TP group cannot span instances.
    sol = solve([demand(0, 0.5, tp=2)], [offer("one", 1, 1.0), offer("two", 2, 3.0)])
    assert sol["cost"] == 3.0
    assert sol["deployments"][0]["replicas"][0]["gpu_indices"] == [0, 1]


def test_min_replicas_on_distinct_gpus():
    sol = solve([demand(0, 0.2, min_replicas=2)], [offer("two", 2, 1.0)])
    assert sol["cost"] == 1.0
    reps = sol["deployments"][0]["replicas"]
    assert len(reps) == 2 and reps[0]["gpu_indices"] != reps[1]["gpu_indices"]


def test_concurrency_split_across_replicas():
    # 10 sequences, each replica holds at most (limit - static) / kv: force at least two replicas.
    d = demand(0, 0.5, concurrency=10, kv_mib=600)
    assert d.options[0].max_seqs < 10
    sol = solve([d], [offer("one", 1, 1.0)])
    held = sum(r["concurrency"] for r in sol["deployments"][0]["replicas"])
    assert held >= 10 and sol["cost"] == 2.0


def test_max_replicas_caps_the_split():
    d = demand(0, 0.5, concurrency=10, kv_mib=600, max_replicas=1)
    sol = solve([d], [offer("one", 1, 1.0)])
    assert sol["status"] == "infeasible"


def test_quota_sends_overflow_to_the_dearer_type():
    sol = solve([demand(0, 0.6), demand(1, 0.6)], [offer("cheap", 1, 1.0, max_instances=1), offer("dear", 1, 5.0)])
    assert sol["cost"] == 6.0


def test_owned_instances_cost_nothing_and_are_used_first():
    sol = solve([demand(0, 0.6), demand(1, 0.6)], [offer("box", 1, 4.0, owned=1)])
    assert sol["cost"] == 4.0  # one owned (free) + one rented
    assert sorted(i["owned"] for i in sol["instances"]) == [False, True]


def test_amortised_owned_price_applies():
    sol = solve([demand(0, 0.6)], [offer("box", 1, 4.0, owned=1, owned_price_usd_per_hour=1.5)])
    assert sol["cost"] == 1.5


def test_cost_sums_exact_prices_not_the_rounded_ones_shown():
    """Amortised on-prem prices carry more than six decimals; the plan's cost is their exact sum, rounded once
    (summing the per-instance prices as shown, each rounded to 1e-6, was 2e-6 off with four boxes here)."""
    price = 1.23456749
    sol = solve([demand(i, 0.6) for i in range(4)], [offer("box", 1, 9.0, owned=4, owned_price_usd_per_hour=price)])
    assert sol["cost"] == round(4 * price, 6)
    assert all(i["owned"] and i["price_per_hour"] == round(price, 6) for i in sol["instances"])
