"""Scenario files (DESIGN section 3): strict pydantic schema, safe YAML loading, errors with file + field path.

`load_scenario(path)` reads and validates the YAML; `resolve(scenario)` then checks every reference (models, GPU
ids, instance ids) against the catalog and returns the resolved objects the planner needs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from planner import constants as C
from planner.errors import InputError, did_you_mean
from planner.models import ExplicitModel

Strict = ConfigDict(extra="forbid", frozen=True)


class LengthDistribution(BaseModel):
    """Tokens per request as summary statistics; `policy.size_kv_on` picks which one sizes the KV cache."""

    model_config = Strict

    mean: float = Field(gt=0)
    p50: float | None = Field(default=None, gt=0)
    p95: float | None = Field(default=None, gt=0)
    max: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "LengthDistribution":
        chain = [(n, v) for n, v in (("p50", self.p50), ("p95", self.p95), ("max", self.max)) if v is not None]
        for (n1, v1), (n2, v2) in zip(chain, chain[1:]):
            if v2 < v1:
                raise ValueError(f"{n2} ({v2:g}) must be >= {n1} ({v1:g})")
        if self.max is not None and self.max < self.mean:
            raise ValueError(f"max ({self.max:g}) must be >= mean ({self.mean:g})")
        if self.p95 is not None and self.p95 < self.mean:
            raise ValueError(f"p95 ({self.p95:g}) must be >= mean ({self.mean:g}): request lengths are right-skewed")
        return self

    def at(self, statistic: str) -> int:
        """The value for `statistic` (mean | p95 | max), falling back to the next larger one that is given."""
        order = ["mean", "p50", "p95", "max"]
        for name in order[order.index(statistic):]:
            value = getattr(self, name)
            if value is not None:
                return int(-(-value // 1))
        return int(-(-self.mean // 1))


class Histogram(BaseModel):
    """Tokens per request as a histogram: [[tokens, share], ...]; shares need not sum to 1 (they are weights)."""

    model_config = Strict

    histogram: list[tuple[int, float]] = Field(min_length=1)

    @field_validator("histogram")
    @classmethod
    def _valid(cls, v: list[tuple[int, float]]) -> list[tuple[int, float]]:
        for tokens, share in v:
            if tokens <= 0:
                raise ValueError(f"token counts must be positive (got {tokens})")
            if share < 0:
                raise ValueError(f"shares must be >= 0 (got {share})")
        if sum(share for _, share in v) <= 0:
            raise ValueError("shares must not all be zero")
        return sorted(v)

    def at(self, statistic: str) -> int:
        total = sum(share for _, share in self.histogram)
        if statistic == "mean":
            return math.ceil(sum(t * s for t, s in self.histogram) / total)
        if statistic == "max":
            return max(t for t, s in self.histogram if s > 0)
        target = 0.95 * total if statistic == "p95" else 0.5 * total
        running = 0.0
        for tokens, share in self.histogram:
            running += share
            if running >= target - 1e-12:
                return tokens
        return self.histogram[-1][0]


Tokens = int | LengthDistribution | Histogram


def tokens_at(value: Tokens, statistic: str) -> int:
    """A token count, or the `statistic` (mean | p50 | p95 | max) of a distribution."""
    return value if isinstance(value, int) else value.at(statistic)


class Bucket(BaseModel):
    """One cell of a request-length histogram (Melange-style): its lengths and its share of the request rate."""

    model_config = Strict

    prompt_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)
    share: float = Field(ge=0)


class Workload(BaseModel):
    model_config = Strict

    concurrency: int | None = Field(default=None, gt=0,
                                    description="simultaneous sequences the deployment must hold in KV cache")
    prompt_tokens: Tokens | None = Field(default=None, description="prompt tokens per request")
    output_tokens: Tokens | None = Field(default=None, description="generated tokens per request")
    buckets: list[Bucket] | None = Field(default=None, min_length=1,
                                         description="request-length histogram; with slo.requests_per_s")

    @field_validator("prompt_tokens", "output_tokens")
    @classmethod
    def _positive(cls, v: Tokens | None) -> Tokens | None:
        if isinstance(v, int) and v <= 0:
            raise ValueError("must be a positive number of tokens")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> "Workload":
        if self.buckets is None and (self.prompt_tokens is None or self.output_tokens is None):
            raise ValueError("give prompt_tokens and output_tokens (or a histogram of buckets)")
        if self.buckets is not None and sum(b.share for b in self.buckets) <= 0:
            raise ValueError("bucket shares must not all be zero")
        return self


class Slo(BaseModel):
    """Latency targets cap a replica's concurrency; throughput targets set how much must be served."""

    model_config = Strict

    tpot_ms: float | None = Field(default=None, gt=0, description="time per output token, per sequence")
    ttft_ms: float | None = Field(default=None, gt=0, description="time to first token of an idle replica")
    requests_per_s: float | None = Field(default=None, gt=0)
    output_tokens_per_s: float | None = Field(default=None, gt=0)


class Replicas(BaseModel):
    model_config = Strict

    min: int = Field(default=1, ge=1, description="at least this many replicas (availability)")
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _order(self) -> "Replicas":
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class Deployment(BaseModel):
    model_config = Strict

    name: str = Field(min_length=1)
    model: str | ExplicitModel = Field(description="catalog id, path to config.json, or explicit numbers")
    dtype: str | None = Field(default=None, description="weight format; default: the checkpoint's own")
    kv_dtype: str = "auto"
    workload: Workload
    replicas: Replicas = Replicas()
    tp: list[int] | None = Field(default=None, description="allowed TP degrees (default: any up to policy.max_tp)")
    max_batched_tokens: int | None = Field(default=None, gt=0)
    max_num_seqs: int | None = Field(default=None, gt=0)
    slo: Slo | None = None
    profile: str | None = Field(default=None, description="measured throughput file (relative to the scenario)")

    @model_validator(mode="after")
    def _demand(self) -> "Deployment":
        slo = self.slo or Slo()
        if self.workload.buckets is not None or self.profile is not None:
            if slo.requests_per_s is None:
                raise ValueError("a histogram of buckets or a measured profile needs slo.requests_per_s")
            if self.workload.buckets is None:
                raise ValueError("a measured profile needs workload.buckets (the cells it measures)")
        elif self.workload.concurrency is None:
            if slo.tpot_ms is None or (slo.requests_per_s is None and slo.output_tokens_per_s is None):
                raise ValueError("give workload.concurrency, or a throughput target (slo.requests_per_s or "
                                 "slo.output_tokens_per_s) with slo.tpot_ms to turn it into concurrency")
        elif (slo.requests_per_s or slo.output_tokens_per_s) and slo.tpot_ms is None:
            raise ValueError("a throughput target needs slo.tpot_ms (it converts throughput into concurrency)")
        return self

    @field_validator("tp", mode="before")
    @classmethod
    def _tp_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v


class CustomInstance(BaseModel):
    model_config = Strict

    name: str = Field(min_length=1, description="provider/name, e.g. onprem/4xl40s")
    gpu: str
    count: int = Field(gt=0)
    nvlink: bool = False
    price_usd_per_hour: float = Field(ge=0)


class Gpus(BaseModel):
    model_config = Strict

    allow: list[str] | None = None
    forbid: list[str] = []
    instances: list[str] | None = None
    custom_instances: list[CustomInstance] = []
    only_custom: bool = False
    prices_usd_per_hour: dict[str, float] = {}
    max_instances: dict[str, int] = {}
    owned: dict[str, int] = {}
    pricing: Literal["on_demand", "spot"] = "on_demand"

    @field_validator("prices_usd_per_hour")
    @classmethod
    def _prices(cls, v: dict[str, float]) -> dict[str, float]:
        for k, p in v.items():
            if p < 0:
                raise ValueError(f"price of {k} must be >= 0 (got {p})")
        return v

    @field_validator("max_instances", "owned")
    @classmethod
    def _counts(cls, v: dict[str, int]) -> dict[str, int]:
        for k, n in v.items():
            if n < 0:
                raise ValueError(f"count for {k} must be >= 0 (got {n})")
        return v


class Policy(BaseModel):
    model_config = Strict

    gpu_memory_utilization: float = Field(default=C.DEFAULT_GPU_MEMORY_UTILIZATION, gt=0, le=1)
    min_free_fraction: float = Field(default=0.0, ge=0, lt=1)
    headroom_fraction: float = Field(
        default=0.0, ge=0, description="plan every deployment for concurrency x (1 + headroom_fraction)")
    max_tp: int = Field(default=8, ge=1)
    colocate: bool = True
    time_limit_s: float = Field(default=30.0, gt=0)
    threads: int = Field(default=0, ge=0, description="CP-SAT workers, and on large fleets parallel integer "
                         "masters and worker processes (0: all cores)")
    size_kv_on: Literal["mean", "p95", "max"] = "p95"
    seed: int = 0


class Scenario(BaseModel):
    model_config = Strict

    name: str = Field(min_length=1)
    currency: Literal["USD"] = "USD"
    catalog: str | None = None
    gpus: Gpus = Gpus()
    policy: Policy = Policy()
    deployments: list[Deployment] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "Scenario":
        seen: set[str] = set()
        for d in self.deployments:
            if d.name in seen:
                raise ValueError(f"deployment name {d.name!r} is used twice")
            seen.add(d.name)
        return self


UNION_BRANCHES = ("int", "LengthDistribution", "Histogram", "ExplicitModel", "str")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("int", "str", "float", "LengthDistribution", "Histogram", "ExplicitModel") or "[" in str(part):
            continue  # union branch and validator names pydantic adds to the location
        else:
            out += ("." if out else "") + str(part)
    return out


def _friendly(err: dict[str, Any]) -> tuple[str, str]:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key", "remove it or check its spelling against DESIGN section 3 (docs/scenario.md)"
    if kind == "missing":
        return "required field is missing", "add it"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg, "give a value of the right type and range"


def parse_scenario(data: Any, where: str) -> Scenario:
    """Validate a loaded YAML document; InputError names the first bad field with its path."""
    if not isinstance(data, dict):
        raise InputError("a scenario must be a YAML mapping (name:, deployments:, ...)", where=where,
                         fix="see scenarios/prod.yaml for the layout")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also shows up as a missing one: report the unknown key (with its suggestion) first.
        # A value that may take several shapes (tokens as int, distribution or histogram) fails once per shape:
        # the shape with the fewest complaints is the one the user meant.
        def branch(e: dict) -> tuple:
            for n, part in enumerate(e["loc"]):
                if part in UNION_BRANCHES or (isinstance(part, str) and "[" in part):
                    return tuple(e["loc"][: n + 1])
            return ()

        sizes: dict[tuple, int] = {}
        for e in errors:
            sizes[branch(e)] = sizes.get(branch(e), 0) + 1
        err = min(errors, key=lambda e: (sizes[branch(e)] if branch(e) else 0, e["type"] != "extra_forbidden",
                                         e["type"] != "value_error", -len(_loc(e["loc"]))))
        problem, fix = _friendly(err)
        field = _loc(err["loc"])
        if err["type"] == "extra_forbidden":
            parent_keys = _allowed_keys(err["loc"][:-1])
            extra = did_you_mean(str(err["loc"][-1]), parent_keys)
            problem = f"unknown key {err['loc'][-1]!r}.{extra}"
        elif "input" in err and err["type"] != "missing" and "(got " not in problem:
            problem = f"{problem} (got {err['input']!r})"
        # Other shapes of the same value are not further problems; other fields are.
        others = {_loc(e["loc"]) for e in errors if not branch(e) or branch(e) == branch(err)} - {field}
        if others:
            problem += f" ({len(others)} more problem{'s' if len(others) > 1 else ''} after this one)"
        raise InputError(problem, where=where, field=field, fix=fix) from None


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        candidates = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        for a in args:
            candidates += [x for x in getattr(a, "__args__", ()) if isinstance(x, type) and issubclass(x, BaseModel)]
        model = candidates[0] if candidates else None
    return list(getattr(model, "model_fields", {}))


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario YAML with yaml.safe_load (no Python object tags) and validate it."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", where=where, fix="check the path (scenarios live in scenarios/)") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file ({exc.__class__.__name__})", where=where,
                         fix="give a UTF-8 YAML scenario file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        raise InputError(f"YAML tag not allowed ({exc.problem})", where=where,
                         fix="remove the '!!python/...' or other custom tag: scenarios are plain data") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"malformed YAML{at}: {getattr(exc, 'problem', exc)}", where=where,
                         fix="fix the YAML syntax there (indentation, a missing colon or quote)") from None
    return parse_scenario(data, where)
