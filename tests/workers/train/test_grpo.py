"""GRPO: completions of each prompt are scored by that prompt's reward, the policy updates, a killed run resumes."""

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from workers.llm.tiny import render_prompt
from workers.train.grpo import GRPOParams, train_grpo

QUICK = {
    "num_generations": 4,
    "max_completion_length": 8,
    "batch_size": 1,
    "max_steps": 3,
    "logging_steps": 1,
    "learning_rate": 1e-3,
}


@pytest.fixture(scope="module")
def prompts(tiny_model_dir, tiny_queries):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return [render_prompt(tokenizer, q["messages"], q["tools"]) for q in tiny_queries[:3]]


class RecordingReward:
    """The reward of prompt `index`: remembers what it scored and what it returned."""

    def __init__(self, index: int, log: list):
        self.index, self.log = index, log

    def __call__(self, completion: str) -> float:
        score = self.index + len(completion) / 100  # differs within a group, so advantages are not all zero
        self.log.append((self.index, completion, score))
        return score


def test_grpo_scores_each_prompts_completions_with_its_reward_and_updates_the_policy(tiny_model_dir, prompts, tmp_path):
    scored, updates = [], []
    rewards = [RecordingReward(i, scored) for i in range(len(prompts))]

    result = train_grpo(
        tiny_model_dir, tmp_path / "out", prompts, rewards, GRPOParams(**QUICK), progress=updates.append
    )

    # One prompt per step, 4 samples each: the reward calls come in groups of 4 from one prompt's reward.
    assert len(scored) == result.completions == 3 * 4
    groups = [scored[k : k + 4] for k in range(0, len(scored), 4)]
    assert all(len({index for index, _, _ in group}) == 1 for group in groups)
    assert all(isinstance(completion, str) and completion for _, completion, _ in scored)
    assert {index for index, _, _ in scored} <= set(range(len(prompts)))

    assert result.steps == 3 and [u["step"] for u in updates] == [1, 2, 3]
    assert all(u.keys() == {"step", "max_steps", "loss", "epoch", "reward"} for u in updates)
    assert all(math.isfinite(x) for x in result.losses + result.rewards)
    assert result.mean_reward == pytest.approx(sum(score for _, _, score in scored) / len(scored))
    assert result.first_reward == pytest.approx(sum(s for _, _, s in groups[0]) / 4)
    assert result.last_reward == pytest.approx(sum(s for _, _, s in groups[-1]) / 4)
    assert [u["reward"] for u in updates] == pytest.approx(result.rewards, rel=1e-5)
    assert result.tokens > 3 * 4 and result.tokens_per_second > 0

    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[name], after[name]) for name in before)
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")


def test_a_killed_grpo_run_resumes_from_its_last_checkpoint(tiny_model_dir, prompts, tmp_path):
    class Killed(Exception):
        pass

    def die_at_step_2(update):
        if update["step"] == 2:
            raise Killed

    config = GRPOParams(**{**QUICK, "save_steps": 1})
    rewards = [RecordingReward(i, []) for i in range(len(prompts))]
    with pytest.raises(Killed):
        train_grpo(
            tiny_model_dir,
            tmp_path / "out",
            prompts,
            rewards,
            config,
            progress=die_at_step_2,
            checkpoint_dir=tmp_path / "checkpoints",
        )

    result = train_grpo(
        tiny_model_dir, tmp_path / "out", prompts, rewards, config, checkpoint_dir=tmp_path / "checkpoints", resume=True
    )
    assert result.resumed_from_step == 1 and result.steps == 3 and result.completions == 2 * 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_generations": 1}, "num_generations must be >= 2"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"loss_type": "ppo"}, "loss_type must be one of grpo, dapo, dr_grpo, bnpo"),
        ({"beta": -1}, "beta must be >= 0"),
        ({"batch_size": 2.0}, "batch_size must be int"),
        ({"kl": 0.1}, "unknown grpo setting(s): kl"),
        ({"reward": "judge"}, "reward must be one of checker, solve_f1"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError) as error:
        GRPOParams.from_dict(overrides)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "prompts, rewards, message",
    [
        ([], [], "no prompts"),
        (["p", "q"], [len], "one reward function per prompt: 2 prompts, 1 rewards"),
        (["p", ""], [len, len], "prompt 1: expected non-empty text"),
        (["p"], [0.5], "reward 0: expected a callable"),
    ],
)
def test_bad_inputs_are_refused(prompts, rewards, message, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=message):
        train_grpo(tiny_model_dir, tmp_path / "out", prompts, rewards, GRPOParams())
