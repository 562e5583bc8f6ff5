"""Synthetic fleets for scale benchmarks: realistic deployments drawn from the catalog with a fixed seed.

Models and weight formats are drawn from a serving mix (mostly 7-14B, some 30-70B, a few MoE and very large
models), concurrency log-uniform 4-256, prompt 256-8192 and output 64-2048 tokens, replicas.min 2 for a fifth of
them. The whole instance catalog is allowed (on-prem boxes excepted, as in any scenario).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

MIX: list[tuple[str, str, float]] = [  # (catalog id, weight format, weight in the draw)
    ("qwen2.5-0.5b", "bf16", 2), ("llama-3.2-1b", "bf16", 3), ("llama-3.2-3b", "bf16", 3), ("qwen3-0.6b", "bf16", 2),
    ("llama-3.1-8b", "bf16", 12), ("llama-3.1-8b", "fp8", 6), ("qwen2.5-7b", "bf16", 8), ("mistral-7b", "bf16", 4),
    ("qwen3-8b", "bf16", 6), ("gemma-2-9b", "bf16", 4), ("qwen2.5-14b", "bf16", 5), ("phi-3-medium-4k-instruct", "bf16", 2),
    ("gemma-2-27b", "bf16", 2), ("qwen2.5-32b", "bf16", 3), ("qwen2.5-coder-32b", "awq-int4", 2),
    ("qwen3-30b-a3b", "bf16", 2), ("mixtral-8x7b", "bf16", 2), ("llama-3.1-70b", "bf16", 4),
    ("llama-3.3-70b", "fp8", 4), ("llama-3.1-70b", "awq-int4", 2), ("qwen2.5-72b", "bf16", 2),
    ("gpt-oss-20b", "mxfp4", 2),
]


def synthetic_scenario(n: int, seed: int = 0, time_limit_s: float = 60.0) -> dict[str, Any]:
    """A scenario dict (ready for planner.scenario.parse_scenario) with `n` deployments."""
    rng = random.Random(seed)
    deployments = []
    for i in range(n):
        model, fmt, _ = rng.choices(MIX, weights=[w for *_, w in MIX])[0]
        concurrency = int(round(2 ** rng.uniform(2, 8)))
        d = {"name": f"d{i:04d}", "model": model, "dtype": fmt,
             "workload": {"concurrency": concurrency, "prompt_tokens": int(2 ** rng.uniform(8, 13)),
                          "output_tokens": int(2 ** rng.uniform(6, 11))}}
        if rng.random() < 0.2:
            d["replicas"] = {"min": 2}
        deployments.append(d)
    return {"name": f"synthetic-{n}", "policy": {"time_limit_s": time_limit_s}, "deployments": deployments}


# Scenario kinds beyond the default fleet (bench/variants.py): each a change to the synthetic scenario dict.
def _quota(data: dict[str, Any]) -> None:  # a quota that binds nothing: only the way the solver sees it changes
    data["gpus"] = {"max_instances": {"aws/p5.48xlarge": 1000}}


def _binding_quota(data: dict[str, Any]) -> None:  # the RTX A6000, the type these fleets want, capped at 19 GPUs
    data["gpus"] = {"max_instances": {"lambda/gpu_1x_a6000": 2, "lambda/gpu_2x_a6000": 1, "lambda/gpu_4x_a6000": 1,
                                      "runpod/1x_RTXA6000": 3, "runpod/8x_RTXA6000": 1}}


def _six_gpu_box(data: dict[str, Any]) -> None:  # a 6 x RTX A6000 box below the cloud's price per GPU
    data["gpus"] = {"custom_instances": [{"name": "onprem/6x-rtx-a6000", "gpu": "rtx-a6000-48gb", "count": 6,
                                          "nvlink": False, "price_usd_per_hour": 2.7}]}


def _owned(data: dict[str, Any]) -> None:  # four 8 x A100 boxes already bought (their amortised price is charged)
    data["gpus"] = {"owned": {"onprem/hgx-a100-80gb-8x": 4}}


def _no_colocation(data: dict[str, Any]) -> None:  # every GPU holds one replica's shard
    data["policy"]["colocate"] = False


def load_sized(data: dict[str, Any], count: int = 5, requests_per_s: float = 5.0,
               buckets: tuple[tuple[float, float, float], ...] = ((1.0, 1.0, 1.0),)) -> None:
    """The first `count` deployments sized by load (Melange-style) at `requests_per_s` each: one bucket per
    (prompt factor, output factor, share of the requests) in `buckets`, lengths the deployment's own times the
    factors."""
    for d in data["deployments"][:count]:
        w = d.pop("workload")
        d["workload"] = {"buckets": [{"prompt_tokens": int(w["prompt_tokens"] * fp),
                                      "output_tokens": int(w["output_tokens"] * fo), "share": share}
                                     for fp, fo, share in buckets]}
        d["slo"] = {"requests_per_s": requests_per_s}


VARIANTS = {"quota": _quota, "binding-quota": _binding_quota, "owned": _owned, "no-colocation": _no_colocation,
            "load-sized": load_sized, "six-gpu-box": _six_gpu_box}


def prepared(data: dict[str, Any], directory: Path, name: str = "synthetic.yaml"):
    """Scenario `data` written to `directory`/`name` (safe YAML) and prepared: (prepared scenario, its path). The
    path must outlive what reads the file again (the validator's rules)."""
    import yaml

    from planner.plan import prepare
    from planner.scenario import parse_scenario

    path = Path(directory) / name
    path.write_text(yaml.safe_dump(data))
    return prepare(path, parse_scenario(data, str(path))), path
