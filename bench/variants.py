"""Scenario kinds beyond the default fleet: a quota that binds nothing and one that binds, owned boxes, no
co-location, deployments sized by load, a custom box of six GPUs.

    python -m bench.variants [--sizes 100,500]
                             [--variants quota,binding-quota,owned,no-colocation,load-sized,six-gpu-box]
                             [--out bench/out]

Each synthetic fleet (bench/fleet.py) is changed by one of bench.fleet.VARIANTS and solved twice, each time in a
fresh process (bench/scale.py's child mode) with the time limit of bench/scale.py: by the column generation path,
and by the aggregated fleet model that such scenarios took until the seventh session. Every plan goes through the
independent validator. Prints cost, bound and gap of both and the ratio of their costs; writes variants.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.fleet import VARIANTS

ROOT = Path(__file__).resolve().parent.parent


def _child(n: int, variant: str, threads: int, aggregated: bool) -> dict | None:
    cmd = [sys.executable, "-m", "bench.scale", "--one", str(n), "--threads", str(threads), "--variant", variant]
    out = subprocess.run(cmd + (["--aggregated"] if aggregated else []), cwd=ROOT, capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        print(f"{variant} {n}{' aggregated' if aggregated else ''}: failed\n{out.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=str(ROOT / "bench/out"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    cols = ["variant", "deployments", "status", "cost", "bound", "gap", "aggregated cost", "aggregated bound",
            "aggregated / ours"]
    print("  ".join(f"{c:>16}" for c in cols), flush=True)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        for variant in args.variants.split(","):
            ours, old = (_child(n, variant, args.threads, aggregated) for aggregated in (False, True))
            if ours is None or old is None:
                continue
            row = {"variant": variant, "deployments": n, "status": ours["status"], "solver": ours["solver"],
                   "cost": ours["cost_per_hour"], "bound": ours["bound_per_hour"], "gap": ours["gap"],
                   "solve_s": ours["solve_s"], "peak_rss_mib": ours["peak_rss_mib"],
                   "aggregated cost": old["cost_per_hour"], "aggregated bound": old["bound_per_hour"],
                   "aggregated gap": old["gap"],
                   "aggregated / ours": round(old["cost_per_hour"] / ours["cost_per_hour"], 3)}
            rows.append(row)
            print("  ".join(f"{row[c]!s:>16}" for c in cols), flush=True)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    pd.DataFrame(rows).to_csv(outdir / "variants.csv", index=False)
    print(f"wrote {outdir / 'variants.csv'}")


if __name__ == "__main__":
    main()
