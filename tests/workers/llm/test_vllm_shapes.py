"""The presets' attention shapes against what vLLM serves, and the check the vllm backend runs before starting it.

Where vLLM is importable (a GPU machine with requirements-gpu.txt) the demo's checkpoint goes through vLLM's own
`ModelConfig` and the documented table is compared with vLLM's backend classes. Elsewhere — CPU machines and
CI, where vLLM's CUDA wheels do not install — the shapes are checked against the documented table only.
"""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from workers.llm.tiny import SIZE_PRESETS, TinyModelConfig, build_tiny_model
from workers.llm.vllm_shapes import (
    HEAD_SIZES_EVERY_BACKEND,
    VLLM_ATTENTION_BACKENDS,
    VLLM_VERSION_READ,
    UnservableModelError,
    attention_head_size,
    backends_for,
    vllm_shape_problems,
    vllm_shapes_check,
)

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
QWEN2 = {"model_type": "qwen2", "hidden_size": 128, "num_attention_heads": 2, "num_key_value_heads": 2}


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory, tiny_corpus):
    """The demo's preset ("small", seed 0), built on the test corpus (a smaller vocabulary, the same shapes)."""
    return build_tiny_model(tiny_corpus, tmp_path_factory.mktemp("tiny-small"), TinyModelConfig(size="small"))


def _with_config(source, target, **changes):
    """A copy of a checkpoint's config.json (and its tiny_model.json, if any) with some fields changed."""
    target.mkdir()
    config = json.loads((source / "config.json").read_text()) | changes
    (target / "config.json").write_text(json.dumps(config))
    if (source / "tiny_model.json").exists():
        shutil.copy(source / "tiny_model.json", target)
    return target


def test_the_table_was_read_from_the_vllm_release_requirements_gpu_pins():
    pinned = re.search(r"^vllm==(\S+)", (Path(__file__).parents[3] / "requirements-gpu.txt").read_text(), re.M)
    assert pinned and pinned.group(1) == VLLM_VERSION_READ  # a new pin: read the backends' limits again


def test_every_backend_takes_head_sizes_64_128_256_and_only_flex_attention_takes_12():
    assert HEAD_SIZES_EVERY_BACKEND == (64, 128, 256)
    assert backends_for(64, "bfloat16") == [b.name for b in VLLM_ATTENTION_BACKENDS]
    assert backends_for(12, "bfloat16") == ["FLEX_ATTENTION"]
    assert backends_for(32, "bfloat16") == ["FLASH_ATTN", "TRITON_ATTN", "FLEX_ATTENTION", "CPU_ATTN", "ROCM_ATTN"]
    assert "FLASH_ATTN" not in backends_for(64, "float32")  # FlashAttention and FlashInfer are half precision only


@pytest.mark.parametrize("size", sorted(SIZE_PRESETS))
def test_every_preset_has_heads_every_vllm_backend_takes(size):
    config = TinyModelConfig(size=size)
    fields = {"model_type": "qwen2", "hidden_size": config.hidden_size, "dtype": "float32"}
    fields |= {"num_attention_heads": config.num_attention_heads, "num_key_value_heads": config.num_key_value_heads}
    assert attention_head_size(fields) in HEAD_SIZES_EVERY_BACKEND
    assert vllm_shape_problems(fields) == []


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM is installed here: the test below uses its own validation")
def test_demo_checkpoint_passes_the_documented_check(demo_checkpoint, tiny_model_dir):
    config = json.loads((demo_checkpoint / "config.json").read_text())
    assert (config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]) == (128, 2, 2)
    assert attention_head_size(config) == 64
    vllm_shapes_check(demo_checkpoint)  # raises if refused
    vllm_shapes_check(tiny_model_dir)  # the tests' nano model too


@pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed here (CUDA wheels only)")
def test_demo_checkpoint_passes_vllms_own_model_config_and_the_table_matches_vllm(demo_checkpoint):
    from vllm.config import ModelConfig, ParallelConfig
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    model_config = ModelConfig(model=str(demo_checkpoint), tokenizer=str(demo_checkpoint))
    model_config.verify_with_parallel_config(ParallelConfig(tensor_parallel_size=1))
    assert model_config.get_head_size() == 64
    vllm_shapes_check(demo_checkpoint)
    for limits in VLLM_ATTENTION_BACKENDS:
        try:
            backend = AttentionBackendEnum[limits.name].get_class()
        except (ImportError, OSError):
            continue  # a kernel not built for this platform
        for head_size in (12, 16, 32, 64, 80, 96, 128, 256):  # above 256 FlashAttention depends on the GPU
            assert backend.supports_head_size(head_size) == limits.accepts_head_size(head_size), (
                limits.name,
                head_size,
            )


def test_a_checkpoint_with_heads_of_12_is_refused_naming_the_rebuild(tiny_model_dir, tmp_path):
    narrow = _with_config(tiny_model_dir, tmp_path / "narrow", hidden_size=48, num_attention_heads=4)
    with pytest.raises(UnservableModelError) as refused:
        vllm_shapes_check(narrow)
    message = str(refused.value)
    assert "head size 12" in message and "FlexAttention" in message
    assert "build_tiny_model --size small" in message and "GENERATION_BACKEND=transformers" in message


def test_another_checkpoint_is_refused_naming_the_head_sizes_to_use(tiny_model_dir, tmp_path):
    (tmp_path / "src").mkdir()
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "src")  # no tiny_model.json: not a tiny model
    narrow = _with_config(tmp_path / "src", tmp_path / "narrow", hidden_size=60, num_attention_heads=3)
    with pytest.raises(UnservableModelError, match=r"head size 20 .* head size is one of 64, 128, 256"):
        vllm_shapes_check(narrow)


@pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed here (CUDA wheels only)")
def test_the_vllm_backend_refuses_a_narrow_checkpoint_before_starting_vllm(tiny_model_dir, tmp_path):
    from workers.llm.vllm_backend import VLLMBackend

    narrow = _with_config(tiny_model_dir, tmp_path / "narrow", hidden_size=48, num_attention_heads=4)
    with pytest.raises(UnservableModelError, match="build_tiny_model --size small"):
        VLLMBackend(str(narrow))


def test_qwen2_head_dim_apart_from_hidden_over_heads_is_refused():
    # transformers' Qwen2 honours head_dim; vLLM's sizes the projections with hidden_size / heads
    problems = vllm_shape_problems(
        QWEN2 | {"hidden_size": 48, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 64}
    )
    assert [p.what for p in problems] == [
        "head_dim 64 is not hidden_size / num_attention_heads (48 / 1), and vLLM's Qwen2 ignores head_dim: "
        "the weights would not load"
    ]
    assert vllm_shape_problems(QWEN2 | {"head_dim": 64}) == []


def test_tensor_parallel_size_must_divide_the_heads_and_says_so():
    assert vllm_shape_problems(QWEN2, tensor_parallel_size=2) == []
    (problem,) = vllm_shape_problems(QWEN2, tensor_parallel_size=4)
    assert problem.what == "num_attention_heads 2 is not divisible by tensor_parallel_size 4"
    assert problem.fix == "set VLLM_TENSOR_PARALLEL_SIZE to a divisor of 2"


def test_dtype_decides_between_the_half_precision_kernels_and_triton():
    sixteen = QWEN2 | {"hidden_size": 32, "dtype": "float32"}  # head size 16: FlashAttention only, half precision
    assert vllm_shape_problems(sixteen) == []  # "auto" serves a float32 checkpoint in bfloat16
    (problem,) = vllm_shape_problems(sixteen, dtype="float32")
    assert problem.what.startswith("head size 16 in float32 is taken by none of vLLM's CUDA attention kernels")
    assert vllm_shape_problems(QWEN2, dtype="float32") == []  # 64 in float32: Triton
