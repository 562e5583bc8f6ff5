"""One scenario end to end: scenario.yaml -> Scenario -> offers + demands -> CP-SAT -> Solution.

This is the only place the steps are chained; each step is a pure function in its own module.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from planner.catalog import Catalog
from planner.demands import Demand, build_demands
from planner.offers import Offer, offers, scenario_catalog
from planner.scenario import Scenario, load_scenario
from planner.solution import Baseline, Bound, Cost, Plan, Solution, to_solution

# The single-GPU-type baselines share this fraction of the solve's time limit, all types together (each type
# solved gets at least BASELINE_MIN_LIMIT_S), so `planner solve` ends within about 1.25x its limit.
BASELINES_SHARE = 0.25
BASELINE_MIN_LIMIT_S = 1.0
# The type with the lowest bound gets this share of the baselines' time when others may still beat it: a plan
# near its optimum prunes the rest (300 deployments: the RTX A6000 alone, $337/h in 2.5 s, $298/h in 5 s, did not
# prune the MI300X at $338/h with equal shares, and did with this one).
BASELINE_LEAD_SHARE = 0.75


@dataclass
class Prepared:
    """A validated scenario with everything resolved against the catalog."""

    path: Path
    scenario: Scenario
    catalog: Catalog
    offers: list[Offer]
    demands: list[Demand]


def prepare(path: str | Path, scenario: Scenario | None = None) -> Prepared:
    """Load (unless given), validate and resolve a scenario. Raises InputError on any bad input."""
    path = Path(path)
    scenario = scenario or load_scenario(path)
    where = str(path)
    catalog = scenario_catalog(scenario, path)
    offered = offers(scenario, catalog, where=where)
    demands = build_demands(scenario, catalog, offered, path.parent, where=where)
    return Prepared(path, scenario, catalog, offered, demands)


def single_gpu_baselines(prep: Prepared, *, time_limit_s: float, threads: int | None = None,
                         plan: Plan | None = None) -> list[Baseline]:
    """For every offered GPU type, the cheapest plan that uses that type alone (same scenario otherwise), all of
    them within `time_limit_s` together.

    Each type first gets its first-fit plan and a lower bound that needs no solve (patterns.type_floors). Types
    are then solved in order of that bound, the first of them with BASELINE_LEAD_SHARE of the time left while
    others may still beat it, until every remaining type's bound is at least the cheapest single-type plan found:
    those types cannot be the best single type, so they keep their first-fit plan (`method: greedy`) and the
    saving against the best type is unchanged. On a 300-deployment fleet over 20 GPU types that leaves one type
    to solve, where solving all of them took 53 s after a 20 s solve (docs/deviations.md #12).

    `plan` (the scenario's own plan), when it uses one GPU type only, is a plan of that type too: its cost caps
    that type's baseline, so a time-limited baseline never claims a saving the plan itself disproves."""
    from planner.greedy import greedy_plan
    from planner.patterns import type_floors
    from planner.solver import solve

    deadline = time.perf_counter() + time_limit_s
    by_id = {o.id: o for o in prep.offers}
    floors = type_floors(prep.demands, prep.offers, prep.scenario.policy)
    out: dict[str, Baseline] = {}
    candidates = []  # (floor, first-fit cost, gpu, demands, offers)
    for gpu in sorted({o.gpu for o in prep.offers}):
        offers = [o for o in prep.offers if o.gpu == gpu]
        demands = [d.model_copy(update={"options": [p for p in d.options if p.gpu == gpu]}) for d in prep.demands]
        if any(not d.options for d in demands):
            out[gpu] = Baseline(gpu=gpu, status="infeasible", cost_per_hour=None)
            continue
        first_fit = greedy_plan(demands, offers, prep.scenario.policy)
        cost = first_fit.cost_usd_per_hour(by_id) if first_fit is not None else math.inf
        candidates.append((floors[gpu], cost, gpu, demands, offers))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    own_gpus = {by_id[i.offer].gpu for i in plan.instances} if plan is not None else set()
    own = plan.cost_usd_per_hour(by_id) if len(own_gpus) == 1 else math.inf
    best = min([own] + [c[1] for c in candidates])  # the cheapest single-type plan known so far
    for i, (floor, known, gpu, demands, offers) in enumerate(candidates):
        method = "greedy"
        if gpu in own_gpus and own <= known:
            known, method = own, "solver"  # the scenario's plan is this type's best known plan
        if floor >= best and known < math.inf:
            out[gpu] = Baseline(gpu=gpu, status="feasible", cost_per_hour=round(known, 6), method=method,
                                bound_per_hour=round(floor, 6))
            continue
        left = sum(1 for c in candidates[i + 1:] if c[0] < best)  # contenders after this one, as things stand
        share = max(BASELINE_MIN_LIMIT_S, (deadline - time.perf_counter()) * (BASELINE_LEAD_SHARE if left else 1.0))
        r = solve(demands, offers, prep.scenario.policy, time_limit_s=share, threads=threads)
        if r.plan is None:  # infeasible, or nothing found in time: the first-fit plan, if there is one
            feasible = r.status != "infeasible" and known < math.inf
            status = "feasible" if feasible else "infeasible" if r.status == "infeasible" else "unknown"
            out[gpu] = Baseline(gpu=gpu, status=status, cost_per_hour=round(known, 6) if feasible else None,
                                method=method if feasible else "solver")
            continue
        cost = min(r.plan.cost_usd_per_hour(by_id), known)
        best = min(best, cost)
        bound = max(floor, r.bound_usd_per_hour or 0.0)
        out[gpu] = Baseline(gpu=gpu, status=r.status, cost_per_hour=round(cost, 6),
                            bound_per_hour=round(bound, 6) if bound > 0 else None)
    return [out[g] for g in sorted(out)]


def solve_prepared(prep: Prepared, *, time_limit_s: float | None = None, threads: int | None = None,
                   log: Callable[[str], None] | None = None, baselines: bool = True) -> Solution:
    """Solve, or explain why no plan exists; with `baselines`, also price every single-GPU-type fleet."""
    from planner.explain import explain, explain_quota
    from planner.solver import solve

    sc = prep.scenario
    unplaceable = explain(sc, prep.demands, prep.offers, prep.catalog, prep.path.parent)
    if unplaceable:
        return _infeasible(sc, unplaceable)
    result = solve(prep.demands, prep.offers, sc.policy, time_limit_s=time_limit_s, threads=threads, log=log)
    if result.plan is None:
        if result.status == "infeasible":
            return _infeasible(sc, [explain_quota(prep.demands, prep.offers)], result.wall_seconds)
        return _infeasible(sc, [], result.wall_seconds,
                           notes=["no plan found within the time limit and the greedy heuristic failed: "
                                  "raise --time-limit"])
    sol = to_solution(result.plan, prep.demands, prep.offers, sc, prep.catalog.gpus, result.status,
                      result.bound_usd_per_hour, result.wall_seconds, result.solver, result.notes)
    if baselines and len({o.gpu for o in prep.offers}) > 1:
        limit = BASELINES_SHARE * (time_limit_s or sc.policy.time_limit_s)
        if log:
            log("pricing single-GPU-type baselines")
        sol.baselines = single_gpu_baselines(prep, time_limit_s=limit, threads=threads, plan=result.plan)
        if log:
            solved = sum(1 for b in sol.baselines if b.method == "solver" and b.cost_per_hour is not None)
            bounded = sum(1 for b in sol.baselines if b.method == "greedy")
            infeasible = sum(1 for b in sol.baselines if b.status == "infeasible")
            unknown = sum(1 for b in sol.baselines if b.status == "unknown")
            log(f"baselines: {solved} GPU types solved, {bounded} left at first fit (their bound exceeds the best "
                f"single-type plan), {infeasible} infeasible"
                + (f", {unknown} without a plan in time" if unknown else ""))
        costs = [b.cost_per_hour for b in sol.baselines if b.cost_per_hour is not None]
        if costs and min(costs) > 0:
            sol.saving_vs_best_single_gpu = round((min(costs) - sol.cost.per_hour) / min(costs), 6)
    return sol


def _infeasible(sc: Scenario, reasons, seconds: float = 0.0, notes: list[str] | None = None) -> Solution:
    return Solution(scenario=sc.name, status="infeasible", cost=Cost(per_hour=0.0, per_month=0.0),
                    bound=Bound(per_hour=None), gap=None, solve_seconds=round(seconds, 3), solver="cp-sat",
                    infeasible=reasons, notes=notes or [])


def solve_file(path: str | Path, **kwargs) -> Solution:
    """Prepare and solve one scenario file (keyword arguments as solve_prepared)."""
    return solve_prepared(prepare(path), **kwargs)
