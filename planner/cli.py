"""Thin click layer: parse flags, call the library, render. Heavy imports (OR-Tools, pandas) stay inside the
commands that need them so `planner estimate` starts fast."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import click

from planner.errors import InputError, PlannerError

FORMATS_TABLE_JSON = ("table", "json")


def _emit(text: str, out: str | None) -> None:
    """Write results to stdout, or atomically to `out` (temp file in the same folder, then rename)."""
    if not out:
        click.echo(text, nl=not text.endswith("\n"))
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide reports from the team that reads them
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"wrote {path}", err=True)


def _to_json(obj: Any) -> str:
    if isinstance(obj, list):
        return json.dumps([o.model_dump(mode="json") if hasattr(o, "model_dump") else o for o in obj], indent=2)
    return json.dumps(obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj, indent=2)


def _render_table(renderable: Any) -> str:
    from rich.console import Console

    console = Console(record=True, width=int(os.environ.get("COLUMNS", "160")), file=open(os.devnull, "w"),
                      force_terminal=False)
    console.print(renderable)
    return console.export_text()


def output_options(formats: tuple[str, ...] = FORMATS_TABLE_JSON) -> Callable:
    """Shared --format/--out options (one decorator for every command, as sqlite-utils does)."""

    def decorator(fn: Callable) -> Callable:
        fn = click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
                          help="Write the result to FILE (atomically) instead of stdout.")(fn)
        fn = click.option("--format", "fmt", type=click.Choice(formats), default=formats[0], show_default=True,
                          help="Output format.")(fn)
        return fn

    return decorator


def model_options(fn: Callable) -> Callable:
    """Flags shared by `estimate` and `fit`: how the model is stored and served."""
    opts = [
        click.option("--dtype", default=None, help="Weight format: fp32 fp16 bf16 fp8 int8 awq-int4 gptq-int4 "
                                                    "mxfp4 (default: the checkpoint's own)."),
        click.option("--quant", default=None, help="Alias of --dtype for quantized formats (awq-int4, ...)."),
        click.option("--kv-dtype", default="auto", show_default=True, help="KV-cache dtype: auto fp16 bf16 fp8."),
        click.option("--context", type=int, default=4096, show_default=True,
                     help="Tokens per sequence (prompt + output)."),
        click.option("--concurrency", type=int, default=1, show_default=True,
                     help="Simultaneous sequences held in the KV cache."),
        click.option("--max-batched-tokens", type=int, default=None,
                     help="vLLM max_num_batched_tokens (prefill chunk; default 8192)."),
        click.option("--max-num-seqs", type=int, default=None, help="vLLM max_num_seqs (default 256)."),
        click.option("--gpu-memory-utilization", type=float, default=None,
                     help="Fraction of each GPU vLLM may use (default 0.90)."),
        click.option("--block-size", type=int, default=None, help="Paged-attention block in tokens (default 16)."),
        click.option("--params", type=float, default=None,
                     help="Explicit model: total parameters (use instead of MODEL)."),
        click.option("--kv-bytes-per-token", type=int, default=None,
                     help="Explicit model: KV bytes per token at 16-bit, tp 1."),
        click.option("--catalog", "catalog_dir", default=None, type=click.Path(file_okay=False),
                     help="Catalog folder (default: the repository's catalogs/)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _spec(model: str | None, params: float | None, kv_bytes_per_token: int | None, catalog_dir: str | None):
    from planner.catalog import load_catalog
    from planner.models import resolve_model

    catalog = load_catalog(catalog_dir)
    if model is None:
        if params is None:
            raise InputError("no model given", field="MODEL",
                             fix="name a catalog id (see `planner catalog models`), a config.json path, or give "
                                 "--params (and --kv-bytes-per-token)")
        explicit: dict[str, Any] = {"params": params}
        if kv_bytes_per_token is not None:
            explicit["kv_bytes_per_token"] = kv_bytes_per_token
        return resolve_model(explicit, catalog, field="--params"), catalog
    return resolve_model(model, catalog, Path.cwd()), catalog


def _check_positive(**values: int | float | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            flag = "--" + name.replace("_", "-")
            raise InputError(f"must be positive (got {value})", field=flag, fix=f"give {flag} a value > 0")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="planner")
def cli() -> None:
    """GPU capacity planner for LLM inference fleets.

    Exit codes: 0 success; 1 infeasible plan or a --fail-* threshold crossed; 2 bad input.
    """


@cli.command()
@click.argument("model", required=False)
@model_options
@click.option("--tp", type=int, default=1, show_default=True, help="Tensor-parallel degree.")
@click.option("--method", type=click.Choice(["detailed", "textbook", "rule-of-thumb"]), default="detailed",
              show_default=True, help="detailed (default), textbook (seed 000) or rule-of-thumb (seed 003).")
@click.option("--mode", type=click.Choice(["serve", "train"]), default="serve", show_default=True)
@click.option("--micro-batch", type=int, default=1, show_default=True, help="Training: sequences per micro-batch.")
@click.option("--dp", type=int, default=1, show_default=True, help="Training: data-parallel ranks.")
@click.option("--zero", "zero_stage", type=click.IntRange(0, 3), default=0, show_default=True,
              help="Training: ZeRO stage 0-3.")
@click.option("--checkpointing/--no-checkpointing", default=False, show_default=True,
              help="Training: full activation checkpointing.")
@output_options()
def estimate(model, dtype, quant, kv_dtype, context, concurrency, max_batched_tokens, max_num_seqs,
             gpu_memory_utilization, block_size, params, kv_bytes_per_token, catalog_dir, tp, method, mode,
             micro_batch, dp, zero_stage, checkpointing, fmt, out):
    """Memory one replica of MODEL needs (a catalog id, a config.json path or folder, or --params)."""
    _check_positive(context=context, concurrency=concurrency, tp=tp, max_batched_tokens=max_batched_tokens,
                    max_num_seqs=max_num_seqs, block_size=block_size, params=params, micro_batch=micro_batch, dp=dp)
    spec, _ = _spec(model, params, kv_bytes_per_token, catalog_dir)
    from planner.tables import estimate_table

    if mode == "train":
        from planner.training import train_estimate

        result = train_estimate(spec, quant or dtype or "bf16", micro_batch=micro_batch, seq_len=context, tp=tp,
                                dp=dp, zero_stage=zero_stage, checkpointing=checkpointing)
    else:
        from planner.estimate import estimate as run_estimate
        from planner.estimate import resolve_settings

        settings = resolve_settings(spec, quant or dtype, kv_dtype, tp, max_batched_tokens=max_batched_tokens,
                                    max_num_seqs=max_num_seqs, gpu_memory_utilization=gpu_memory_utilization,
                                    block_tokens=block_size)
        result = run_estimate(spec, settings, concurrency, context, method)
    _emit(_to_json(result) if fmt == "json" else _render_table(estimate_table(result)), out)


@cli.command()
@click.argument("model", required=False)
@model_options
@click.option("--gpu", "gpu_ids", multiple=True, help="Only these GPU ids (repeatable).")
@output_options()
def fit(model, dtype, quant, kv_dtype, context, concurrency, max_batched_tokens, max_num_seqs,
        gpu_memory_utilization, block_size, params, kv_bytes_per_token, catalog_dir, gpu_ids, fmt, out):
    """Every GPU / instance and TP degree MODEL fits on, cheapest first, and why the others fail."""
    _check_positive(context=context, concurrency=concurrency, max_batched_tokens=max_batched_tokens,
                    max_num_seqs=max_num_seqs, block_size=block_size, params=params)
    from planner.estimate import resolve_settings
    from planner.fit import fit as run_fit
    from planner.tables import fit_table

    spec, catalog = _spec(model, params, kv_bytes_per_token, catalog_dir)
    from planner.constants import vllm_scheduler_defaults

    def make(tp: int, gpu):
        """Settings on `gpu` (None: just check tp); unset scheduler knobs take vLLM's defaults for that GPU."""
        tokens, seqs = vllm_scheduler_defaults(gpu.id, gpu.memory_bytes) if gpu is not None else (None, None)
        return resolve_settings(
            spec, quant or dtype, kv_dtype, tp, max_batched_tokens=max_batched_tokens or tokens,
            max_num_seqs=max_num_seqs or seqs, gpu_memory_utilization=gpu_memory_utilization,
            block_tokens=block_size, nvlink=gpu is None or gpu.interconnect in ("nvlink", "infinity-fabric"))

    options = run_fit(spec, make, catalog, concurrency, context, list(gpu_ids) or None)
    title = f"{spec.id}: {concurrency} sequences x {context} tokens"
    _emit(_to_json(options) if fmt == "json" else _render_table(fit_table(options, title)), out)


@cli.command("catalog")
@click.argument("kind", type=click.Choice(["gpus", "instances", "models"]))
@click.option("--catalog", "catalog_dir", default=None, type=click.Path(file_okay=False),
              help="Catalog folder (default: the repository's catalogs/).")
@output_options()
def catalog_cmd(kind, catalog_dir, fmt, out):
    """List the GPU, instance or model catalog."""
    from planner.catalog import load_catalog
    from planner.tables import catalog_table

    cat = load_catalog(catalog_dir)
    rows: list[dict[str, Any]]
    if kind == "gpus":
        rows = [{**g.model_dump(mode="json"), "memory_bytes": g.memory_bytes} for g in cat.gpus.values()]
    elif kind == "instances":
        rows = [{**i.model_dump(mode="json"), "price_usd_per_hour": i.price_usd_per_hour,
                 "amortized_usd_per_hour": i.amortized_usd_per_hour} for i in cat.instances.values()]
    else:
        from planner.layout import params_active, params_total

        rows = []
        for m in cat.models.values():
            arch = m.architecture()
            total = params_total(arch)
            rows.append({"id": m.id, "hf_repo": m.hf_repo, "model_type": arch.model_type, "params_total": total,
                         "params_active": params_active(arch), "published_params": m.published_params,
                         "diff_pct": round(100 * (total - m.published_params) / m.published_params, 3),
                         "aliases": m.aliases, "config_source": m.config_source})
    _emit(json.dumps(rows, indent=2) if fmt == "json" else _render_table(catalog_table(kind, rows)), out)


def _log(msg: str) -> None:
    click.echo(f"[planner] {msg}", err=True)


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--time-limit", type=float, default=None,
              help="Seconds for the solve (default: policy.time_limit_s); the single-GPU-type baselines take up to "
                   "a quarter more.")
@click.option("--threads", type=int, default=None,
              help="CP-SAT workers, and on large fleets the parallel integer masters and worker processes "
                   "(default: policy.threads, 0 = all cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also price the cheapest fleet of each single GPU type, and the saving against the best.")
@output_options(("table", "json", "csv", "markdown"))
def solve(scenario, time_limit, threads, quiet, baselines, fmt, out):
    """Cheapest fleet for SCENARIO, every replica shard placed on a GPU, with headroom.

    Exits 1 when the scenario is infeasible (the report says which deployment and what would fit).
    """
    _check_positive(time_limit=time_limit)
    if threads is not None and threads < 0:
        raise InputError(f"must be >= 0 (got {threads})", field="--threads", fix="give 0 (all cores) or a count")
    from planner.plan import solve_file
    from planner.report import render_csv, render_json, render_markdown, render_table

    log = None if quiet else _log
    if log:
        log(f"solving {scenario}")
    solution = solve_file(scenario, time_limit_s=time_limit, threads=threads, log=log, baselines=baselines)
    text = {"json": render_json, "csv": render_csv, "markdown": render_markdown}.get(fmt)
    _emit(text(solution) if text else _render_table(render_table(solution)), out)
    if solution.status == "infeasible":
        sys.exit(1)


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
def validate(scenario):
    """Check SCENARIO's schema and every reference (models, GPUs, instances) without solving. Exit 0 or 2."""
    from planner.plan import prepare

    prep = prepare(scenario)
    n_opts = sum(len(d.options) for d in prep.demands)
    click.echo(f"{scenario}: OK ({len(prep.demands)} deployments, {len(prep.offers)} instance types, "
               f"{n_opts} replica options)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn domain errors into one-paragraph messages and exit codes."""
    try:
        cli.main(args=argv, prog_name="planner", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PlannerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


# The analysis commands register themselves on `cli` (imported last: they use the helpers above).
from planner import cli_analysis  # noqa: E402,F401

if __name__ == "__main__":  # `python -m planner.cli`: run the package's copy, on which every command registered
    from planner.cli import main as package_main

    package_main()
