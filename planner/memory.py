"""The `detailed` memory model: exact bytes per tensor-parallel rank for serving a model with vLLM.

Per rank r of a TP group of size tp:
  weights_r     = sum over tensors of the format's bytes for the rank's slice (scales, zeros, g_idx included)
                  + the rotary cos/sin cache
  kv_seq_r(L)   = sum over layers of kv_token_bytes_r(layer) x tokens the layer keeps for a sequence of L tokens,
                  rounded up to whole paged-attention blocks (a sliding layer keeps at most window + 1 block)
  activations_r = peak of one prefill chunk of max_batched_tokens through the widest layer,
                  or the sampler's float32 logits for max_num_seqs rows, whichever is larger
  overhead_r    = CUDA context + non-torch libraries (+ NCCL when tp > 1) + CUDA graphs
                  + allocator fragmentation on (weights_r + activations_r)
  usable        = capacity x gpu_memory_utilization
  max sequences = floor((usable - weights_r - activations_r - overhead_r) / kv_seq_r(L))
"""

from __future__ import annotations

import functools
import math

from pydantic import BaseModel, ConfigDict, Field

from planner import constants as C
from planner.architecture import Architecture
from planner.errors import InputError
from planner.formats import WeightFormat, weight_format
from planner.layout import layout
from planner.models import ModelSpec


class ServingSettings(BaseModel):
    """How a replica is served: formats, TP degree and the runtime knobs that move memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight_format: str = Field(description="name in planner.formats.FORMATS")
    kv_dtype: str = Field(description="fp32 | fp16 | bf16 | fp8")
    tp: int = Field(default=1, ge=1)
    max_batched_tokens: int = Field(default=C.DEFAULT_MAX_BATCHED_TOKENS, gt=0)
    max_num_seqs: int = Field(default=C.DEFAULT_MAX_NUM_SEQS, gt=0)
    gpu_memory_utilization: float = Field(default=C.DEFAULT_GPU_MEMORY_UTILIZATION, gt=0, le=1)
    block_tokens: int = Field(default=C.PAGED_BLOCK_TOKENS, gt=0)
    nvlink: bool = Field(default=True, description="TP ranks talk over NVLink (bigger all-reduce buffers)")

    @property
    def fmt(self) -> WeightFormat:
        return weight_format(self.weight_format)

    @property
    def activation_bytes_per_element(self) -> int:
        return C.DTYPE_BYTES[self.fmt.activation_dtype]


class RankBytes(BaseModel):
    """Bytes one TP rank (one GPU) holds for one replica."""

    model_config = ConfigDict(extra="forbid")

    weights: int
    kv_cache: int
    activations: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations + self.overhead

    @property
    def static(self) -> int:
        """Everything but the KV cache: what the replica needs before it holds a single sequence."""
        return self.weights + self.activations + self.overhead


def check_tp(spec: ModelSpec, settings: ServingSettings, field: str = "tp") -> None:
    """Raise InputError when `tp` cannot shard this model the way vLLM requires."""
    tp = settings.tp
    arch = spec.arch
    heads = arch.num_heads if arch else (spec.explicit.num_heads if spec.explicit else None)
    if heads and heads % tp:
        divisors = [d for d in range(1, min(heads, 64) + 1) if heads % d == 0]
        raise InputError(f"tensor-parallel degree {tp} does not divide {spec.id}'s {heads} attention heads",
                         field=field, fix=f"use tp in {divisors}")
    if arch is None:
        return
    kv = arch.num_kv_heads
    if not arch.is_mla and (kv % tp if kv >= tp else tp % kv):
        raise InputError(f"tensor-parallel degree {tp} does not split {spec.id}'s {kv} KV heads evenly",
                         field=field, fix="use a tp that divides the KV heads, or a multiple of them")
    fmt = settings.fmt
    if fmt.group_size and fmt.quantized_groups & {"mlp", "experts"}:
        width = arch.moe_intermediate_size if arch.is_moe else arch.intermediate_size
        if width and (width // tp) % fmt.group_size:
            raise InputError(
                f"{fmt.name} needs each rank's slice of the MLP input ({width}/{tp}) to be a multiple of the "
                f"quantization group ({fmt.group_size})", field=field, fix="use a smaller tp")


@functools.lru_cache(maxsize=4096)  # a fleet asks for the same (model, format, tp) once per GPU type and deployment
def weights_bytes_per_rank(arch: Architecture, fmt: WeightFormat, tp: int) -> int:
    """Bytes of one rank's weights in `fmt`, plus the rotary cos/sin cache vLLM builds at load time."""
    total = 0
    for block in layout(arch):
        in_r, out_r = block.rank_shape(tp)
        if block.matrix and block.group == "experts" and fmt.expert_pad:
            in_r, out_r = _padded_expert_shape(block.name, in_r, out_r, fmt.expert_pad, arch.mlp_gated)
        if block.matrix:
            total += fmt.linear_bytes(in_r, out_r, block.group) * block.count
        else:
            total += math.ceil(in_r * out_r * fmt.element_bytes(block.group)) * block.count
    if not arch.learned_positions and arch.max_position_embeddings and not arch.encoder_only:
        rotary_dim = arch.qk_rope_head_dim or arch.head_dim
        # vllm rotary_embedding.py: cos_sin_cache [max_position, rotary_dim] in the model dtype
        total += arch.max_position_embeddings * rotary_dim * C.DTYPE_BYTES[fmt.activation_dtype]
    return total


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _padded_expert_shape(name: str, in_r: int, out_r: int, pad: tuple[int, int], gated: bool) -> tuple[int, int]:
    """(in, out) of an expert tensor after the kernel's padding: hidden to pad[0], intermediate to pad[1]."""
    hidden_pad, inter_pad = pad
    if name.endswith("down"):
        return _round_up(in_r, inter_pad), _round_up(out_r, hidden_pad)
    mats = 2 if gated else 1
    return _round_up(in_r, hidden_pad), mats * _round_up(out_r // mats, inter_pad)


def kv_token_bytes_per_layer(arch: Architecture, kv_dtype: str, tp: int) -> list[int]:
    """KV bytes one token costs in each layer on one rank (0 for encoder-only models, which keep no cache)."""
    if arch.encoder_only:
        return [0] * arch.num_layers
    b = C.DTYPE_BYTES[kv_dtype]
    if arch.is_mla:
        # vLLM MLA: one latent (kv_lora_rank + rope dim) per token, no K/V split, the whole latent on every rank.
        per_layer = (arch.kv_lora_rank + arch.qk_rope_head_dim) * b
    else:
        kv_heads_r = max(1, arch.num_kv_heads // tp)
        per_layer = kv_heads_r * (arch.head_dim + arch.v_head_dim) * b
    return [per_layer] * arch.num_layers


def _explicit_kv_token_bytes(spec: ModelSpec, kv_dtype: str, tp: int) -> int:
    assert spec.explicit is not None
    return math.ceil(spec.explicit.kv16_bytes_per_token() * C.DTYPE_BYTES[kv_dtype] / 2 / tp)


def kv_bytes_per_token_per_rank(spec: ModelSpec, kv_dtype: str, tp: int) -> int:
    """KV bytes per token on one rank when every layer keeps the token (the short-context rate)."""
    if spec.arch is None:
        return _explicit_kv_token_bytes(spec, kv_dtype, tp)
    return sum(kv_token_bytes_per_layer(spec.arch, kv_dtype, tp))


def kv_bytes_per_sequence_per_rank(spec: ModelSpec, settings: ServingSettings, context_tokens: int) -> int:
    """KV bytes one sequence of `context_tokens` occupies on one rank, in whole paged blocks."""
    block = settings.block_tokens
    full_tokens = math.ceil(context_tokens / block) * block
    if spec.arch is None:
        return _explicit_kv_token_bytes(spec, settings.kv_dtype, settings.tp) * full_tokens
    return _kv_bytes_per_sequence(spec.arch, settings.kv_dtype, settings.tp, block, full_tokens)


@functools.lru_cache(maxsize=65536)  # the same model, dtype, tp and length recur on every GPU type of a fleet
def _kv_bytes_per_sequence(arch: Architecture, kv_dtype: str, tp: int, block: int, full_tokens: int) -> int:
    total = 0
    for layer, per_token in enumerate(kv_token_bytes_per_layer(arch, kv_dtype, tp)):
        window = arch.window(layer)
        tokens = full_tokens if window is None else min(full_tokens, (math.ceil(window / block) + 1) * block)
        total += per_token * tokens
    return total


def activation_bytes_per_rank(spec: ModelSpec, settings: ServingSettings) -> int:
    """Peak transient memory of the profiling forward pass vLLM runs before sizing the KV cache."""
    a = settings.activation_bytes_per_element
    tokens, tp = settings.max_batched_tokens, settings.tp
    arch = spec.arch
    if arch is None:
        e = spec.explicit
        if e is None or e.hidden_size is None:
            return 0
        # Without the architecture: residual + a 4x-wide MLP (gate/up + activation) ~ 10 hidden-widths per token.
        layer = tokens * e.hidden_size * 10 * a // tp
        logits = settings.max_num_seqs * (e.vocab_size or 0) * C.LOGITS_BYTES_PER_ELEMENT * C.SAMPLER_LOGIT_COPIES
        return max(layer, logits)
    if arch.encoder_only:
        tokens = min(tokens, arch.max_position_embeddings or tokens)
    residual = 2 * tokens * arch.hidden_size * a  # residual stream + normed hidden states
    heads_r = arch.num_heads // tp
    kv_heads_r = heads_r if arch.is_mla else max(1, arch.num_kv_heads // tp)
    # q, k, v (MLA expands k and v per head during prefill) + attention output
    attention = tokens * (heads_r * arch.head_dim + kv_heads_r * (arch.head_dim + arch.v_head_dim)
                          + heads_r * arch.v_head_dim) * a
    mlp_mats = 3 if arch.mlp_gated else 2  # gate_up output (2 widths) + activation output (1 width)
    dense = tokens * math.ceil(arch.intermediate_size / tp) * mlp_mats * a if arch.intermediate_size else 0
    moe = 0
    if arch.is_moe:
        width_r = math.ceil(arch.moe_intermediate_size / tp)
        # vLLM fused_moe caches: (T, k, 2N) gate_up, (T*k, N) activation, (T, k, hidden) down outputs
        moe = tokens * arch.experts_per_token * (mlp_mats * width_r + arch.hidden_size) * a
        moe += tokens * math.ceil(arch.shared_expert_intermediate_size / tp) * mlp_mats * a
    layer_peak = residual + max(attention, dense, moe)
    logits = 0
    if not arch.encoder_only:
        logits = tokens * arch.hidden_size * a + (
            settings.max_num_seqs * arch.vocab_size * C.LOGITS_BYTES_PER_ELEMENT * C.SAMPLER_LOGIT_COPIES)
    return max(layer_peak, logits)


def overhead_bytes_per_rank(tp: int, weights_bytes: int, activation_bytes: int, nvlink: bool = True) -> int:
    """Memory outside weights, KV and activations that every serving process pays on every GPU it uses."""
    overhead = C.CUDA_CONTEXT_BYTES + C.NON_TORCH_BYTES + C.CUDA_GRAPH_BYTES
    if tp > 1:
        overhead += C.NCCL_NVLINK_BYTES_PER_RANK if nvlink else C.NCCL_PCIE_BYTES_PER_RANK
    overhead += math.ceil(C.ALLOCATOR_FRAGMENTATION_FRACTION * (weights_bytes + activation_bytes))
    return overhead


def model_weights_bytes_per_rank(spec: ModelSpec, settings: ServingSettings) -> int:
    if spec.arch is not None:
        return weights_bytes_per_rank(spec.arch, settings.fmt, settings.tp)
    assert spec.explicit is not None
    fmt = settings.fmt
    per_weight = fmt.linear_bytes(1024, 1024, "mlp") / (1024 * 1024)
    return math.ceil(spec.explicit.params * per_weight / settings.tp)


def static_bytes_per_rank(spec: ModelSpec, settings: ServingSettings) -> RankBytes:
    """Weights, activations and overhead of one rank, with an empty KV cache."""
    weights = model_weights_bytes_per_rank(spec, settings)
    activations = activation_bytes_per_rank(spec, settings)
    return RankBytes(weights=weights, kv_cache=0, activations=activations,
                     overhead=overhead_bytes_per_rank(settings.tp, weights, activations, settings.nvlink))


def usable_bytes(capacity_bytes: int, gpu_memory_utilization: float) -> int:
    """What vLLM lets one GPU's worth of serving use: floor(capacity x utilization)."""
    return math.floor(capacity_bytes * gpu_memory_utilization)


def max_sequences(usable: int, static: int, kv_seq_bytes: int) -> int:
    """Sequences whose KV fits beside `static` bytes in `usable` bytes (0 when even the static part does not)."""
    room = usable - static
    if room <= 0 or kv_seq_bytes <= 0:
        return 0 if room <= 0 else 10**9
    return room // kv_seq_bytes
