"""Scale benchmark: synthetic fleets of 5 to 2,000 deployments over the whole instance catalog.

    python -m bench.scale [--sizes 5,20,100,500,2000] [--out bench/out]

Each size runs in a fresh process (so its peak RSS is its own) and prints: solve time, status, cost, best bound,
gap, peak RSS (and that of its largest worker process), and cost ratios against the greedy first-fit-decreasing
plan and against the cheapest single-GPU-type fleet (each GPU type alone, by the same greedy heuristic). Every plan goes through the independent
validator of tests/validator.py. Writes scale.csv and scale.png (solve time and gap against size) under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIME_LIMITS_S = {5: 10, 20: 10, 100: 10, 500: 60, 2000: 120}  # the targets of issue 6


def run_one(n: int, time_limit_s: float, threads: int, variant: str | None = None, aggregated: bool = False) -> dict:
    """Solve one synthetic fleet in this process (changed by bench.fleet.VARIANTS[variant], if given; with
    `aggregated`, on the aggregated fleet model the column generation path replaced); returns the measurements."""
    sys.path.insert(0, str(ROOT / "tests"))
    from bench.fleet import VARIANTS, prepared, synthetic_scenario
    from planner.greedy import greedy_plan
    from planner.solution import to_solution
    from planner.solver import solve
    from validator import check, rules_for_scenario

    data = synthetic_scenario(n, time_limit_s=time_limit_s)
    if variant is not None:
        VARIANTS[variant](data)
    if aggregated:
        from planner import patterns

        patterns.applicable = lambda *_args: False
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        prep, path = prepared(data, Path(tmp), f"synthetic-{n}.yaml")
        prepare_s = time.perf_counter() - t0
        by_id = {o.id: o for o in prep.offers}
        greedy = greedy_plan(prep.demands, prep.offers, prep.scenario.policy)
        single = {}
        for gpu in sorted({o.gpu for o in prep.offers}):
            demands = [d.model_copy(update={"options": [p for p in d.options if p.gpu == gpu]}) for d in prep.demands]
            if all(d.options for d in demands):
                plan = greedy_plan(demands, [o for o in prep.offers if o.gpu == gpu], prep.scenario.policy)
                if plan is not None:
                    single[gpu] = plan.cost_usd_per_hour(by_id)
        t0 = time.perf_counter()
        result = solve(prep.demands, prep.offers, prep.scenario.policy, time_limit_s=time_limit_s, threads=threads)
        solve_s = time.perf_counter() - t0
        sol = to_solution(result.plan, prep.demands, prep.offers, prep.scenario, prep.catalog.gpus, result.status,
                          result.bound_usd_per_hour, result.wall_seconds, result.solver).model_dump(mode="json")
        check(sol, rules_for_scenario(path))
    cost = sol["cost"]["per_hour"]
    best_single = min(single.values()) if single else None
    return {"deployments": n, "time_limit_s": time_limit_s, "prepare_s": round(prepare_s, 2),
            "solve_s": round(solve_s, 2), "status": sol["status"], "solver": sol["solver"],
            "cost_per_hour": round(cost, 2), "bound_per_hour": sol["bound"]["per_hour"], "gap": sol["gap"],
            "greedy_per_hour": round(greedy.cost_usd_per_hour(by_id), 2) if greedy else None,
            "greedy_over_ours": round(greedy.cost_usd_per_hour(by_id) / cost, 3) if greedy else None,
            "best_single_gpu_per_hour": round(best_single, 2) if best_single else None,
            "best_single_over_ours": round(best_single / cost, 3) if best_single else None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            # the largest worker process (large fleets' groups; it shares the pages it did not write with this one)
            "worker_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024), "validated": True}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,20,100,500,2000")
    ap.add_argument("--out", default=str(ROOT / "bench/out"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process mode
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # child process mode (bench.variants)
    ap.add_argument("--aggregated", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, TIME_LIMITS_S.get(args.one, 60), args.threads, args.variant,
                                 args.aggregated)))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"CP-SAT workers {args.threads}")
    rows = []
    cols = ["deployments", "time_limit_s", "prepare_s", "solve_s", "status", "cost_per_hour", "bound_per_hour", "gap",
            "greedy_over_ours", "best_single_over_ours", "peak_rss_mib", "worker_rss_mib"]
    print("  ".join(f"{c:>14}" for c in cols), flush=True)
    for n in [int(x) for x in args.sizes.split(",")]:
        out = subprocess.run([sys.executable, "-m", "bench.scale", "--one", str(n), "--threads", str(args.threads)],
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{n}: failed\n{out.stderr[-2000:]}")
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print("  ".join(f"{str(row[c]):>14}" for c in cols), flush=True)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    pd.DataFrame(rows).to_csv(outdir / "scale.csv", index=False)
    if rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["deployments"] for r in rows], [r["solve_s"] for r in rows], "o-", label="solve time (s)")
        ax.set_xscale("log")
        ax.set_xlabel("deployments")
        ax.set_ylabel("seconds")
        ax2 = ax.twinx()
        ax2.plot([r["deployments"] for r in rows], [100 * (r["gap"] or 0) for r in rows], "s--", color="tab:red",
                 label="gap (%)")
        ax2.set_ylabel("gap to the lower bound (%)")
        ax.set_title("planner solve: time and gap vs fleet size")
        fig.legend(loc="upper left", fontsize=8)
        fig.savefig(outdir / "scale.png", bbox_inches="tight")
    print(f"wrote {outdir / 'scale.csv'}")


if __name__ == "__main__":
    main()
