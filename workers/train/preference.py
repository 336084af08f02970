"""Preference optimisation (rounds >= 1): DPO, IPO, SimPO or ORPO on a snapshot's chosen/rejected pairs, through TRL.

One frozen params dataclass per algorithm, a name -> (params, TRL arguments, TRL trainer) table, and
`train_preference`, which loads the policy, trains, and saves it with `save_pretrained`. With a
`checkpoint_dir` the trainer writes resumable checkpoints there, so a killed worker continues where it stopped.
What the trainers share (loading, logging, saving) is in `workers.train.common`; the rows' way into TRL (token ids,
EOS) in `workers.train.rows`.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

from workers.config import EngineConfig, Rule, above, at_least
from workers.progress import Progress
from workers.train.common import (
    TrainLog,
    across_ranks,
    last_checkpoint,
    load_policy,
    per_device,
    save_trained,
    training_arguments,
    trimmed,
    trl_trainer,
    world_size,
)
from workers.train.rows import ID_COLUMNS, TokenCounter, checked_ids, on_token_ids, unfinished_without_eos

# --- params: one frozen dataclass per algorithm, validated on construction


@dataclass(frozen=True)
class PreferenceParams(EngineConfig):
    """Settings every preference algorithm shares. Use a subclass (DPOParams, IPOParams, SimPOParams, ORPOParams)."""

    algorithm: ClassVar[str] = ""
    label: ClassVar[str] = "preference"

    # The rate DESIGN.md's tiny-model probe compared the algorithms at (DPO at 5e-4 collapsed the policy). For a
    # pretrained 7B use ~5e-7..1e-6: TRL's default is 1e-6, the SimPO paper searched 3e-7..1e-6.
    learning_rate: float = 5e-5
    epochs: float = 1.0  # passes over the snapshot's pairs
    batch_size: int = 8  # pairs per optimisation step
    max_length: int = 512  # tokens of prompt + one side; the tiny model has 512 positions. TRL's default: 1024
    warmup_ratio: float = 0.1  # linear warm-up over this share of the steps (SimPO / Zephyr DPO recipes: 10%)
    # Weight of an NLL (SFT) term on the chosen side. DPO/IPO: TRL loss_type [loss, "sft"] with loss_weights
    # [1, sft_weight]; SimPO: TRL's cpo_alpha (iTool's SimPO: 0). ORPO's loss has this term built in, so 0 there.
    # DESIGN.md probe: DPO + an SFT term (weight 1) was the only variant that improved the tiny policy.
    sft_weight: float = 0.0
    lora: bool = False  # LoRA adapters through PEFT (merged into the saved model) instead of full fine-tuning
    lora_r: int = 16  # as WarmupConfig (workers/train/sft.py)
    lora_alpha: int = 32
    seed: int = 0
    max_steps: int = -1  # cap for quick runs; -1 = the epochs decide
    logging_steps: int = 10  # a loss point (and a progress call) every this many steps
    save_steps: int = 100  # a resumable checkpoint every this many steps (only with a checkpoint_dir)
    keep_checkpoints: int = 2  # older checkpoints are deleted (save_total_limit)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.label = cls.algorithm or "preference"  # "unknown dpo setting(s)", "invalid simpo settings"

    def rules(self) -> list[Rule]:
        """The value checks every algorithm shares; subclasses add their own."""
        return [
            *above(self, 0, "learning_rate", "epochs"),
            *at_least(self, 1, "batch_size"),
            *at_least(self, 16, "max_length"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            *at_least(self, 0, "sft_weight"),
            *at_least(self, 1, "lora_r", "lora_alpha"),
            ("max_steps", self.max_steps == -1 or self.max_steps >= 1, "must be -1 (no cap) or >= 1"),
            *at_least(self, 1, "logging_steps", "save_steps", "keep_checkpoints"),
        ]


@dataclass(frozen=True)
class DPOParams(PreferenceParams):
    """DPO with the sigmoid loss (Rafailov et al. 2023)."""

    algorithm: ClassVar[str] = "dpo"
    beta: float = 0.1  # DPO paper and TRL DPOConfig default

    def rules(self) -> list[Rule]:
        return [*super().rules(), *above(self, 0, "beta")]


@dataclass(frozen=True)
class IPOParams(PreferenceParams):
    """IPO (Azar et al. 2023): DPO's trainer with the squared loss; beta is the paper's tau."""

    algorithm: ClassVar[str] = "ipo"
    beta: float = 0.1  # TRL DPOConfig default, used as tau for loss_type="ipo"

    def rules(self) -> list[Rule]:
        return [*super().rules(), *above(self, 0, "beta")]


@dataclass(frozen=True)
class SimPOParams(PreferenceParams):
    """SimPO (Meng et al. 2024), iTool's best: length-normalised log-likelihood margin, no reference model."""

    algorithm: ClassVar[str] = "simpo"
    beta: float = 2.5  # iTool's choice (SimPO paper: 2.0-2.5)
    gamma: float = 0.5  # target reward margin; iTool's choice. TRL CPOConfig.simpo_gamma (loss uses gamma / beta)

    def rules(self) -> list[Rule]:
        return [
            *super().rules(),
            *above(self, 0, "beta"),
            *at_least(self, 0, "gamma"),
        ]


@dataclass(frozen=True)
class ORPOParams(PreferenceParams):
    """ORPO (Hong et al. 2024): NLL on the chosen side plus beta times an odds-ratio term; no reference model."""

    algorithm: ClassVar[str] = "orpo"
    beta: float = 0.1  # lambda in the ORPO paper; TRL ORPOConfig default

    def rules(self) -> list[Rule]:
        return [
            *super().rules(),
            *above(self, 0, "beta"),
            (
                "sft_weight",
                self.sft_weight == 0,
                "must be 0 for ORPO: its loss already has the NLL term on the chosen side",
            ),
        ]


# --- the algorithm table: name -> params class, TRL arguments, TRL trainer class


def _trl_experimental(module: str):
    import importlib

    with warnings.catch_warnings():  # the experimental namespace warns on import; CPO and ORPO only live there
        warnings.filterwarnings("ignore", message=".*trl.experimental")
        return importlib.import_module(f"trl.experimental.{module}")


def _dpo_args(params: DPOParams | IPOParams, common: dict):
    from trl import DPOConfig

    loss = "sigmoid" if params.algorithm == "dpo" else "ipo"
    losses, weights = ([loss, "sft"], [1.0, params.sft_weight]) if params.sft_weight else ([loss], None)
    return DPOConfig(loss_type=losses, loss_weights=weights, beta=params.beta, **common)


def _simpo_args(params: SimPOParams, common: dict):
    cpo = _trl_experimental("cpo")
    return cpo.CPOConfig(
        loss_type="simpo",
        beta=params.beta,
        simpo_gamma=params.gamma,
        cpo_alpha=params.sft_weight,
        remove_unused_columns=False,
        **common,
    )


def _orpo_args(params: ORPOParams, common: dict):
    orpo = _trl_experimental("orpo")
    return orpo.ORPOConfig(beta=params.beta, remove_unused_columns=False, **common)


def _dpo_trainer():
    from trl import DPOTrainer

    return DPOTrainer


class Algorithm(NamedTuple):
    params: type[PreferenceParams]
    trl_args: Callable[[PreferenceParams, dict], object]  # (params, common TrainingArguments kwargs) -> TRL config
    trainer_class: Callable[[], type]  # imported on first use: TRL is slow to import


ALGORITHMS: dict[str, Algorithm] = {
    "dpo": Algorithm(DPOParams, _dpo_args, _dpo_trainer),
    "ipo": Algorithm(IPOParams, _dpo_args, _dpo_trainer),
    "simpo": Algorithm(SimPOParams, _simpo_args, lambda: _trl_experimental("cpo").CPOTrainer),
    "orpo": Algorithm(ORPOParams, _orpo_args, lambda: _trl_experimental("orpo").ORPOTrainer),
}


def config_for(algorithm: str, overrides: dict | None = None) -> PreferenceParams:
    """The params of `algorithm` ("dpo", "ipo", "simpo", "orpo") with `overrides` applied; unknown keys refused."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algorithm].params.from_dict(overrides)


def trl_args(params: PreferenceParams, output_dir: str | Path, save_checkpoints: bool = False):
    """The TRL config object `train_preference` trains with (exposed so a bare TRL run can use the same)."""
    common = training_arguments(params, output_dir, save_checkpoints)
    common.update(
        num_train_epochs=params.epochs,
        per_device_train_batch_size=per_device(params.batch_size),
        max_length=params.max_length,
        warmup_steps=params.warmup_ratio,
    )
    return ALGORITHMS[params.algorithm].trl_args(params, common)


# --- training


@dataclass
class PreferenceResult:
    algorithm: str
    examples: int  # pairs in the training set
    steps: int  # global step reached (counting the steps done before a resume)
    resumed_from_step: int  # 0 when the run started fresh
    first_loss: float
    last_loss: float
    seconds: float  # in the training loop (trainer.train)
    total_seconds: float  # the whole call: loading, tokenising, training, saving
    tokens: int  # prompt + chosen + rejected tokens of the pairs trained on in this call (each pass counted)
    tokens_per_second: float  # tokens / seconds
    losses: list[float] = field(default_factory=list)  # logged training losses, at most MAX_LOGGED_LOSSES
    world_size: int = 1  # processes that trained together (workers/train/launch.py); counts are over all of them
    examples_seen: int = 0  # pairs batched in this call, over all processes (rows x epochs when nothing is lost)
    distinct_examples_seen: int = 0  # ... of which distinct (by their token ids)


def train_preference(
    model_path: str | Path,
    output_dir: str | Path,
    rows: Sequence[dict],
    config: PreferenceParams = SimPOParams(),
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress_tokens: bool = False,
) -> PreferenceResult:
    """Train the policy at `model_path` on `{"prompt", "chosen", "rejected"}` rows and save it to `output_dir`.

    Prompts are already rendered (chat template + the shared assistant prefix); chosen/rejected are the
    continuations. A row may also carry the token ids the policy sampled (docs/token-ids.md): `prompt_ids`
    (chat prompt + prefix) and `chosen_ids` / `rejected_ids`; with `prompt_ids`, TRL trains on exactly those
    ids instead of tokenising the texts (a side without ids — an edited chosen — is tokenised on its own and
    appended, so nothing merges across the prompt's end). Rows without ids take TRL's text path.
    TRL ends both with EOS; a row whose side stops mid-answer (`chosen_ends` / `rejected_ends`
    False — a non-terminal fragment of a step-level pair) trains without it. With
    `checkpoint_dir`, a checkpoint is written every `config.save_steps` steps and `resume=True` continues from
    the last one (from scratch when there is none yet). `progress` receives {"step", "max_steps", "loss", "epoch"}
    (and "tokens_per_second" since the previous report, with `progress_tokens`). Launched on several processes
    (workers/train/launch.py), `config.batch_size` stays the pairs per step over all of them.
    """
    start = time.perf_counter()
    if not isinstance(config, PreferenceParams) or not config.algorithm:
        raise ValueError(f"config must be one of {', '.join(a.params.__name__ for a in ALGORITHMS.values())}")
    rows = _checked_rows(rows)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir the interrupted run wrote to")

    tokenizer, model = load_policy(model_path, config)
    with tempfile.TemporaryDirectory(prefix="itool-pref-") as scratch:
        args = trl_args(config, checkpoint_dir or scratch, save_checkpoints=checkpoint_dir is not None)
        counter = None
        log = TrainLog(progress, tokens=(lambda: counter.tokens * world_size()) if progress_tokens else None)
        trainer_class = on_token_ids(ALGORITHMS[config.algorithm].trainer_class())
        trainer = trl_trainer(trainer_class, rows, model=model, args=args, tokenizer=tokenizer, callback=log.callback)
        if config.algorithm in ("simpo", "orpo"):  # the rows' id columns, now in TRL's own (DPOTrainer's are these)
            trainer.train_dataset = trainer.train_dataset.remove_columns(list(ID_COLUMNS))
        trainer.train_dataset = unfinished_without_eos(trainer.train_dataset, config.algorithm, tokenizer.eos_token_id)
        counter = TokenCounter(trainer.data_collator)
        trainer.data_collator = counter
        checkpoint = last_checkpoint(checkpoint_dir) if resume else None
        train_start = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=checkpoint)
        seconds = time.perf_counter() - train_start
        save_trained(trainer, tokenizer, output_dir, config.lora)
        per_rank = across_ranks(trainer, (counter.tokens, counter.examples, sorted(counter.fingerprints)))
    tokens = sum(t for t, _, _ in per_rank)
    losses = log.losses or [output.training_loss]
    return PreferenceResult(
        algorithm=config.algorithm,
        examples=len(rows),
        steps=output.global_step,
        resumed_from_step=log.start_step,
        first_loss=losses[0],
        last_loss=losses[-1],
        seconds=seconds,
        total_seconds=time.perf_counter() - start,
        tokens=tokens,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        losses=trimmed(losses),
        world_size=len(per_rank),
        examples_seen=sum(n for _, n, _ in per_rank),
        distinct_examples_seen=len({f for _, _, seen in per_rank for f in seen}),
    )


def _checked_rows(rows: Sequence[dict]) -> list[dict]:
    if not rows:
        raise ValueError("no preference rows to train on")
    checked = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"row {index}: expected a dict with prompt, chosen and rejected, got {type(row).__name__}")
        missing = [key for key in ("prompt", "chosen", "rejected") if not isinstance(row.get(key), str)]
        if missing:
            raise ValueError(f"row {index}: missing or non-text {', '.join(missing)}")
        if not row["chosen"] or not row["rejected"]:
            raise ValueError(f"row {index}: chosen and rejected must not be empty")
        if row["chosen"] == row["rejected"]:
            raise ValueError(f"row {index}: chosen and rejected are identical, so there is nothing to prefer")
        ends = {key: row.get(key, True) for key in ("chosen_ends", "rejected_ends")}
        if not all(isinstance(v, bool) for v in ends.values()):
            raise ValueError(f"row {index}: chosen_ends / rejected_ends must be true or false")
        ids = {key: checked_ids(row.get(key), f"row {index}: {key}") for key in ID_COLUMNS}
        if (ids["chosen_ids"] or ids["rejected_ids"]) and not ids["prompt_ids"]:
            raise ValueError(f"row {index}: chosen_ids / rejected_ids need the prompt_ids they continue")
        checked.append({**{key: row[key] for key in ("prompt", "chosen", "rejected")}, **ends, **ids})
    return checked
