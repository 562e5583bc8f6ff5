"""`planner report`: one report over several scenarios for an infra team, with the change since the last report.

The JSON form is also the input of the next run's `--previous`, so a weekly job can say what moved.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
from typing import Any

from pydantic import BaseModel

from planner import __version__
from planner import constants as C
from planner.report import markdown_table

GIB = 2**30


class HeadroomFall(BaseModel):
    scenario: str
    deployment: str
    before: float
    after: float


class ReportDiff(BaseModel):
    previous_generated_at: str | None
    cost_delta_per_hour: float
    cost_delta_per_month: float
    instances_added: dict[str, int]
    instances_removed: dict[str, int]
    headroom_fell: list[HeadroomFall]
    scenarios_added: list[str]
    scenarios_removed: list[str]


class FleetReport(BaseModel):
    generated_at: str
    planner_version: str
    scenarios: list[dict[str, Any]]
    total_cost_per_hour: float
    total_cost_per_month: float
    instance_mix: dict[str, int]
    gpu_mix: dict[str, int]
    min_concurrency_headroom: float | None
    min_gpu_headroom: float | None
    infeasible: list[str]
    assumptions: dict[str, list[str]]
    diff: ReportDiff | None = None


def _sum_mix(solutions: list[dict], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in solutions:
        for k, n in ((s.get("summary") or {}).get(key) or {}).items():
            out[k] = out.get(k, 0) + n
    return dict(sorted(out.items()))


def _headrooms(solutions: list[dict]) -> dict[tuple[str, str], float]:
    def headroom(d: dict) -> float:  # reports written before `headroom` existed carry only the concurrency pair
        return d["headroom"] if "headroom" in d else d["concurrency_capacity"] / d["concurrency_required"] - 1

    return {(s["scenario"], d["name"]): headroom(d) for s in solutions for d in s.get("deployments", [])}


def assumptions_for(prep) -> list[str]:
    """What a reader must know to trust a scenario's numbers: policy, memory constants, price dates."""
    pol = prep.scenario.policy
    dates = sorted({f"{o.id}: {prep.catalog.instances[o.id].as_of}" for o in prep.offers
                    if o.id in prep.catalog.instances and prep.catalog.instances[o.id].as_of})
    lines = [
        f"gpu_memory_utilization {pol.gpu_memory_utilization}, min_free_fraction {pol.min_free_fraction}, "
        f"colocate {pol.colocate}, max_tp {pol.max_tp}, KV sized on {pol.size_kv_on} lengths",
        f"per-GPU runtime overhead: CUDA context {C.CUDA_CONTEXT_BYTES // C.MIB_BYTES} MiB, libraries "
        f"{C.NON_TORCH_BYTES // C.MIB_BYTES} MiB, CUDA graphs {C.CUDA_GRAPH_BYTES // C.MIB_BYTES} MiB, NCCL "
        f"{C.NCCL_NVLINK_BYTES_PER_RANK // C.MIB_BYTES} MiB (NVLink) or {C.NCCL_PCIE_BYTES_PER_RANK // C.MIB_BYTES} MiB (PCIe) when tp > 1",
        f"prices per hour, {C.HOURS_PER_MONTH:.0f} hours per month; price dates: " + (", ".join(dates) or "custom"),
    ]
    for d in prep.demands:
        lines.append(f"{d.name}: {d.model} in {d.dtype} (KV {d.kv_dtype}), {d.concurrency} sequences of "
                     f"{d.context_tokens} tokens")
    return lines


def build(solutions: list[dict], assumptions: dict[str, list[str]], previous: dict | None = None,
          now: dt.datetime | None = None) -> FleetReport:
    feasible = [s for s in solutions if s["status"] != "infeasible"]
    total = round(sum(s["cost"]["per_hour"] for s in feasible), 6)
    heads = _headrooms(feasible)
    gpu_heads = [(s.get("summary") or {}).get("min_gpu_headroom_fraction") for s in feasible]
    gpu_heads = [h for h in gpu_heads if h is not None]
    report = FleetReport(
        generated_at=(now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        planner_version=__version__, scenarios=solutions, total_cost_per_hour=total,
        total_cost_per_month=round(total * C.HOURS_PER_MONTH, 2), instance_mix=_sum_mix(feasible, "instance_mix"),
        gpu_mix=_sum_mix(feasible, "gpu_mix"),
        min_concurrency_headroom=round(min(heads.values()), 4) if heads else None,
        min_gpu_headroom=min(gpu_heads) if gpu_heads else None,
        infeasible=[s["scenario"] for s in solutions if s["status"] == "infeasible"], assumptions=assumptions)
    if previous is not None:
        report.diff = diff(previous, report)
    return report


def diff(previous: dict, current: FleetReport) -> ReportDiff:
    """What changed since `previous` (a report JSON): cost, instances, deployments whose headroom fell."""
    before_mix, after_mix = previous.get("instance_mix") or {}, current.instance_mix
    added = {t: after_mix.get(t, 0) - before_mix.get(t, 0) for t in after_mix
             if after_mix.get(t, 0) > before_mix.get(t, 0)}
    removed = {t: before_mix.get(t, 0) - after_mix.get(t, 0) for t in before_mix
               if before_mix.get(t, 0) > after_mix.get(t, 0)}
    prev_sols = [s for s in previous.get("scenarios", []) if s.get("status") != "infeasible"]
    before, after = _headrooms(prev_sols), _headrooms([s for s in current.scenarios if s["status"] != "infeasible"])
    fell = [HeadroomFall(scenario=k[0], deployment=k[1], before=round(before[k], 4), after=round(after[k], 4))
            for k in sorted(set(before) & set(after)) if after[k] < before[k] - 1e-9]
    prev_names = {s["scenario"] for s in previous.get("scenarios", [])}
    cur_names = {s["scenario"] for s in current.scenarios}
    delta = current.total_cost_per_hour - float(previous.get("total_cost_per_hour", 0.0))
    return ReportDiff(previous_generated_at=previous.get("generated_at"), cost_delta_per_hour=round(delta, 6),
                      cost_delta_per_month=round(delta * C.HOURS_PER_MONTH, 2), instances_added=added,
                      instances_removed=removed, headroom_fell=fell,
                      scenarios_added=sorted(cur_names - prev_names), scenarios_removed=sorted(prev_names - cur_names))


def alerts(report: FleetReport, fail_under_headroom: float | None, fail_over_budget: float | None) -> list[str]:
    """Threshold breaches (each one line); any infeasible scenario is one too."""
    out = [f"scenario {n} is infeasible" for n in report.infeasible]
    if fail_under_headroom is not None:
        for s in report.scenarios:
            for d in s.get("deployments", []):
                h = d["headroom"]
                if h < fail_under_headroom:
                    out.append(f"{s['scenario']}/{d['name']}: concurrency headroom {h:.1%} < {fail_under_headroom:.1%}")
    if fail_over_budget is not None and report.total_cost_per_month > fail_over_budget:
        out.append(f"total cost ${report.total_cost_per_month:,.0f}/month > budget ${fail_over_budget:,.0f}/month")
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _summary_rows(r: FleetReport) -> list[list[str]]:
    rows = [["total cost", f"${r.total_cost_per_hour:,.2f}/h = ${r.total_cost_per_month:,.0f}/month"],
            ["fleet", ", ".join(f"{n}x {t}" for t, n in r.instance_mix.items()) or "-"],
            ["GPUs", ", ".join(f"{n}x {g}" for g, n in r.gpu_mix.items()) or "-"],
            ["min concurrency headroom", _pct(r.min_concurrency_headroom)],
            ["min GPU memory headroom", _pct(r.min_gpu_headroom)]]
    if r.infeasible:
        rows.append(["infeasible scenarios", ", ".join(r.infeasible)])
    return rows


def _diff_rows(d: ReportDiff) -> list[list[str]]:
    rows = [["since", d.previous_generated_at or "-"],
            ["cost change", f"{d.cost_delta_per_hour:+,.2f} USD/h ({d.cost_delta_per_month:+,.0f} USD/month)"],
            ["instances added", ", ".join(f"+{n} {t}" for t, n in d.instances_added.items()) or "none"],
            ["instances removed", ", ".join(f"-{n} {t}" for t, n in d.instances_removed.items()) or "none"],
            ["headroom fell", "; ".join(f"{h.scenario}/{h.deployment} {h.before:.1%} -> {h.after:.1%}"
                                        for h in d.headroom_fell) or "none"]]
    if d.scenarios_added or d.scenarios_removed:
        rows.append(["scenarios", f"added {d.scenarios_added or '-'}, removed {d.scenarios_removed or '-'}"])
    return rows


def _scenario_tables(s: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    tables = []
    if s["status"] == "infeasible":
        rows = [[i.get("deployment") or "-", i["reason"], "; ".join(i["fixes"])] for i in s.get("infeasible", [])]
        return [("Cannot be placed", ["deployment", "why", "fixes"], rows)]
    tables.append(("Fleet", ["instance", "type", "GPUs", "USD/h", "owned"],
                   [[i["id"], i["type"], f"{len(i['gpus'])}x {i['gpu']}", f"{i['price_per_hour']:,.2f}",
                     "yes" if i["owned"] else ""] for i in s["instances"]]))
    tables.append(("Deployments", ["deployment", "model", "replicas", "TP", "required", "capacity", "headroom"],
                   [[d["name"], d["model"], str(len(d["replicas"])),
                     ",".join(sorted({str(r["tp"]) for r in d["replicas"]})),
                     str(d["concurrency_required"]) if d.get("mode", "concurrency") == "concurrency" else "(rate)",
                     str(d["concurrency_capacity"]) if d.get("mode", "concurrency") == "concurrency" else "(rate)",
                     _pct(d["headroom"])]
                    for d in s["deployments"]]))
    if s.get("baselines"):
        tables.append(("Single-GPU-type baselines", ["GPU type", "status", "USD/h"],
                       [[b["gpu"], b["status"] + (" (first-fit)" if b.get("method") == "greedy" else ""),
                         "-" if b["cost_per_hour"] is None else f"{b['cost_per_hour']:,.2f}"]
                        for b in s["baselines"]]))
    return tables


def _headline(s: dict) -> str:
    if s["status"] == "infeasible":
        return "infeasible"
    saving = s.get("saving_vs_best_single_gpu")
    extra = "" if saving is None else f"; {saving:.1%} cheaper than the best single-GPU-type fleet"
    return (f"{s['status']}, ${s['cost']['per_hour']:,.2f}/h = ${s['cost']['per_month']:,.0f}/month, gap "
            f"{_pct(s.get('gap'))}{extra}")


def render_markdown(r: FleetReport, alerts_: list[str]) -> str:
    out = [f"# Fleet report ({r.generated_at})", "", markdown_table(["", "value"], _summary_rows(r)), ""]
    if alerts_:
        out += ["## Alerts", ""] + [f"- {a}" for a in alerts_] + [""]
    if r.diff:
        out += ["## Change since the last report", "", markdown_table(["", "value"], _diff_rows(r.diff)), ""]
    for s in r.scenarios:
        out += [f"## {s['scenario']}", "", _headline(s), ""]
        for title, headers, rows in _scenario_tables(s):
            out += [f"### {title}", "", markdown_table(headers, rows), ""]
        out += ["### Assumptions", ""] + [f"- {a}" for a in r.assumptions.get(s["scenario"], [])] + [""]
    return "\n".join(out)


def _svg(text: str) -> str:
    return text[text.index("<svg"):]


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3}.alert{color:#a00;font-weight:bold}figure{margin:1em 0}figure svg{max-width:100%;height:auto}
.chart{display:inline-block;vertical-align:top;margin-right:1em}"""


def render_html(r: FleetReport, alerts_: list[str]) -> str:
    """One self-contained HTML file: inline CSS and inline SVG charts, no scripts, no network."""
    from planner.charts import cost_by_instance_svg, gpu_memory_svg, headroom_svg

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Fleet report</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Fleet report</h1><p>generated {html.escape(r.generated_at)} by planner {r.planner_version}</p>",
             "<h2>Summary</h2>", _html_table(["", "value"], _summary_rows(r))]
    if alerts_:
        parts.append("<h2>Alerts</h2><ul>" + "".join(f"<li class='alert'>{html.escape(a)}</li>" for a in alerts_)
                     + "</ul>")
    if r.diff:
        parts += ["<h2>Change since the last report</h2>", _html_table(["", "value"], _diff_rows(r.diff))]
    for s in r.scenarios:
        parts.append(f"<h2>{html.escape(s['scenario'])}</h2><p>{html.escape(_headline(s))}</p>")
        if s["status"] != "infeasible":
            for svg in (cost_by_instance_svg(s), gpu_memory_svg(s), headroom_svg(s)):
                parts.append(f"<figure class='chart'>{_svg(svg)}</figure>")
        for title, headers, rows in _scenario_tables(s):
            parts += [f"<h3>{html.escape(title)}</h3>", _html_table(headers, rows)]
        parts.append("<h3>Assumptions</h3><ul>" + "".join(
            f"<li>{html.escape(a)}</li>" for a in r.assumptions.get(s["scenario"], [])) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_csv(r: FleetReport) -> str:
    import pandas as pd

    rows = []
    for s in r.scenarios:
        summary = s.get("summary") or {}
        rows.append({"generated_at": r.generated_at, "scenario": s["scenario"], "status": s["status"],
                     "cost_per_hour": s["cost"]["per_hour"] if s["status"] != "infeasible" else None,
                     "cost_per_month": s["cost"]["per_month"] if s["status"] != "infeasible" else None,
                     "instances": " + ".join(f"{n}x {t}" for t, n in (summary.get("instance_mix") or {}).items()),
                     "min_concurrency_headroom": summary.get("min_concurrency_headroom"),
                     "min_gpu_headroom": summary.get("min_gpu_headroom_fraction"),
                     "saving_vs_best_single_gpu": s.get("saving_vs_best_single_gpu")})
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    return buf.getvalue()


def render_json(r: FleetReport) -> str:
    return json.dumps(r.model_dump(mode="json"), indent=2) + "\n"
