"""The warm-up SFT engine: the step budget shared over the curriculum's stages, the order one trainer reads them
in, and a real run of the nano policy through TRL."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from workers.llm.tiny import IM_END, render_conversation
from workers.train.sft import WarmupConfig, _trainer_class, curriculum_order, stage_steps, warmup_sft


def test_stage_steps_shares_the_budget_by_rows():
    assert stage_steps([100, 300, 600], 10) == [1, 3, 6]
    assert stage_steps([1, 1000], 5) == [1, 4]  # every stage gets a step, the rest goes by rows
    assert stage_steps([10, 10, 10], 2) == [1, 1, 1]  # a budget below one step a stage is raised to it
    assert stage_steps([3, 5, 7], 100) == [20, 33, 47] and sum(stage_steps([3, 5, 7], 101)) == 101
    assert stage_steps([], 10) == []


def test_curriculum_order_serves_stages_in_turn_and_every_row_once_a_pass():
    stages = [[0, 1, 2], [0, 1, 2, 3, 4, 5]]
    lengths = [5, 1, 3, 9, 2, 7]
    order = curriculum_order(stages, [3, 4], batch_size=2, lengths=lengths, seed=0, group_by_length=False)
    assert len(order) == (3 + 4) * 2
    first, second = order[:6], order[6:]
    assert sorted(first) == [0, 0, 1, 1, 2, 2]  # stage 1: its three rows, two passes, nothing harder
    assert set(second) <= set(stages[1]) and sorted(second[:6]) == [0, 1, 2, 3, 4, 5]  # a full pass first
    assert curriculum_order(stages, [3, 4], 2, lengths, seed=0) == curriculum_order(stages, [3, 4], 2, lengths, seed=0)
    assert curriculum_order(stages, [3, 4], 2, lengths, seed=0) != curriculum_order(stages, [3, 4], 2, lengths, seed=1)


def test_curriculum_order_groups_batches_by_length():
    rows = list(range(64))
    lengths = [(i * 37) % 101 for i in rows]
    order = curriculum_order([rows], [8], batch_size=8, lengths=lengths, seed=3, group_by_length=True)
    batches = [order[i : i + 8] for i in range(0, 64, 8)]
    assert sorted(order) == rows
    # one megabatch sorted by length and cut into batches: no two batches' length ranges overlap
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
    shuffled = curriculum_order([rows], [8], batch_size=8, lengths=lengths, seed=3, group_by_length=False)
    padded = lambda o: sum(8 * max(lengths[i] for i in o[j : j + 8]) for j in range(0, 64, 8))  # noqa: E731
    assert padded(order) < padded(shuffled)


def _examples(tiny_queries) -> dict[str, list[dict]]:
    by_bucket: dict[str, list[dict]] = {}
    for i, q in enumerate(q for q in tiny_queries if q["reference_output"]):
        bucket = ("easy", "medium", "hard")[i % 3]
        prompt = render_conversation(q["messages"], q["tools"], add_generation_prompt=True)
        by_bucket.setdefault(bucket, []).append({"prompt": prompt, "completion": q["reference_output"]})
    return by_bucket


def test_warmup_runs_the_stages_in_one_trainer_within_the_budget(tiny_model_dir, tiny_queries, tmp_path):
    seen = []
    config = WarmupConfig(
        max_steps=9, batch_size=4, learning_rate=3e-3, logging_steps=1, warmup_steps=1, lr_scheduler_type="cosine"
    )
    results = warmup_sft(tiny_model_dir, tmp_path / "out", _examples(tiny_queries), config, progress=seen.append)
    assert [r.bucket for r in results] == ["easy", "medium", "hard"]
    assert sum(r.steps for r in results) == 9 and all(r.steps >= 1 for r in results)
    assert [r.examples for r in results] == sorted(r.examples for r in results)  # cumulative stages
    steps = [p["step"] for p in seen]
    assert steps == list(range(1, 10))  # one step count over the whole warm-up: no restart at a stage
    assert {p["max_steps"] for p in seen} == {9}
    assert [p["bucket"] for p in seen] == (
        ["easy"] * results[0].steps + ["medium"] * results[1].steps + ["hard"] * results[2].steps
    )
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert trained.dtype == torch.float32
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), before.state_dict().values()))


def test_plain_loss_equals_trls_loss(tiny_model_dir, tiny_queries):
    """Without token metrics the trainer's loss is the model's NLL over the completion: the same number TRL's
    fused-head loss gives on the same batch."""
    import datasets
    from transformers import AutoTokenizer
    from trl import SFTConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [
        {"prompt": e["prompt"], "completion": e["completion"] + IM_END} for e in _examples(tiny_queries)["easy"][:6]
    ]
    losses = {}
    for metrics in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        args = SFTConfig(
            output_dir="/tmp/unused",
            max_steps=1,
            per_device_train_batch_size=6,
            use_cpu=True,
            bf16=False,
            report_to="none",
            completion_only_loss=True,
            gradient_checkpointing=False,
        )
        trainer = _trainer_class(metrics, list(range(6)), 6)(
            model=model, args=args, processing_class=tokenizer, train_dataset=datasets.Dataset.from_list(rows)
        )
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            losses[metrics] = float(trainer.compute_loss(model, batch))
    assert losses[False] == pytest.approx(losses[True], rel=1e-4)


def test_examples_truncated_to_nothing_are_named(tiny_model_dir, tiny_queries, tmp_path):
    examples = _examples(tiny_queries)
    long_prompt = {"prompt": "word " * 600, "completion": "[f(x=1)]"}
    with pytest.raises(ValueError, match="1 examples have no completion token left within max_length=300"):
        warmup_sft(
            tiny_model_dir,
            tmp_path / "out",
            {"easy": examples["easy"][:3] + [long_prompt]},
            WarmupConfig(max_steps=1, batch_size=2, max_length=300),
        )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"max_steps": 0}, "max_steps must be -1"),
        ({"max_steps": 10, "max_steps_per_bucket": 5}, "not both"),
        ({"lr_scheduler_type": "cosine_with_hard_restarts"}, "lr_scheduler_type must be"),
    ],
)
def test_bad_warmup_config_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        WarmupConfig(**fields)
