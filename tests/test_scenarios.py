"""Every example scenario solves (or, for the infeasible one, explains itself) from the CLI, and every plan passes
the independent validator. Also the output contract of `planner solve`."""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import ROOT
from validator import check, rules_for_scenario

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
INFEASIBLE = {"infeasible.yaml"}
TOP_FIELDS = {"scenario", "status", "cost", "bound", "gap", "solve_seconds", "instances", "deployments"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_scenario_solves_and_validates(run, path):
    r = run("solve", path, "--format", "json", "--threads", "2")
    sol = json.loads(r.out)
    assert TOP_FIELDS <= set(sol)
    if path.name in INFEASIBLE:
        assert r.code == 1 and sol["status"] == "infeasible"
        assert sol["infeasible"] and all(i["reason"] and i["fixes"] for i in sol["infeasible"])
        return
    assert r.code == 0, r.err
    assert sol["status"] == "optimal", sol.get("notes")
    check(sol, rules_for_scenario(path))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_scenario_validates(run, path):
    r = run("validate", path)
    assert r.code == 0 and "OK" in r.out


def test_json_contract_of_solve(run):
    sol = json.loads(run("solve", ROOT / "scenarios/prod.yaml", "--format", "json", "-q").out)
    assert set(sol["cost"]) >= {"per_hour", "per_month", "currency"}
    assert "per_hour" in sol["bound"]
    inst = sol["instances"][0]
    assert set(inst) >= {"id", "type", "gpu", "price_per_hour", "owned", "gpus"}
    gpu = inst["gpus"][0]
    assert set(gpu) >= {"index", "capacity_bytes", "usable_bytes", "used_bytes", "headroom_bytes", "shards"}
    assert all(isinstance(gpu[k], int) for k in ("capacity_bytes", "usable_bytes", "used_bytes", "headroom_bytes"))
    dep = sol["deployments"][0]
    assert set(dep) >= {"name", "model", "concurrency_required", "concurrency_capacity", "replicas"}
    rep = dep["replicas"][0]
    assert set(rep) >= {"replica", "instance", "gpu_indices", "tp", "concurrency", "max_concurrency",
                        "bytes_per_rank"}
    assert set(rep["bytes_per_rank"]) == {"weights", "kv_cache", "activations", "overhead"}
    assert sol["cost"]["per_hour"] == pytest.approx(sum(i["price_per_hour"] for i in sol["instances"]))


def test_prod_beats_greedy_and_uses_two_chat_replicas(run):
    r = run("solve", ROOT / "scenarios/prod.yaml", "--format", "json")
    sol = json.loads(r.out)
    chat = next(d for d in sol["deployments"] if d["name"] == "chat")
    assert len(chat["replicas"]) >= 2
    assert "greedy plan: $" in r.err  # progress on stderr only
    greedy = float(r.err.split("greedy plan: $")[1].split("/h")[0])
    assert sol["cost"]["per_hour"] <= greedy


def test_table_csv_markdown_and_out_file(run, tmp_path):
    table = run("solve", ROOT / "scenarios/colocate-small.yaml", "-q")
    assert table.code == 0 and "fleet" in table.out and "headroom" in table.out
    rows = list(csv.DictReader(io.StringIO(run("solve", ROOT / "scenarios/colocate-small.yaml", "-q",
                                               "--format", "csv").out)))
    assert rows and {"instance", "gpu_index", "deployment", "shard_bytes"} <= set(rows[0])
    md = run("solve", ROOT / "scenarios/colocate-small.yaml", "-q", "--format", "markdown").out
    assert md.startswith("# Plan: colocate-small") and "| deployment |" in md
    out = tmp_path / "plans" / "plan.json"
    r = run("solve", ROOT / "scenarios/colocate-small.yaml", "--format", "json", "--out", out)
    assert r.code == 0 and r.out == "" and json.loads(out.read_text())["status"] == "optimal"
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_infeasible_explains_and_suggests(run):
    r = run("solve", ROOT / "scenarios/infeasible.yaml")
    assert r.code == 1
    assert "Cannot place frontier" in r.out and "fix:" in r.out
    assert "small" not in r.out.split("Cannot place")[1].split("\n")[0]


def test_seed003_one_a100_80gb_beats_two_40gb(run):
    sol = json.loads(run("solve", ROOT / "scenarios/seed003-llama2-13b.yaml", "--format", "json", "-q").out)
    assert [i["gpu"] for i in sol["instances"]] == ["a100-sxm-80gb"]
    assert sol["deployments"][0]["replicas"][0]["tp"] == 1


def test_owned_box_used_before_renting(run):
    sol = json.loads(run("solve", ROOT / "scenarios/owned-burst.yaml", "--format", "json", "-q").out)
    owned = [i for i in sol["instances"] if i["owned"]]
    assert len(owned) == 1 and owned[0]["type"] == "onprem/hgx-a100-80gb-8x"
    assert any(not i["owned"] for i in sol["instances"])  # the burst


def test_min_free_fraction_keeps_headroom(run, tmp_path):
    text = (ROOT / "scenarios/single-gpu.yaml").read_text().replace("max_tp: 1", "max_tp: 1\n  min_free_fraction: 0.2")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    sol = json.loads(run("solve", path, "--format", "json", "-q").out)
    check(sol, rules_for_scenario(path))
    for inst in sol["instances"]:
        for g in inst["gpus"]:
            assert g["used_bytes"] <= g["usable_bytes"] - 0.2 * g["capacity_bytes"]


def test_time_limited_answer_is_not_called_optimal(tmp_path):
    from planner.plan import solve_file

    # Every catalog instance type and a heavier prod mix, with a 0.3 s budget: whatever comes back is honest.
    path = tmp_path / "big.yaml"
    path.write_text("""
name: big
policy: {time_limit_s: 0.3}
deployments:
  - {name: chat, model: llama-3.1-70b, workload: {concurrency: 256, prompt_tokens: 2000, output_tokens: 500},
     replicas: {min: 2}}
  - {name: code, model: qwen2.5-coder-32b, workload: {concurrency: 96, prompt_tokens: 4000, output_tokens: 1000}}
  - {name: moe, model: mixtral-8x7b, workload: {concurrency: 64, prompt_tokens: 1500, output_tokens: 500}}
  - {name: small, model: llama-3.1-8b, workload: {concurrency: 256, prompt_tokens: 1000, output_tokens: 300}}
""")
    sol = solve_file(path, baselines=False)
    assert sol.status in ("optimal", "feasible")
    if sol.status == "optimal":
        assert sol.gap == 0.0 and sol.bound.per_hour == pytest.approx(sol.cost.per_hour, abs=1e-3)
    else:
        assert sol.gap is not None and any("not proven optimal" in n or "greedy" in n for n in sol.notes)


def test_headroom_fraction_plans_for_growth(run, tmp_path):
    text = (ROOT / "scenarios/prod.yaml").read_text().replace("  colocate: true", "  colocate: true\n  headroom_fraction: 0.5")
    path = tmp_path / "grow.yaml"
    path.write_text(text)
    sol = json.loads(run("solve", path, "--format", "json", "-q", "--no-baselines").out)
    check(sol, rules_for_scenario(path))
    for d in sol["deployments"]:
        assert d["concurrency_planned"] == -(-d["concurrency_required"] * 3 // 2)
        assert sum(r["concurrency"] for r in d["replicas"]) >= d["concurrency_planned"]
    assert sol["summary"]["min_concurrency_headroom"] >= 0.5


@pytest.mark.parametrize("name,forced,label", [
    ("prod.yaml", "EXACT_PLACEMENT_VARIABLES", "column generation + scip (decomposed)"),
    ("melange-toy.yaml", "EXACT_PLACEMENT_VARIABLES", "column generation + scip (decomposed)"),  # throughput mode
    ("colocate-small.yaml", "EXACT_PLACEMENT_VARIABLES", "greedy (decomposed)"),  # nothing beat first fit
    ("prod.yaml", "EXACT_ALONE_PLACEMENT_VARIABLES", "column generation + scip (decomposed, then exact)"),
    ("prod-h200.yaml", "EXACT_ALONE_PLACEMENT_VARIABLES", "column generation + scip (decomposed, then exact)"),
    ("long-context.yaml", "EXACT_ALONE_PLACEMENT_VARIABLES", "column generation + scip (decomposed, then exact)"),
])
def test_decomposed_path_gives_valid_honest_plans(monkeypatch, name, forced, label):
    """Force the large-fleet path (fleet model, then placement), or the mid-size one (that, then the exact model),
    on small scenarios: its plans must validate, cost no less than the exact optimum, be called optimal only
    when they reach the proven bound, and name the engine that found them."""
    import planner.solver as solver_module
    from planner.plan import prepare, solve_prepared

    path = ROOT / "scenarios" / name
    exact = solve_prepared(prepare(path), baselines=False, threads=1)
    monkeypatch.setattr(solver_module, forced, 0)
    big = solve_prepared(prepare(path), baselines=False, threads=1)
    sol = big.model_dump(mode="json")
    check(sol, rules_for_scenario(path))
    assert big.solver == label
    assert big.cost.per_hour >= exact.cost.per_hour - 1e-6
    assert big.bound.per_hour <= exact.cost.per_hour + 1e-6  # a valid lower bound
    if big.status == "optimal":
        assert big.cost.per_hour == pytest.approx(exact.cost.per_hour)


def test_neighbourhood_search_consolidates_and_keeps_plans_valid():
    """Start from a plan with every replica on its own GPU and let the search co-locate them."""
    import time

    from planner.decompose import improve
    from planner.greedy import greedy_plan
    from planner.plan import prepare
    from planner.solution import to_solution

    path = ROOT / "scenarios/colocate-small.yaml"
    prep = prepare(path)
    spread = greedy_plan(prep.demands, prep.offers, prep.scenario.policy.model_copy(update={"colocate": False}))
    by_id = {o.id: o for o in prep.offers}
    better = improve(spread, prep.demands, prep.offers, prep.scenario.policy, time.perf_counter() + 20, 1)
    assert better.cost_usd_per_hour(by_id) < spread.cost_usd_per_hour(by_id)
    sol = to_solution(better, prep.demands, prep.offers, prep.scenario, prep.catalog.gpus, "feasible", None, 0.0,
                      "test").model_dump(mode="json")
    check(sol, rules_for_scenario(path))


def test_greedy_completes_a_partial_plan_around_its_replicas():
    """First fit from a start plan (`planner.greedy.start_from`): the start's replicas stay where they are, the
    rest fill the room its GPUs have left before new instances open, and the whole is a valid plan."""
    from planner.greedy import greedy_plan, start_from
    from planner.plan import prepare
    from planner.solution import to_solution

    path = ROOT / "scenarios/colocate-small.yaml"
    prep = prepare(path)
    policy = prep.scenario.policy
    first = greedy_plan(prep.demands[:2], prep.offers, policy)
    whole = greedy_plan(prep.demands[2:], prep.offers, policy, start_from(first, prep.demands, prep.offers))
    assert whole.replicas[:len(first.replicas)] == first.replicas
    assert whole.instances[:len(first.instances)] == first.instances
    assert any(r.instance < len(first.instances) for r in whole.replicas[len(first.replicas):])
    sol = to_solution(whole, prep.demands, prep.offers, prep.scenario, prep.catalog.gpus, "feasible", None, 0.0,
                      "test").model_dump(mode="json")
    check(sol, rules_for_scenario(path))


def test_emptying_instances_packs_a_spread_plan():
    """greedy.drain on a plan with every replica on its own GPU: the small models move into the room other
    instances leave, instances are dropped, and the plan stays valid."""
    import time

    from planner.greedy import drain, greedy_plan
    from planner.plan import prepare
    from planner.solution import to_solution

    path = ROOT / "scenarios/colocate-small.yaml"
    prep = prepare(path)
    spread = greedy_plan(prep.demands, prep.offers, prep.scenario.policy.model_copy(update={"colocate": False}))
    by_id = {o.id: o for o in prep.offers}
    drained = drain(spread, prep.demands, prep.offers, prep.scenario.policy, time.perf_counter() + 10)
    assert len(drained.instances) < len(spread.instances)
    assert drained.cost_usd_per_hour(by_id) < spread.cost_usd_per_hour(by_id)
    sol = to_solution(drained, prep.demands, prep.offers, prep.scenario, prep.catalog.gpus, "feasible", None, 0.0,
                      "test").model_dump(mode="json")
    check(sol, rules_for_scenario(path))


def _router_split():
    """A hand-built plan on one 4 x L4 instance: the router's 64 sequences as 63 + 1 on two GPUs, as an integer
    master covering them with the columns it has can leave them, the three other models on the other GPUs; and
    only that instance type on offer, so emptying the instance cannot pay. (path, prepared, plan, offers)."""
    from planner.plan import prepare
    from planner.solution import PlacedReplica, Plan, PlannedInstance

    path = ROOT / "scenarios/colocate-small.yaml"
    prep = prepare(path)
    l4 = [next(k for k, o in enumerate(d.options) if o.gpu == "l4-24gb" and o.tp == 1) for d in prep.demands]
    router = prep.demands[0].concurrency
    replicas = [PlacedReplica(deployment=0, option=l4[0], instance=0, first_gpu=g, seqs=q)
                for g, q in enumerate([router - 1, 1])]
    replicas += [PlacedReplica(deployment=d, option=l4[d], instance=0, first_gpu=d, seqs=prep.demands[d].concurrency)
                 for d in (1, 2, 3)]
    plan = Plan(instances=[PlannedInstance(offer="aws/g6.12xlarge")], replicas=replicas)
    return path, prep, plan, [o for o in prep.offers if o.id == "aws/g6.12xlarge"]


def test_emptying_instances_first_drops_a_replica_its_deployment_can_absorb():
    """The router's 63 + 1 (`_router_split`): the one sequence fits beside the 63, so drain drops the second
    replica and its copy of the weights (what changes is the absorption alone); the plan stays valid."""
    import time

    from planner.greedy import drain
    from planner.solution import to_solution

    path, prep, plan, offers = _router_split()
    router = prep.demands[0].concurrency
    drained = drain(plan, prep.demands, offers, prep.scenario.policy, time.perf_counter() + 10)
    assert [(r.first_gpu, r.seqs) for r in drained.replicas if r.deployment == 0] == [(0, router)]
    assert drained.replicas[1:] == plan.replicas[2:] and drained.instances == plan.instances
    sol = to_solution(drained, prep.demands, prep.offers, prep.scenario, prep.catalog.gpus, "feasible", None, 0.0,
                      "test").model_dump(mode="json")
    check(sol, rules_for_scenario(path))


def test_a_drain_that_frees_no_instance_is_kept_for_the_headroom_it_gives():
    """Polishing keeps a drained plan that costs the same but holds fewer bytes (the router's absorbed replica:
    more headroom, one copy of the weights fewer), and only then: the plan as it is stays as it is."""
    import time

    from planner.decompose import _emptied
    from planner.greedy import held_bytes

    _, prep, plan, offers = _router_split()
    said = []
    kept = _emptied(plan, prep.demands, offers, prep.scenario.policy, 1.0, time.perf_counter() + 10, said.append)
    by_id = {o.id: o for o in offers}
    assert kept is not None and len(kept.replicas) == len(plan.replicas) - 1
    assert kept.cost_usd_per_hour(by_id) == plan.cost_usd_per_hour(by_id)
    assert held_bytes(kept, prep.demands) < held_bytes(plan, prep.demands) and said
    assert _emptied(kept, prep.demands, offers, prep.scenario.policy, 1.0, time.perf_counter() + 10,
                    said.append) is None


def test_emptying_an_owned_instance_keeps_replica_counts_and_owned_units_first(tmp_path):
    """A hand-built plan: an owned 4 x L4 instance holds only the router's two replicas (replicas.min 2), a rented
    one holds the other three models. Emptying the owned one puts the router's two replicas on two GPUs of the
    other (not one replica), and that instance, now the only one, becomes the owned unit instead of a rented one."""
    import time

    import yaml

    from planner.greedy import drain
    from planner.plan import prepare
    from planner.solution import PlacedReplica, Plan, PlannedInstance, to_solution

    data = yaml.safe_load((ROOT / "scenarios/colocate-small.yaml").read_text())
    data["deployments"][0]["replicas"] = {"min": 2}
    data["gpus"]["owned"] = {"aws/g6.12xlarge": 1}
    path = tmp_path / "owned.yaml"
    path.write_text(yaml.safe_dump(data))
    prep = prepare(path)
    l4 = [next(k for k, o in enumerate(d.options) if o.gpu == "l4-24gb" and o.tp == 1) for d in prep.demands]
    router = prep.demands[0].concurrency
    replicas = [PlacedReplica(deployment=0, option=l4[0], instance=0, first_gpu=g, seqs=q)
                for g, q in enumerate([router - router // 2, router // 2])]
    replicas += [PlacedReplica(deployment=d, option=l4[d], instance=1, first_gpu=d - 1,
                               seqs=prep.demands[d].concurrency) for d in (1, 2, 3)]
    plan = Plan(instances=[PlannedInstance(offer="aws/g6.12xlarge", owned=True),
                           PlannedInstance(offer="aws/g6.12xlarge", owned=False)], replicas=replicas)
    rules = rules_for_scenario(path)

    def render(p):
        return to_solution(p, prep.demands, prep.offers, prep.scenario, prep.catalog.gpus, "feasible", None, 0.0,
                           "test").model_dump(mode="json")

    check(render(plan), rules)
    drained = drain(plan, prep.demands, prep.offers, prep.scenario.policy, time.perf_counter() + 10)
    assert [(i.offer, i.owned) for i in drained.instances] == [("aws/g6.12xlarge", True)]
    assert sum(r.deployment == 0 for r in drained.replicas) == 2
    check(render(drained), rules)


def test_neighbourhood_search_keeps_quotas(tmp_path):
    """The neighbourhood's exact re-placement may use only what a quota leaves outside it: with the cheap L4
    instance capped at one, consolidating a spread plan must not put the freed replicas on more of them."""
    import time

    import yaml

    from planner.decompose import improve
    from planner.greedy import greedy_plan
    from planner.plan import prepare
    from planner.solution import to_solution

    data = yaml.safe_load((ROOT / "scenarios/colocate-small.yaml").read_text())
    data["gpus"]["max_instances"] = {"aws/g6.xlarge": 1}
    path = tmp_path / "quota.yaml"
    path.write_text(yaml.safe_dump(data))
    prep = prepare(path)
    spread = greedy_plan(prep.demands, prep.offers, prep.scenario.policy.model_copy(update={"colocate": False}))
    better = improve(spread, prep.demands, prep.offers, prep.scenario.policy, time.perf_counter() + 20, 1)
    sol = to_solution(better, prep.demands, prep.offers, prep.scenario, prep.catalog.gpus, "feasible", None, 0.0,
                      "test").model_dump(mode="json")
    check(sol, rules_for_scenario(path))


def test_same_input_same_output(run):
    """A fixed seed and thread count: solving twice gives the same plan, byte for byte (timing aside)."""
    outs = []
    for _ in range(2):
        sol = json.loads(run("solve", ROOT / "scenarios/prod.yaml", "--format", "json", "-q", "--no-baselines",
                             "--threads", "2").out)
        sol.pop("solve_seconds")
        outs.append(sol)
    assert outs[0] == outs[1]


def test_polishing_prefers_the_plan_with_more_headroom_at_the_same_cost(monkeypatch):
    """The pattern path hands polishing the router's 63 + 1 (`_router_split`); emptying instances frees none but
    absorbs the lone sequence. The answer is that plan, one replica fewer, not the first plan found at that cost."""
    import time

    from planner import decompose, patterns
    from planner.greedy import held_bytes
    from planner.solver import _slot_bounds

    _, prep, plan, offers = _router_split()
    monkeypatch.setattr(patterns, "solve_patterns",
                        lambda *_args, **_kw: patterns.PatternResult(1.0, 1.0, plan, False))
    monkeypatch.setattr(decompose, "improve", lambda best, *_args, **_kw: best)
    by_id = {o.id: o for o in offers}
    best, status, _, engine = decompose.solve_decomposed(
        prep.demands, offers, prep.scenario.policy, _slot_bounds(offers, prep.demands, 100.0), None, 5, 1,
        lambda _m: None, time.perf_counter())
    assert best.cost_usd_per_hour(by_id) == plan.cost_usd_per_hour(by_id) and status == "optimal"  # one instance
    assert len(best.replicas) == len(plan.replicas) - 1 and engine.endswith("+ repacking")
    assert held_bytes(best, prep.demands) < held_bytes(plan, prep.demands)
