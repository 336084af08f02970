"""The model shapes vLLM's attention backends serve, and the check the vllm backend runs before it starts vLLM.

vLLM picks one attention backend per model from a priority list and refuses a model no backend on the list
takes; a backend takes or refuses it by head size and dtype. The table below is read from vLLM 0.33.0's source
(each entry names its file; docs/gpu.md, "Model shapes vLLM serves", has the citations and the rule). vLLM is
not importable on CPU machines, so the table is data here, checked by tests against the presets; where vLLM is
installed, `tests/workers/llm/test_vllm_shapes.py` also runs the checkpoint through vLLM's own `ModelConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

VLLM_VERSION_READ = "0.33.0"  # requirements-gpu.txt's pin, where the table was read from; 0.34.0 has the same limits


@dataclass(frozen=True)
class AttentionBackendLimits:
    """What one vLLM attention backend accepts (its `supports_head_size` and `supported_dtypes`)."""

    name: str  # vLLM's AttentionBackendEnum name
    platform: str
    source: str  # the file in vLLM's tree the limits come from
    head_sizes: str  # the accepted head sizes, as the source states them
    accepts_head_size: Callable[[int], bool]
    dtypes: frozenset[str]


_HALF = frozenset({"float16", "bfloat16"})
_ANY_FLOAT = frozenset({"float16", "bfloat16", "float32"})

VLLM_ATTENTION_BACKENDS: tuple[AttentionBackendLimits, ...] = (
    AttentionBackendLimits(
        "FLASH_ATTN",
        "CUDA, compute capability 8.0+",
        "vllm/v1/attention/backends/flash_attn.py",
        "multiples of 8 up to 256",
        lambda h: h % 8 == 0 and h <= 256,
        _HALF,
    ),
    AttentionBackendLimits(
        "FLASHINFER",
        "CUDA, compute capability 8.0 to 12.1",
        "vllm/v1/attention/backends/flashinfer.py",
        "64, 128, 256, 512",
        lambda h: h in (64, 128, 256, 512),
        _HALF,
    ),
    AttentionBackendLimits(
        "TRITON_ATTN",
        "CUDA, ROCm (any compute capability)",
        "vllm/v1/attention/backends/triton_attn.py",
        "32 and above",
        lambda h: h >= 32,
        _ANY_FLOAT,
    ),
    AttentionBackendLimits(
        "FLEX_ATTENTION",
        "CUDA (the last fallback)",
        "vllm/v1/attention/backends/flex_attention.py",
        "any",
        lambda h: True,
        _ANY_FLOAT,
    ),
    AttentionBackendLimits(
        "CPU_ATTN",
        "CPU",
        "vllm/v1/attention/backends/cpu_attn.py",
        "32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512",
        lambda h: h in (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512),
        _ANY_FLOAT,
    ),
    AttentionBackendLimits(
        "ROCM_ATTN",
        "ROCm",
        "vllm/v1/attention/backends/rocm_attn.py",
        "32, 64, 80, 96, 128, 160, 192, 224, 256",
        lambda h: h in (32, 64, 80, 96, 128, 160, 192, 224, 256),
        _ANY_FLOAT,
    ),
    AttentionBackendLimits(
        "ROCM_AITER_FA",
        "ROCm with AITER",
        "vllm/v1/attention/backends/rocm_aiter_fa.py",
        "64, 128, 256",
        lambda h: h in (64, 128, 256),
        _HALF,
    ),
)
# The CUDA kernels vLLM selects before FlexAttention (vllm/platforms/cuda.py, `_get_backend_priorities`).
# FlexAttention, last on that list, takes any head size; a model only it would take is refused here all the same:
# no dedicated kernel and no CPU or ROCm backend serves it, and the project does not rely on the fallback.
CUDA_KERNELS = ("FLASH_ATTN", "FLASHINFER", "TRITON_ATTN")
# Head sizes every backend in the table takes: the safe choice for a model built to be served anywhere.
HEAD_SIZES_EVERY_BACKEND = tuple(
    h for h in range(1, 513) if all(b.accepts_head_size(h) for b in VLLM_ATTENTION_BACKENDS)
)
# dtype="auto" serves a float32 checkpoint in bfloat16 or float16 on a GPU
# (vllm/config/model.py, `_resolve_auto_dtype`).
_AUTO_ON_GPU = "bfloat16"

# The fixes an error names: the tiny model is rebuilt from its preset; another checkpoint is swapped or run elsewhere.
TINY_MODEL_FIX = (
    "rebuild the tiny model with `python manage.py build_tiny_model --size small` (or --size nano), whose heads are "
    "64 wide, or serve this checkpoint with the transformers backend (GENERATION_BACKEND=transformers)"
)
MODEL_FIX = (
    "serve a checkpoint whose head size is one of "
    + ", ".join(map(str, HEAD_SIZES_EVERY_BACKEND))
    + ", or serve this one with the transformers backend (GENERATION_BACKEND=transformers)"
)


class UnservableModelError(ValueError):
    """A checkpoint whose shapes vLLM's attention backends (or its Qwen2 loader) would refuse."""


@dataclass(frozen=True)
class ShapeProblem:
    """One thing vLLM would refuse, and whether the model itself (not an engine setting) has to change."""

    what: str
    fix: str | None = None  # None: the model's fix (TINY_MODEL_FIX or MODEL_FIX)


def attention_head_size(config: Mapping) -> int:
    """The head size vLLM computes for a Hugging Face config: `head_dim` when set, else hidden size / heads
    (vllm/transformers_utils/model_arch_config_convertor.py, `get_head_size`)."""
    head_dim = config.get("head_dim")
    if head_dim:
        return int(head_dim)
    return int(config["hidden_size"]) // int(config["num_attention_heads"])


def backends_for(head_size: int, dtype: str) -> list[str]:
    """The names of the backends in the table that take this head size in this dtype."""
    return [b.name for b in VLLM_ATTENTION_BACKENDS if b.accepts_head_size(head_size) and dtype in b.dtypes]


def served_dtype(config: Mapping, dtype: str = "auto") -> str:
    """The dtype vLLM runs a checkpoint in on a GPU: the requested one, or with "auto" the checkpoint's own
    half-precision dtype, a float32 checkpoint being cast down (to bfloat16 where the GPU has it)."""
    aliases = {"half": "float16", "float": "float32"}
    if dtype != "auto":
        return aliases.get(dtype, dtype)
    stored = str(config.get("dtype") or config.get("torch_dtype") or "float32").removeprefix("torch.")
    return stored if stored in _HALF else _AUTO_ON_GPU


def vllm_shape_problems(config: Mapping, *, tensor_parallel_size: int = 1, dtype: str = "auto") -> list[ShapeProblem]:
    """What in a Hugging Face config (a config.json as a dict) vLLM would refuse; empty when it serves it."""
    config = config.get("text_config") or config
    heads, hidden = int(config["num_attention_heads"]), int(config["hidden_size"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or 0)
    problems = []
    if not head_dim and hidden % heads:
        problems.append(ShapeProblem(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}"))
    if config.get("model_type") == "qwen2" and head_dim and head_dim * heads != hidden:
        # vllm/model_executor/models/qwen2.py sizes its projections with hidden_size // num_heads
        problems.append(
            ShapeProblem(
                f"head_dim {head_dim} is not hidden_size / num_attention_heads ({hidden} / {heads}), and vLLM's "
                f"Qwen2 ignores head_dim: the weights would not load"
            )
        )
    if heads % kv_heads:
        problems.append(
            ShapeProblem(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
        )
    head_size, served = attention_head_size(config), served_dtype(config, dtype)
    if not [name for name in backends_for(head_size, served) if name in CUDA_KERNELS]:
        problems.append(
            ShapeProblem(
                f"head size {head_size} in {served} is taken by none of vLLM's CUDA attention kernels "
                f"({', '.join(CUDA_KERNELS)}), only by the FlexAttention fallback"
            )
        )
    tp_fix = f"set VLLM_TENSOR_PARALLEL_SIZE to a divisor of {heads}" + (
        f" and of {kv_heads}" if kv_heads != heads else ""
    )
    if heads % tensor_parallel_size:
        problems.append(
            ShapeProblem(
                f"num_attention_heads {heads} is not divisible by tensor_parallel_size {tensor_parallel_size}", tp_fix
            )
        )
    elif kv_heads % tensor_parallel_size and tensor_parallel_size % kv_heads:
        problems.append(
            ShapeProblem(
                f"num_key_value_heads {kv_heads} and tensor_parallel_size {tensor_parallel_size} do not divide "
                f"one another",
                tp_fix,
            )
        )
    return problems


def vllm_shapes_check(model_path: str | Path, *, tensor_parallel_size: int = 1, dtype: str = "auto") -> None:
    """Raise `UnservableModelError`, naming the fix, when vLLM would refuse the checkpoint at `model_path`."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_path)).to_dict()
    problems = vllm_shape_problems(config, tensor_parallel_size=tensor_parallel_size, dtype=dtype)
    if not problems:
        return
    model_fix = TINY_MODEL_FIX if (Path(model_path) / "tiny_model.json").exists() else MODEL_FIX
    fixes = list(dict.fromkeys(p.fix or model_fix for p in problems))
    raise UnservableModelError(
        f"vLLM cannot serve {model_path}: {'; '.join(p.what for p in problems)}. Fix: {'; '.join(fixes)}."
    )
