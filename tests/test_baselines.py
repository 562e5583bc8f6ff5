"""Single-GPU-type baselines (planner.plan.single_gpu_baselines): types whose lower bound cannot beat the best
single-type plan are not solved, the solves share one time budget, and the scenario's own single-type plan caps
its type's baseline."""

from __future__ import annotations

import pytest

from planner import plan as plan_module
from planner.greedy import greedy_plan
from planner.patterns import type_floors
from planner.solver import SolveResult, solve


def _alone(prep, gpu):
    demands = [d.model_copy(update={"options": [p for p in d.options if p.gpu == gpu]}) for d in prep.demands]
    return demands, [o for o in prep.offers if o.gpu == gpu]


def test_floor_is_below_every_single_type_plan(fleet):
    floors = type_floors(fleet.demands, fleet.offers, fleet.scenario.policy)
    assert set(floors) == {o.gpu for o in fleet.offers}
    for gpu in sorted(floors):
        demands, offers = _alone(fleet, gpu)
        first_fit = greedy_plan(demands, offers, fleet.scenario.policy)
        if any(not d.options for d in demands):
            assert floors[gpu] == float("inf") and first_fit is None
        elif first_fit is not None:
            assert 0 < floors[gpu] <= first_fit.cost_usd_per_hour({o.id: o for o in offers}) + 1e-6


def test_only_types_that_can_be_best_are_solved_within_one_budget(fleet, monkeypatch):
    """A solver that finds nothing in time (the worst case for the budget: every call returns at once), and the
    scenario's own plan using the RTX A6000 alone: that plan is the A6000 baseline, every type whose bound
    exceeds it keeps its first-fit plan unsolved, and the solves' limits add up to the budget."""
    a6000 = "rtx-a6000-48gb"
    demands, offers = _alone(fleet, a6000)
    own = solve(demands, offers, fleet.scenario.policy, time_limit_s=3, threads=1).plan
    own_cost = own.cost_usd_per_hour({o.id: o for o in offers})
    calls = []

    def nothing_in_time(demands, offers, policy, *, time_limit_s, threads):
        calls.append((offers[0].gpu, time_limit_s))
        return SolveResult(None, "unknown", None, 0.0, "cp-sat", [])

    monkeypatch.setattr("planner.solver.solve", nothing_in_time)
    budget_s = 4.0
    baselines = {b.gpu: b for b in plan_module.single_gpu_baselines(fleet, time_limit_s=budget_s, threads=1,
                                                                     plan=own)}
    assert set(baselines) == {o.gpu for o in fleet.offers}
    assert baselines[a6000].cost_per_hour == pytest.approx(own_cost) and baselines[a6000].method == "solver"
    best = min(b.cost_per_hour for b in baselines.values() if b.cost_per_hour is not None)
    assert best == pytest.approx(own_cost)  # this fleet's cheapest single type is the A6000
    solved = {gpu for gpu, _ in calls}
    pruned = {g for g, b in baselines.items() if b.method == "greedy"}
    assert pruned and solved and not solved & pruned
    for g in pruned:  # a type left unsolved cannot beat the best single-type plan, and its figures are ordered
        b = baselines[g]
        assert b.status == "feasible" and b.bound_per_hour >= best - 1e-6
        assert b.bound_per_hour <= b.cost_per_hour + 1e-6
    for g in solved:  # a type solved was a contender when its turn came
        assert baselines[g].bound_per_hour is None or baselines[g].bound_per_hour <= own_cost + 1e-6
    assert all(limit <= budget_s for _, limit in calls)
    assert sum(limit for _, limit in calls) <= budget_s + plan_module.BASELINE_MIN_LIMIT_S * len(calls)
    infeasible = {g for g, b in baselines.items() if b.status == "infeasible"}
    assert all(baselines[g].cost_per_hour is None for g in infeasible)


def test_saving_is_against_a_baseline_no_dearer_than_a_single_type_plan(run):
    """End to end: every baseline in the JSON names how it was found, and no first-fit baseline is the best."""
    import json

    from conftest import ROOT

    sol = json.loads(run("solve", ROOT / "scenarios/prod.yaml", "--format", "json", "-q").out)
    assert sol["baselines"] and all(b["method"] in ("solver", "greedy") for b in sol["baselines"])
    priced = [b for b in sol["baselines"] if b["cost_per_hour"] is not None]
    best = min(priced, key=lambda b: b["cost_per_hour"])
    assert best["method"] == "solver"
    for b in priced:
        if b["method"] == "greedy":
            assert b["bound_per_hour"] >= best["cost_per_hour"] - 1e-6
    assert sol["saving_vs_best_single_gpu"] == pytest.approx(
        (best["cost_per_hour"] - sol["cost"]["per_hour"]) / best["cost_per_hour"], abs=1e-5)


def test_a_type_without_a_plan_in_time_is_unknown_not_infeasible(fleet, monkeypatch):
    """When first fit fails on a GPU type and its solve finds nothing in time, nothing has proven that type
    infeasible: the baseline says `unknown` (and the report 'no plan in time'); a type the solver proves
    infeasible, or one some deployment cannot use at all, stays `infeasible`."""
    from planner.report import baseline_line
    from planner.solution import Solution

    a6000, l40s = "rtx-a6000-48gb", "l40s-48gb"

    def first_fit_fails_on_two(demands, offers, policy):
        return None if offers[0].gpu in (a6000, l40s) else greedy_plan(demands, offers, policy)

    def solver(demands, offers, policy, *, time_limit_s, threads):
        status = "infeasible" if offers[0].gpu == l40s else "unknown"
        return SolveResult(None, status, None, 0.0, "cp-sat", [])

    monkeypatch.setattr("planner.greedy.greedy_plan", first_fit_fails_on_two)
    monkeypatch.setattr("planner.solver.solve", solver)
    baselines = {b.gpu: b for b in plan_module.single_gpu_baselines(fleet, time_limit_s=2, threads=1)}
    assert baselines[a6000].status == "unknown" and baselines[a6000].cost_per_hour is None
    assert baselines[l40s].status == "infeasible" and baselines[l40s].cost_per_hour is None
    unusable = {g for g in baselines if any(not d.options for d in _alone(fleet, g)[0])}
    assert unusable and all(baselines[g].status == "infeasible" for g in unusable)
    line = baseline_line(Solution.model_construct(baselines=list(baselines.values()),
                                                  saving_vs_best_single_gpu=None))
    assert f"{a6000} no plan in time" in line and f"{l40s} infeasible" in line


@pytest.mark.parametrize("variant", [None, "owned", "no-colocation"])
def test_the_best_first_fit_plan_skips_only_types_that_cannot_win(tmp_path, monkeypatch, variant):
    """best_heuristic_plan is the cheapest of first fit over every offer and over each GPU type alone; the types
    whose floor is at least the best plan so far (or that cannot house every deployment) are not run, and the
    answer is the plan running every type gives (the first of the cheapest)."""
    import yaml

    from bench.fleet import VARIANTS, synthetic_scenario
    from planner import greedy
    from planner.plan import prepare
    from planner.scenario import parse_scenario

    data = synthetic_scenario(100)
    if variant is not None:
        VARIANTS[variant](data)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    prep = prepare(path, parse_scenario(data, str(path)))
    by_id = {o.id: o for o in prep.offers}
    policy = prep.scenario.policy
    every = [greedy_plan(prep.demands, prep.offers, policy)]
    every += [greedy_plan(prep.demands, [o for o in prep.offers if o.gpu == g], policy)
              for g in sorted({o.gpu for o in prep.offers})]
    cheapest = min((p for p in every if p is not None), key=lambda p: p.cost_usd_per_hour(by_id))
    runs = []
    real = greedy.greedy_plan

    def counted(demands, offers, *args):
        runs.append(offers)
        return real(demands, offers, *args)

    monkeypatch.setattr(greedy, "greedy_plan", counted)
    assert greedy.best_heuristic_plan(prep.demands, prep.offers, policy) == cheapest
    assert 1 < len(runs) < len(every) // 2  # most of the 20 types cannot win here
