"""Plans and solutions. A `Plan` is what an optimiser decides (instances opened, replicas placed, sequences held);
`to_solution` turns it into the JSON contract of DESIGN section 5, with every byte recomputed from the demands."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.constants import HOURS_PER_MONTH
from planner.demands import Demand, bucket_load, gpu_limit_bytes
from planner.memory import usable_bytes
from planner.offers import Offer
from planner.scenario import Scenario

Status = Literal["optimal", "feasible", "infeasible"]


class PlacedReplica(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: int
    option: int = Field(description="index into the demand's options")
    instance: int = Field(description="index into Plan.instances")
    first_gpu: int = Field(description="the replica's ranks sit on GPUs first_gpu .. first_gpu + tp - 1")
    seqs: int = Field(ge=1)


class PlannedInstance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offer: str
    owned: bool = False


class BucketAssignment(BaseModel):
    """Throughput-sized deployments: length bucket `bucket` is served wholly by replicas of option `option`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: int
    bucket: int
    option: int


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[PlannedInstance]
    replicas: list[PlacedReplica]
    assignments: list[BucketAssignment] = []

    def cost_usd_per_hour(self, offers: dict[str, Offer]) -> float:
        return sum(instance_price(offers[i.offer], i.owned) for i in self.instances)


def instance_price(offer: Offer, owned: bool) -> float:
    return offer.owned_price_usd_per_hour if owned else offer.price_usd_per_hour


class Cost(BaseModel):
    per_hour: float
    per_month: float
    currency: str = "USD"


class Bound(BaseModel):
    per_hour: float | None


class ShardOut(BaseModel):
    deployment: str
    replica: int
    rank: int
    bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int


class GpuOut(BaseModel):
    index: int
    capacity_bytes: int
    usable_bytes: int
    limit_bytes: int = Field(description="usable less policy.min_free_fraction of capacity")
    used_bytes: int
    headroom_bytes: int
    shards: list[ShardOut]


class InstanceOut(BaseModel):
    id: str
    type: str
    gpu: str
    price_per_hour: float
    owned: bool
    gpus: list[GpuOut]


class RankBytesOut(BaseModel):
    weights: int
    kv_cache: int
    activations: int
    overhead: int


class ReplicaOut(BaseModel):
    replica: int
    instance: str
    gpu_indices: list[int]
    tp: int
    concurrency: int
    max_concurrency: int
    bytes_per_rank: RankBytesOut
    cap: str = Field(description="what limits max_concurrency: memory, tpot (the SLO) or load (throughput-sized)")
    tpot_ms: float | None = Field(default=None, description="predicted time per output token at `concurrency`")
    ttft_ms: float | None = Field(default=None, description="predicted time to first token (idle replica)")
    load: float | None = Field(default=None, description="throughput-sized: fraction of the replica's capacity used")


class BucketOut(BaseModel):
    bucket: int
    prompt_tokens: int
    output_tokens: int
    requests_per_s: float
    gpu: str
    tp: int
    replica_requests_per_s: float = Field(description="requests/s one replica serves for this bucket")
    source: str = Field(description="profile (measured) or model (predicted)")


class DeploymentOut(BaseModel):
    name: str
    model: str
    dtype: str
    kv_dtype: str
    context_tokens: int
    concurrency_required: int
    concurrency_planned: int = Field(description="required x (1 + policy.headroom_fraction), rounded up")
    concurrency_capacity: int
    min_replicas: int
    replicas: list[ReplicaOut]
    mode: str = Field(default="concurrency", description="concurrency-sized or throughput-sized (buckets)")
    headroom: float = Field(description="spare capacity: capacity / required - 1 (sequences, or load)")
    kv_sized_on: str = Field(default="p95", description="length statistic the KV cache is sized for")
    slo: dict | None = None
    best_tpot_ms: float | None = None
    best_ttft_ms: float | None = None
    buckets: list[BucketOut] = []


class Infeasibility(BaseModel):
    deployment: str | None
    reason: str
    fixes: list[str]


class Summary(BaseModel):
    """Fleet-level figures for reports and sweeps."""

    gpu_mix: dict[str, int] = Field(description="GPUs per GPU type in the plan")
    instance_mix: dict[str, int] = Field(description="instances per instance type")
    gpus_total: int
    min_gpu_headroom_fraction: float | None = Field(description="min over GPUs of headroom / usable")
    min_concurrency_headroom: float | None = Field(
        description="min over deployments of capacity / required - 1: the traffic growth the fleet absorbs")


class Baseline(BaseModel):
    """The cheapest fleet of one GPU type only (the comparison Melange and others report)."""

    gpu: str
    status: Status | Literal["unknown"] = Field(
        description="unknown: no plan found in this type's share of the time and first fit failed; not proven "
        "infeasible (a longer --time-limit may find one)")
    cost_per_hour: float | None
    method: Literal["solver", "greedy"] = Field(
        default="solver", description="solver: optimised within its share of the time; greedy: the first-fit "
        "plan, left unoptimised because its lower bound already exceeds another GPU type's plan")
    bound_per_hour: float | None = Field(default=None, description="a lower bound on this GPU type's cheapest fleet")


class Solution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    status: Status
    cost: Cost
    bound: Bound
    gap: float | None
    solve_seconds: float
    solver: str = Field(description="what found the plan: cp-sat, or greedy when CP-SAT found nothing better in "
                        "time; large scenarios add '(decomposed)' (or '(decomposed, then exact)') after the engine "
                        "of the decomposition's plan: cp-sat, column generation + scip, cp-sat neighbourhood "
                        "search or greedy")
    objective: str = "min USD/hour, then max free GPU memory at that cost"
    instances: list[InstanceOut] = []
    deployments: list[DeploymentOut] = []
    infeasible: list[Infeasibility] = []
    notes: list[str] = []
    summary: Summary | None = None
    baselines: list[Baseline] = []
    saving_vs_best_single_gpu: float | None = Field(
        default=None, description="(best single-GPU-type cost - this cost) / best single-GPU-type cost")


def summarize(instances: list[InstanceOut], deployments: list[DeploymentOut]) -> Summary:
    gpu_mix: dict[str, int] = {}
    inst_mix: dict[str, int] = {}
    for i in instances:
        gpu_mix[i.gpu] = gpu_mix.get(i.gpu, 0) + len(i.gpus)
        inst_mix[i.type] = inst_mix.get(i.type, 0) + 1
    used = [g for i in instances for g in i.gpus if g.shards]
    return Summary(
        gpu_mix=dict(sorted(gpu_mix.items())), instance_mix=dict(sorted(inst_mix.items())),
        gpus_total=sum(gpu_mix.values()),
        min_gpu_headroom_fraction=round(min(g.headroom_bytes / g.usable_bytes for g in used), 4) if used else None,
        min_concurrency_headroom=round(min(d.headroom for d in deployments), 4) if deployments else None)


def gpu_loads(plan: Plan, demands: list[Demand]) -> dict[tuple[int, int], int]:
    """Bytes placed on each (instance, gpu) by the plan."""
    load: dict[tuple[int, int], int] = {}
    for r in plan.replicas:
        opt = demands[r.deployment].options[r.option]
        for rank in range(opt.tp):
            key = (r.instance, r.first_gpu + rank)
            load[key] = load.get(key, 0) + opt.placed_bytes(r.seqs)
    return load


def _deployment_out(d: Demand, replicas: list[ReplicaOut], plan: Plan) -> DeploymentOut:
    buckets: list[BucketOut] = []
    if d.mode == "throughput":
        needed = 0
        for a in plan.assignments:
            if a.deployment != d.index:
                continue
            opt, b = d.options[a.option], d.buckets[a.bucket]
            needed += bucket_load(b.requests_per_s, opt.bucket_rps[a.bucket])
            buckets.append(BucketOut(bucket=a.bucket, prompt_tokens=b.prompt_tokens, output_tokens=b.output_tokens,
                                     requests_per_s=round(b.requests_per_s, 6), gpu=opt.gpu, tp=opt.tp,
                                     replica_requests_per_s=opt.bucket_rps[a.bucket],
                                     source=opt.bucket_source[a.bucket]))
        headroom = len(replicas) * 1000 / needed - 1 if needed else 0.0
        capacity = 0
    else:
        capacity = sum(r.max_concurrency for r in replicas)
        headroom = capacity / d.concurrency_required - 1
    return DeploymentOut(
        name=d.name, model=d.model, dtype=d.dtype, kv_dtype=d.kv_dtype, context_tokens=d.context_tokens,
        concurrency_required=d.concurrency_required, concurrency_planned=d.concurrency, concurrency_capacity=capacity,
        min_replicas=d.min_replicas, replicas=replicas, mode=d.mode, headroom=round(headroom, 4),
        kv_sized_on=d.kv_sized_on, slo=d.slo.model_dump(exclude_none=True) if d.slo else None,
        best_tpot_ms=d.best_tpot_ms, best_ttft_ms=d.best_ttft_ms, buckets=sorted(buckets, key=lambda b: b.bucket))


def _predict(d: Demand, opt, gpu, seqs: int) -> tuple[float | None, float | None]:
    """(TPOT ms at `seqs`, TTFT ms) of a concurrency-sized replica, from planner.perf."""
    if opt.settings is None or gpu is None or d.mode != "concurrency":
        return None, None
    from planner.perf import decode_step, prefill_seconds

    tpot = decode_step(d.spec, opt.settings, gpu, seqs, d.decode_context_tokens, d.prompt_per_output).total_s * 1000
    ttft = prefill_seconds(d.spec, opt.settings, gpu, d.prompt_tokens) * 1000
    return round(tpot, 2), round(ttft, 1)


def to_solution(plan: Plan, demands: list[Demand], offers: list[Offer], scenario: Scenario, catalog_gpus: dict,
                status: Status, bound_usd_per_hour: float | None, solve_seconds: float, solver: str,
                notes: list[str] | None = None) -> Solution:
    """Render a plan in the output contract; bytes, headroom and cost are recomputed here from the demands."""
    by_id = {o.id: o for o in offers}
    loads = gpu_loads(plan, demands)
    util = scenario.policy.gpu_memory_utilization
    shards: dict[tuple[int, int], list[ShardOut]] = {}
    dep_replicas: dict[int, list[ReplicaOut]] = {d.index: [] for d in demands}
    ordered = sorted(plan.replicas, key=lambda r: (r.deployment, r.instance, r.first_gpu))
    for r in ordered:
        d = demands[r.deployment]
        opt = d.options[r.option]
        number = len(dep_replicas[d.index])
        spare = min(opt.limit_bytes - loads[(r.instance, r.first_gpu + k)] for k in range(opt.tp))
        # Throughput-sized replicas own their GPUs: vLLM fills what the weights leave with KV cache.
        kv = opt.placed_bytes(r.seqs) - opt.static_bytes
        for rank in range(opt.tp):
            shards.setdefault((r.instance, r.first_gpu + rank), []).append(ShardOut(
                deployment=d.name, replica=number, rank=rank, bytes=opt.placed_bytes(r.seqs),
                weights_bytes=opt.weights_bytes, kv_cache_bytes=kv, activation_bytes=opt.activation_bytes,
                overhead_bytes=opt.overhead_bytes))
        tpot, ttft = _predict(d, opt, catalog_gpus.get(opt.gpu), r.seqs)
        if opt.exclusive:
            concurrency, max_conc, cap, load_frac = 0, opt.memory_seqs, "load", round(r.seqs / 1000, 4)
        else:
            by_memory = r.seqs + max(0, spare) // opt.kv_seq_bytes if opt.kv_seq_bytes else opt.memory_seqs
            max_conc = min(by_memory, opt.max_seqs) if opt.cap == "tpot" else by_memory
            concurrency, cap, load_frac = r.seqs, opt.cap, None
        dep_replicas[d.index].append(ReplicaOut(
            replica=number, instance=f"i{r.instance + 1}", gpu_indices=list(range(r.first_gpu, r.first_gpu + opt.tp)),
            tp=opt.tp, concurrency=concurrency, max_concurrency=max_conc,
            bytes_per_rank=RankBytesOut(weights=opt.weights_bytes, kv_cache=kv, activations=opt.activation_bytes,
                                        overhead=opt.overhead_bytes),
            cap=cap, tpot_ms=tpot, ttft_ms=ttft, load=load_frac))
    instances = []
    for n, inst in enumerate(plan.instances):
        offer = by_id[inst.offer]
        capacity = catalog_gpus[offer.gpu].memory_bytes
        usable = usable_bytes(capacity, util)
        limit = gpu_limit_bytes(capacity, util, scenario.policy.min_free_fraction)
        gpus = []
        for j in range(offer.gpu_count):
            used = loads.get((n, j), 0)
            gpus.append(GpuOut(index=j, capacity_bytes=capacity, usable_bytes=usable, limit_bytes=limit,
                               used_bytes=used, headroom_bytes=usable - used, shards=shards.get((n, j), [])))
        instances.append(InstanceOut(id=f"i{n + 1}", type=offer.id, gpu=offer.gpu,
                                     price_per_hour=round(instance_price(offer, inst.owned), 6), owned=inst.owned,
                                     gpus=gpus))
    # From the exact prices, not the rounded ones shown per instance: amortised on-prem prices carry more than six
    # decimals, and their rounding errors add up over instances.
    cost = round(plan.cost_usd_per_hour(by_id), 6)
    deployments = [_deployment_out(d, dep_replicas[d.index], plan) for d in demands]
    gap = None
    if status == "optimal":  # proven: the bound is the cost (the model's thousandths-of-a-dollar rounding aside)
        bound_usd_per_hour = cost
    if bound_usd_per_hour is not None:
        gap = 0.0 if cost <= 0 else max(0.0, round((cost - bound_usd_per_hour) / cost, 6))
    return Solution(scenario=scenario.name, status=status,
                    cost=Cost(per_hour=cost, per_month=round(cost * HOURS_PER_MONTH, 2)),
                    bound=Bound(per_hour=None if bound_usd_per_hour is None else round(bound_usd_per_hour, 6)),
                    gap=gap, solve_seconds=round(solve_seconds, 3), solver=solver, instances=instances,
                    deployments=deployments, notes=notes or [], summary=summarize(instances, deployments))
