"""The optimiser against an exhaustive enumerator, metamorphic properties, and one test per constraint family.
Every plan produced here goes through the independent validator."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from planner.offers import Offer
from planner.solution import to_solution
from planner.solver import solve
from synthetic import Budget, Instance, brute_force, instances
from validator import check

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(inst: Instance) -> dict:
    """Solve, render, validate; returns the solution as JSON-like dict (status infeasible has no plan)."""
    result = solve(inst.demands, inst.offers, inst.policy, time_limit_s=20, threads=1)
    if result.plan is None:
        return {"status": "infeasible", "cost": None}
    sol = to_solution(result.plan, inst.demands, inst.offers, inst.scenario(), inst.gpus, result.status,
                      result.bound_usd_per_hour, result.wall_seconds, result.solver).model_dump(mode="json")
    check(sol, inst.rules())
    assert sol["status"] == "optimal", "tiny instances must be proven optimal"
    return {**sol, "cost": sol["cost"]["per_hour"]}


def max_per_type(sol: dict) -> int:
    counts: dict[str, int] = {}
    for i in sol.get("instances", []):
        counts[i["type"]] = counts.get(i["type"], 0) + 1
    return max(counts.values(), default=0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_matches_brute_force(inst):
    sol = run(inst)
    try:
        exact = brute_force(inst)
    except Budget:
        assume(False)
    assume(max_per_type(sol) <= 4)  # the enumerator only looks at fleets of <= 4 instances per type
    if exact is None:
        assert sol["status"] == "infeasible"
    else:
        assert sol["cost"] is not None and abs(sol["cost"] - exact) < 1e-6, (sol["cost"], exact)


@FAST
@given(instances())
def test_scaling_prices_scales_cost(inst):
    base = run(inst)
    assume(base["cost"] is not None)
    scaled = inst.with_offers([o.model_copy(update={"price_usd_per_hour": o.price_usd_per_hour * 3,
                                                    "owned_price_usd_per_hour": o.owned_price_usd_per_hour * 3})
                               for o in inst.offers])
    assert abs(run(scaled)["cost"] - 3 * base["cost"]) < 1e-6


@FAST
@given(instances())
def test_adding_an_instance_type_never_raises_cost(inst):
    base = run(inst)
    extra = Offer(id="cloud/extra", gpu="gb", gpu_count=2, nvlink=True, price_usd_per_hour=5.0)
    more = run(inst.with_offers([*inst.offers, extra]))
    if base["cost"] is not None:
        assert more["cost"] is not None and more["cost"] <= base["cost"] + 1e-6


@FAST
@given(instances())
def test_raising_concurrency_never_lowers_cost(inst):
    base = run(inst)
    d0 = inst.demands[0]
    bigger = Instance([d0.model_copy(update={"concurrency": d0.concurrency + 1}), *inst.demands[1:]],
                      inst.offers, inst.gpus, inst.policy)
    more = run(bigger)
    if more["cost"] is not None:
        assert base["cost"] is not None and base["cost"] <= more["cost"] + 1e-6


@FAST
@given(instances())
def test_colocation_never_costs_more(inst):
    on = run(Instance(inst.demands, inst.offers, inst.gpus, inst.policy.model_copy(update={"colocate": True})))
    off = run(Instance(inst.demands, inst.offers, inst.gpus, inst.policy.model_copy(update={"colocate": False})))
    if off["cost"] is not None:
        assert on["cost"] is not None and on["cost"] <= off["cost"] + 1e-6


@FAST
@given(instances())
def test_an_owned_instance_never_raises_cost(inst):
    base = run(inst)
    o = inst.offers[0]
    owned = inst.with_offers([o.model_copy(update={"owned": o.owned + 1}), *inst.offers[1:]])
    more = run(owned)
    if base["cost"] is not None:
        assert more["cost"] is not None and more["cost"] <= base["cost"] + 1e-6


def _drained_checked(plan, inst: Instance):
    """greedy.drain on `plan`: the result, after checking that it passes the validator and costs no more."""
    import time

    from planner.greedy import drain

    by_id = {o.id: o for o in inst.offers}
    drained = drain(plan, inst.demands, inst.offers, inst.policy, time.perf_counter() + 10)
    sol = to_solution(drained, inst.demands, inst.offers, inst.scenario(), inst.gpus, "feasible", None, 0.0,
                      "test").model_dump(mode="json")
    check(sol, inst.rules())
    assert drained.cost_usd_per_hour(by_id) <= plan.cost_usd_per_hour(by_id) + 1e-9
    return drained


@FAST
@given(instances(max_deployments=4, max_concurrency=6))
def test_emptying_instances_keeps_plans_valid_and_never_costs_more(inst):
    """greedy.drain from a plan with every replica on GPUs of its own: the result passes the validator (quotas,
    owned units first, anti-affinity, replica bounds, coverage) and costs no more; the optimum bounds it below."""
    from planner.greedy import greedy_plan

    spread = greedy_plan(inst.demands, inst.offers, inst.policy.model_copy(update={"colocate": False}))
    assume(spread is not None)
    by_id = {o.id: o for o in inst.offers}
    drained = _drained_checked(spread, inst)
    optimum = solve(inst.demands, inst.offers, inst.policy, time_limit_s=20, threads=1)
    assert optimum.status == "optimal" and drained.cost_usd_per_hour(by_id) >= optimum.plan.cost_usd_per_hour(
        by_id) - 1e-6


@FAST
@given(instances(max_deployments=3, max_concurrency=8), st.integers(1, 3))
def test_drained_plans_keep_no_replica_their_deployment_could_absorb(inst, extra):
    """greedy.drain from a first-fit plan with up to `extra` more replicas per deployment than it needs (its
    sequences split thinner): the result is valid and costs no more, and no replica above `replicas.min` is left
    whose sequences would fit in the room its deployment's other replicas have (their GPUs' free memory, their
    max_seqs), recomputed here from the plan's bytes."""
    from planner.greedy import greedy_plan

    thin = [d.model_copy(update={"min_replicas": max(d.min_replicas, min(d.concurrency, d.min_replicas + extra))})
            for d in inst.demands]
    plan = greedy_plan(thin, inst.offers, inst.policy)
    assume(plan is not None)
    drained = _drained_checked(plan, inst)
    used: dict[tuple[int, int], int] = {}
    for r in drained.replicas:
        opt = inst.demands[r.deployment].options[r.option]
        for g in range(r.first_gpu, r.first_gpu + opt.tp):
            used[r.instance, g] = used.get((r.instance, g), 0) + opt.placed_bytes(r.seqs)
    for d in inst.demands:
        mine = [r for r in drained.replicas if r.deployment == d.index]
        if len(mine) <= max(1, d.min_replicas):
            continue

        def room(r, d=d):
            opt = d.options[r.option]
            free = min(opt.limit_bytes - used[r.instance, g] for g in range(r.first_gpu, r.first_gpu + opt.tp))
            return min(free // opt.kv_seq_bytes, opt.max_seqs - r.seqs)

        for r in mine:
            assert r.seqs > sum(room(o) for o in mine if o is not r), (d.index, r)
