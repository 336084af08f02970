"""Preference optimisation: DPO, IPO, SimPO and ORPO train the tiny policy, LoRA, validation, resume after a kill."""

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from workers.train.common import trimmed
from workers.train.preference import (
    DPOParams,
    IPOParams,
    ORPOParams,
    SimPOParams,
    config_for,
    train_preference,
    trl_args,
)

# Fast and decisive: every step on all eight pairs (so losses compare), a high rate, no warm-up, every step logged.
QUICK = {"max_steps": 3, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0, "logging_steps": 1}


def weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def changed_tensors(before: dict, after: dict) -> list[str]:
    assert before.keys() == after.keys()
    return [name for name in before if not torch.equal(before[name], after[name])]


def mean_margin(model_dir, rows) -> float:
    """Mean over rows of log p(chosen) - log p(rejected) under the policy at `model_dir`."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def logp(prompt: str, completion: str) -> float:
        start = len(tokenizer(prompt).input_ids)
        ids = tokenizer(prompt + completion + tokenizer.eos_token, return_tensors="pt").input_ids
        with torch.no_grad():
            logprobs = model(ids).logits[0, :-1].log_softmax(-1)  # (T-1, V): position t predicts token t+1
        return logprobs[start - 1 :].gather(-1, ids[0, start:, None]).sum().item()

    return sum(logp(r["prompt"], r["chosen"]) - logp(r["prompt"], r["rejected"]) for r in rows) / len(rows)


def pair_tokens(tokenizer, row) -> int:
    """Prompt + chosen + rejected tokens, the prompt counted once; TRL appends EOS to both sides."""

    def length(text):
        return len(tokenizer(text).input_ids)

    eos = tokenizer.eos_token
    return (
        length(row["prompt"] + row["chosen"] + eos)
        + length(row["prompt"] + row["rejected"] + eos)
        - length(row["prompt"])
    )


@pytest.fixture(scope="module")
def margin_before(tiny_model_dir, rows):
    return mean_margin(tiny_model_dir, rows)


@pytest.mark.parametrize("algorithm", ["dpo", "ipo", "simpo", "orpo"])
def test_each_algorithm_trains_toward_the_chosen_side(
    algorithm, tiny_model_dir, rows, tokenizer, margin_before, tmp_path
):
    calls = []
    result = train_preference(
        tiny_model_dir, tmp_path / "out", rows, config_for(algorithm, QUICK), progress=calls.append
    )

    assert result.algorithm == algorithm and result.examples == len(rows)
    assert result.steps == 3 and result.resumed_from_step == 0
    assert [c["step"] for c in calls] == [1, 2, 3] and [c["epoch"] for c in calls] == [1.0, 2.0, 3.0]
    assert all(c.keys() == {"step", "max_steps", "loss", "epoch"} and c["max_steps"] == 3 for c in calls)
    assert result.losses == [c["loss"] for c in calls]
    assert all(math.isfinite(loss) for loss in result.losses)
    assert result.last_loss < result.first_loss  # same batch every step
    # Three passes over the pairs (DPOTrainer and the CPO/ORPO trainers tokenise differently; both count this).
    assert result.tokens == 3 * sum(pair_tokens(tokenizer, r) for r in rows)
    assert result.tokens_per_second == pytest.approx(result.tokens / result.seconds)
    assert 0 < result.seconds < result.total_seconds
    # The saved policy loads the way a real checkpoint does, every tensor moved, chosen now likelier vs rejected.
    AutoTokenizer.from_pretrained(tmp_path / "out")
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    before, after = weights(tiny_model_dir), weights(tmp_path / "out")
    assert changed_tensors(before, after) == list(before)
    assert mean_margin(tmp_path / "out", rows) > margin_before


def test_lora_adapters_are_merged_into_a_plain_checkpoint(tiny_model_dir, rows, tmp_path):
    result = train_preference(tiny_model_dir, tmp_path / "out", rows, config_for("simpo", {**QUICK, "lora": True}))

    assert result.steps == 3 and all(math.isfinite(loss) for loss in result.losses)
    assert not (tmp_path / "out" / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    changed = changed_tensors(weights(tiny_model_dir), weights(tmp_path / "out"))
    # LoRA targets the linear layers; embeddings and norms stay as they were.
    assert changed and all("proj" in name for name in changed)
    assert not any("norm" in name or "embed" in name for name in changed)


def test_sft_weight_adds_an_nll_term_on_the_chosen_side(tiny_model_dir, rows, tmp_path):
    plain, with_sft = (
        train_preference(
            tiny_model_dir,
            tmp_path / f"sft-{weight}",
            rows,
            config_for("dpo", {**QUICK, "max_steps": 1, "sft_weight": weight}),
        )
        for weight in (0.0, 1.0)
    )
    # Policy = reference at step 1, so DPO's loss is ln 2; the SFT term adds the chosen side's mean NLL (~ln V).
    assert plain.first_loss == pytest.approx(math.log(2), abs=1e-5)
    assert with_sft.first_loss > plain.first_loss + 1.0


def test_params_map_onto_trl_arguments(tmp_path):
    dpo = trl_args(DPOParams(sft_weight=0.5), tmp_path)
    assert (dpo.loss_type, dpo.loss_weights, dpo.beta) == (["sigmoid", "sft"], [1.0, 0.5], 0.1)
    assert trl_args(DPOParams(), tmp_path).loss_type == ["sigmoid"]
    assert trl_args(IPOParams(), tmp_path).loss_type == ["ipo"]
    simpo = trl_args(SimPOParams(), tmp_path)
    assert (simpo.loss_type, simpo.beta, simpo.simpo_gamma, simpo.cpo_alpha) == ("simpo", 2.5, 0.5, 0.0)
    assert trl_args(SimPOParams(sft_weight=0.2), tmp_path).cpo_alpha == 0.2
    orpo = trl_args(ORPOParams(batch_size=2, epochs=2, max_length=256), tmp_path)
    assert (orpo.beta, orpo.per_device_train_batch_size, orpo.num_train_epochs, orpo.max_length) == (0.1, 2, 2, 256)
    assert orpo.save_strategy == "no"
    assert trl_args(ORPOParams(), tmp_path, save_checkpoints=True).save_strategy == "steps"


def test_long_loss_logs_are_trimmed_evenly_keeping_both_ends():
    assert trimmed([float(k) for k in range(1000)], limit=5) == [0.0, 250.0, 500.0, 749.0, 999.0]
    assert trimmed([1.0, 2.0], limit=5) == [1.0, 2.0]


def test_config_for_builds_the_algorithms_params():
    assert type(config_for("simpo", {})) is SimPOParams
    assert config_for("orpo", {"beta": 0.2}) == ORPOParams(beta=0.2)
    assert config_for("dpo", {"beta": 1}).beta == 1.0 and isinstance(config_for("dpo", {"beta": 1}).beta, float)


@pytest.mark.parametrize(
    "algorithm, overrides, message",
    [
        ("kto", {}, "unknown algorithm 'kto'; expected one of dpo, ipo, simpo, orpo"),
        ("dpo", {"gamma": 0.5, "betta": 1}, "unknown dpo setting(s): betta, gamma"),
        ("simpo", {"learning_rate": 0}, "learning_rate must be > 0 (got 0.0)"),
        ("dpo", {"batch_size": 0, "epochs": -1}, "epochs must be > 0 (got -1.0); batch_size must be >= 1 (got 0)"),
        ("ipo", {"beta": "0.1"}, "beta must be float (got '0.1')"),
        ("dpo", {"batch_size": True}, "batch_size must be int (got True)"),
        ("dpo", {"lora": 1}, "lora must be bool (got 1)"),
        ("simpo", {"gamma": -0.1}, "gamma must be >= 0"),
        ("simpo", {"warmup_ratio": 1.0}, "warmup_ratio must be in [0, 1)"),
        ("dpo", {"max_steps": 0}, "max_steps must be -1 (no cap) or >= 1"),
        ("orpo", {"sft_weight": 1.0}, "sft_weight must be 0 for ORPO"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(algorithm, overrides, message):
    with pytest.raises(ValueError) as error:
        config_for(algorithm, overrides)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([], "no preference rows"),
        (
            [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "a"}],
            "row 1: missing or non-text rejected",
        ),
        ([{"prompt": None, "chosen": "a", "rejected": "b"}], "row 0: missing or non-text prompt"),
        ([{"prompt": "p", "chosen": "same", "rejected": "same"}], "row 0: chosen and rejected are identical"),
        ([{"prompt": "p", "chosen": "", "rejected": "b"}], "row 0: chosen and rejected must not be empty"),
        (["prompt chosen rejected"], "row 0: expected a dict"),
    ],
)
def test_bad_rows_are_refused_naming_the_row(rows, message, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=message):
        train_preference(tiny_model_dir, tmp_path / "out", rows, DPOParams())
    assert not (tmp_path / "out").exists()


def test_resume_needs_a_checkpoint_dir(tiny_model_dir, rows, tmp_path):
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train_preference(tiny_model_dir, tmp_path / "out", rows, DPOParams(), resume=True)


class Killed(Exception):
    pass


@pytest.mark.parametrize("algorithm, lora", [("dpo", False), ("simpo", True)])
def test_a_killed_run_resumes_from_its_last_checkpoint(algorithm, lora, tiny_model_dir, rows, tmp_path):
    config = config_for(algorithm, {**QUICK, "max_steps": 5, "batch_size": 2, "save_steps": 2, "lora": lora})
    checkpoints = tmp_path / "checkpoints"
    first_run = []

    def die_at_step_3(update):
        first_run.append(update)
        if update["step"] == 3:  # checkpoint-2 is on disk, step 3 is not
            raise Killed

    with pytest.raises(Killed):
        train_preference(
            tiny_model_dir, tmp_path / "out", rows, config, progress=die_at_step_3, checkpoint_dir=checkpoints
        )
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2"]
    # A later checkpoint the kill interrupted mid-save: weights written, trainer state not (or cut short).
    (checkpoints / "checkpoint-3").mkdir()
    (checkpoints / "checkpoint-3" / "model.safetensors").write_bytes(b"partial")
    (checkpoints / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3, "log_hi')

    second_run = []
    result = train_preference(
        tiny_model_dir,
        tmp_path / "out",
        rows,
        config,
        progress=second_run.append,
        checkpoint_dir=checkpoints,
        resume=True,
    )

    assert result.resumed_from_step == 2 and result.steps == 5
    assert [u["step"] for u in second_run] == [3, 4, 5]
    # Same weights, optimiser state and data order as the killed run had at step 3: the same loss.
    assert second_run[0]["loss"] == pytest.approx(first_run[2]["loss"], rel=1e-5)
    assert result.losses == [u["loss"] for u in second_run]
    assert {"checkpoint-4", "checkpoint-5"} <= {p.name for p in checkpoints.glob("checkpoint-*")}
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")


def test_resume_without_a_checkpoint_yet_starts_from_scratch(tiny_model_dir, rows, tmp_path):
    result = train_preference(
        tiny_model_dir,
        tmp_path / "out",
        rows,
        config_for("simpo", {**QUICK, "max_steps": 2}),
        checkpoint_dir=tmp_path / "none-yet",
        resume=True,
    )
    assert result.resumed_from_step == 0 and result.steps == 2


# --- unfinished fragments: no EOS after a side that stops mid-answer ------------------------------------------


def eos_logprob(model_dir, rows) -> float:
    """Mean log p(EOS | prompt + chosen) under the policy at `model_dir`."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total = 0.0
    for r in rows:
        ids = tokenizer(r["prompt"] + r["chosen"], return_tensors="pt").input_ids
        with torch.no_grad():
            total += model(ids).logits[0, -1].log_softmax(-1)[tokenizer.eos_token_id].item()
    return total / len(rows)


@pytest.mark.parametrize("algorithm", ["dpo", "ipo", "simpo", "orpo"])
def test_unfinished_sides_are_tokenised_without_eos(algorithm, tiny_model_dir, tokenizer, rows, tmp_path):
    import datasets

    from workers.train.common import load_policy
    from workers.train.preference import ALGORITHMS, _checked_rows
    from workers.train.rows import unfinished_without_eos

    config = config_for(algorithm, QUICK)
    mixed = [{**rows[0], "chosen_ends": False}, {**rows[1], "rejected_ends": False}, rows[2]]
    _, model = load_policy(tiny_model_dir, config)
    trainer = ALGORITHMS[algorithm].trainer_class()(
        model=model,
        args=trl_args(config, tmp_path),
        processing_class=tokenizer,
        train_dataset=datasets.Dataset.from_list(_checked_rows(mixed)),
    )
    data = unfinished_without_eos(trainer.train_dataset, algorithm, tokenizer.eos_token_id)
    key = "{}_ids" if algorithm in ("dpo", "ipo") else "{}_input_ids"
    eos = tokenizer.eos_token_id
    ends = [(data[i][key.format("chosen")][-1] == eos, data[i][key.format("rejected")][-1] == eos) for i in range(3)]
    assert ends == [(False, True), (True, False), (True, True)]
    before = trainer.train_dataset[0][key.format("chosen")]
    assert data[0][key.format("chosen")] == before[:-1]  # only the EOS went
    if algorithm in ("simpo", "orpo"):
        assert (
            len(data[0]["chosen_labels"]) == len(data[0]["chosen_input_ids"]) == len(data[0]["chosen_attention_mask"])
        )


def test_an_unfinished_fragment_does_not_teach_stopping(tiny_model_dir, rows, tmp_path):
    """SimPO with an SFT term (CPO-SimPO) on fragments that stop mid-answer: with the EOS TRL would add, the
    policy learns to end there; marked unfinished, it does not."""
    fragments = [
        {**r, "chosen": r["chosen"][: len(r["chosen"]) // 2], "rejected": r["rejected"][: len(r["rejected"]) // 2]}
        for r in rows
    ]
    fragments = [f for f in fragments if f["chosen"] != f["rejected"]]
    config = config_for("simpo", {**QUICK, "max_steps": 20, "learning_rate": 3e-3, "sft_weight": 1.0})
    base = eos_logprob(tiny_model_dir, fragments)
    train_preference(tiny_model_dir, tmp_path / "with-eos", fragments, config)
    train_preference(
        tiny_model_dir,
        tmp_path / "unfinished",
        [{**f, "chosen_ends": False, "rejected_ends": False} for f in fragments],
        config,
    )
    with_eos, unfinished = (
        eos_logprob(tmp_path / "with-eos", fragments),
        eos_logprob(tmp_path / "unfinished", fragments),
    )
    assert with_eos > base + 1.0  # the EOS after the fragment was learned
    assert unfinished < with_eos - 1.0
