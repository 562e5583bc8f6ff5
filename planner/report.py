"""Render a Solution: a readable terminal report (rich), JSON (DESIGN section 5), CSV and Markdown."""

from __future__ import annotations

import json

from rich.console import Group
from rich.table import Table
from rich.text import Text

from planner.solution import Solution

GIB = 2**30
BAR_WIDTH = 40
BAR_PARTS = (("weights", "W", "blue"), ("kv_cache", "K", "green"), ("activations", "A", "yellow"),
             ("overhead", "O", "magenta"))


def gpu_bar(gpu, width: int = BAR_WIDTH) -> Text:
    """W weights, K KV cache, A activation workspace, O overhead, '.' headroom, scaled to the usable bytes."""
    totals = {"weights": 0, "kv_cache": 0, "activations": 0, "overhead": 0}
    for sh in gpu.shards:
        totals["weights"] += sh.weights_bytes
        totals["kv_cache"] += sh.kv_cache_bytes
        totals["activations"] += sh.activation_bytes
        totals["overhead"] += sh.overhead_bytes
    bar = Text()
    used_cells = 0
    for key, char, style in BAR_PARTS:
        cells = round(totals[key] / gpu.usable_bytes * width)
        cells = min(cells, width - used_cells)
        bar.append(char * cells, style=style)
        used_cells += cells
    bar.append("." * (width - used_cells), style="dim")
    return bar


def held_and_capacity(d) -> tuple[str, str]:
    """('held / required', 'capacity (x)') cells of a deployment, for sequences or for load."""
    if d.mode == "throughput":
        load = sum(r.load or 0 for r in d.replicas)
        return f"load {load:.2f} on {len(d.replicas)}", f"{1 + d.headroom:.2f}x"
    held = sum(r.concurrency for r in d.replicas)
    return f"{held} / {d.concurrency_required}", f"{d.concurrency_capacity} ({1 + d.headroom:.1f}x)"


def slo_line(d) -> str:
    """Predicted latency per replica against the SLO, and which cap binds; or the bucket assignment."""
    if d.mode == "throughput":
        cells = "; ".join(f"bucket {b.bucket} ({b.prompt_tokens}+{b.output_tokens} tokens, {b.requests_per_s:g} "
                          f"req/s) -> {b.gpu} tp {b.tp} at {b.replica_requests_per_s:g} req/s per replica "
                          f"({b.source})" for b in d.buckets)
        return f"{d.name}: {cells}"
    target = ", ".join(f"{k} {v:g}" for k, v in (d.slo or {}).items())
    reps = "; ".join(f"#{r.replica} TPOT {r.tpot_ms:.1f} ms at {r.concurrency} seqs, TTFT {r.ttft_ms:.0f} ms, "
                     f"cap {r.cap}" for r in d.replicas if r.tpot_ms is not None)
    return f"{d.name} (SLO {target}): {reps}"


def summary_lines(sol: Solution) -> list[str]:
    lines = [f"scenario {sol.scenario}: {sol.status}"]
    if sol.status != "infeasible":
        bound = "-" if sol.bound.per_hour is None else f"${sol.bound.per_hour:,.2f}/h"
        gap = "-" if sol.gap is None else f"{sol.gap:.2%}"
        lines.append(f"cost ${sol.cost.per_hour:,.2f}/h = ${sol.cost.per_month:,.0f}/month; best bound {bound}; "
                     f"gap {gap}; solved by {sol.solver} in {sol.solve_seconds:.2f}s")
    return lines


def render_table(sol: Solution) -> Group:
    parts: list = [Text("\n".join(summary_lines(sol)), style="bold")]
    if sol.infeasible:
        for inf in sol.infeasible:
            parts.append(Text(f"\nCannot place {inf.deployment or 'the scenario'}: {inf.reason}", style="red"))
            for fix in inf.fixes:
                parts.append(Text(f"  fix: {fix}"))
    if sol.instances:
        fleet = Table(title="fleet")
        for c in ("instance", "type", "GPU", "$/h", "owned"):
            fleet.add_column(c, justify="right" if c == "$/h" else "left")
        for inst in sol.instances:
            fleet.add_row(inst.id, inst.type, f"{len(inst.gpus)} x {inst.gpu}", f"{inst.price_per_hour:,.2f}",
                          "yes" if inst.owned else "")
        parts.append(fleet)
        gpus = Table(title="GPU memory (W weights, K KV cache, A activations, O overhead, . headroom)")
        for c in ("GPU", "usage", "used GiB", "usable GiB", "headroom", "shards"):
            gpus.add_column(c, justify="left" if c in ("GPU", "usage", "shards") else "right")
        for inst in sol.instances:
            for g in inst.gpus:
                shards = ", ".join(f"{s.deployment}#{s.replica}.{s.rank}" for s in g.shards) or "(idle)"
                gpus.add_row(f"{inst.id}/gpu{g.index}", gpu_bar(g), f"{g.used_bytes / GIB:,.1f}",
                             f"{g.usable_bytes / GIB:,.1f}", f"{g.headroom_bytes / g.usable_bytes:.0%}", shards)
        parts.append(gpus)
    if sol.deployments:
        deps = Table(title="deployments")
        for c in ("deployment", "model", "dtype/KV", "replicas", "TP", "placement", "held / required",
                  "capacity"):
            deps.add_column(c, justify="right" if c in ("replicas", "held / required", "capacity") else "left")
        for d in sol.deployments:
            held, capacity = held_and_capacity(d)
            tps = sorted({r.tp for r in d.replicas})
            placement = "; ".join(f"{r.instance}:{','.join(map(str, r.gpu_indices))}" for r in d.replicas)
            deps.add_row(d.name, d.model, f"{d.dtype}/{d.kv_dtype}", str(len(d.replicas)),
                         ",".join(map(str, tps)), placement, held, capacity)
        parts.append(deps)
        slo_lines = [slo_line(d) for d in sol.deployments if d.slo or d.mode == "throughput"]
        if slo_lines:
            parts.append(Text("\n".join(slo_lines)))
        parts.append(Text(f"KV cache sized on {sol.deployments[0].kv_sized_on} request lengths"))
    if sol.baselines:
        parts.append(Text(baseline_line(sol)))
    for note in sol.notes:
        parts.append(Text(f"note: {note}", style="italic"))
    return Group(*parts)


def baseline_line(sol: Solution) -> str:
    """'single-GPU-type fleets: a100 $27.45/h, l4 infeasible, ...; this plan saves 12.3% against the best'."""
    def figure(b) -> str:
        if b.cost_per_hour is None:
            return "no plan in time" if b.status == "unknown" else b.status
        return f"${b.cost_per_hour:,.2f}/h" + (
            " (first-fit)" if b.method == "greedy" else "" if b.status == "optimal" else " (time-limited)")

    items = [f"{b.gpu} {figure(b)}" for b in sol.baselines]
    saving = "" if sol.saving_vs_best_single_gpu is None else (
        f"; this plan costs {sol.saving_vs_best_single_gpu:.1%} less than the best of them")
    return "single-GPU-type fleets: " + ", ".join(items) + saving


def shard_rows(sol: Solution) -> list[dict]:
    """One row per shard (or per idle GPU): the flat table CSV and Markdown share."""
    rows = []
    for inst in sol.instances:
        for g in inst.gpus:
            base = {"scenario": sol.scenario, "status": sol.status, "instance": inst.id, "type": inst.type,
                    "gpu": inst.gpu, "gpu_index": g.index, "price_per_hour": inst.price_per_hour,
                    "owned": inst.owned, "usable_bytes": g.usable_bytes, "used_bytes": g.used_bytes,
                    "headroom_bytes": g.headroom_bytes}
            if not g.shards:
                rows.append({**base, "deployment": "", "replica": "", "rank": "", "shard_bytes": 0})
            for s in g.shards:
                rows.append({**base, "deployment": s.deployment, "replica": s.replica, "rank": s.rank,
                             "shard_bytes": s.bytes})
    return rows


def render_csv(sol: Solution) -> str:
    import pandas as pd

    rows = shard_rows(sol)
    if not rows:
        rows = [{"scenario": sol.scenario, "status": sol.status,
                 "reason": "; ".join(i.reason for i in sol.infeasible)}]
    return pd.DataFrame(rows).to_csv(index=False)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render_markdown(sol: Solution) -> str:
    lines = [f"# Plan: {sol.scenario}", "", *[f"- {s}" for s in summary_lines(sol)], ""]
    for inf in sol.infeasible:
        lines += [f"**Cannot place {inf.deployment or 'the scenario'}**: {inf.reason}", ""]
        lines += [f"- fix: {f}" for f in inf.fixes] + [""]
    if sol.instances:
        lines += ["## Fleet", "", markdown_table(
            ["instance", "type", "GPUs", "$/h", "owned"],
            [[i.id, i.type, f"{len(i.gpus)} x {i.gpu}", f"{i.price_per_hour:,.2f}", "yes" if i.owned else ""]
             for i in sol.instances]), ""]
        lines += ["## GPUs", "", markdown_table(
            ["GPU", "used GiB", "usable GiB", "headroom", "shards"],
            [[f"{i.id}/gpu{g.index}", f"{g.used_bytes / GIB:,.1f}", f"{g.usable_bytes / GIB:,.1f}",
              f"{g.headroom_bytes / g.usable_bytes:.0%}",
              ", ".join(f"{s.deployment}#{s.replica}.{s.rank}" for s in g.shards) or "(idle)"]
             for i in sol.instances for g in i.gpus]), ""]
    if sol.deployments:
        lines += ["## Deployments", "", markdown_table(
            ["deployment", "model", "replicas", "TP", "held / required", "capacity"],
            [[d.name, d.model, len(d.replicas), ",".join(sorted({str(r.tp) for r in d.replicas})),
              *held_and_capacity(d)] for d in sol.deployments]), ""]
        lines += [f"- {slo_line(d)}" for d in sol.deployments if d.slo or d.mode == "throughput"]
        lines += [f"- KV cache sized on {sol.deployments[0].kv_sized_on} request lengths", ""]
    if sol.baselines:
        lines += [f"- {baseline_line(sol)}", ""]
    lines += [f"> {n}" for n in sol.notes]
    return "\n".join(lines).rstrip() + "\n"


def render_json(sol: Solution) -> str:
    return json.dumps(sol.model_dump(mode="json"), indent=2) + "\n"
