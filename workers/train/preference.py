"""Preference optimisation (rounds >= 1): DPO, IPO, SimPO or ORPO on a snapshot's chosen/rejected pairs, through TRL.

One frozen params dataclass per algorithm, a name -> (params, TRL arguments, TRL trainer) table, and
`train_preference`, which loads the policy, trains, and saves it with `save_pretrained`. With a
`checkpoint_dir` the trainer writes resumable checkpoints there, so a killed worker continues where it stopped.
The helpers below the table (loading, logging, saving) are shared with `workers.train.grpo` and
`workers.train.sft`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

from workers.config import EngineConfig, Rule, above, at_least
from workers.progress import Progress

MAX_LOGGED_LOSSES = 200  # results keep at most this many loss points (evenly spaced, first and last kept)


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
        trainer_class = _on_token_ids(ALGORITHMS[config.algorithm].trainer_class())
        trainer = trl_trainer(trainer_class, rows, model=model, args=args, tokenizer=tokenizer, callback=log.callback)
        if config.algorithm in ("simpo", "orpo"):  # the rows' id columns, now in TRL's own (DPOTrainer's are these)
            trainer.train_dataset = trainer.train_dataset.remove_columns(list(_ID_COLUMNS))
        trainer.train_dataset = _unfinished_without_eos(trainer.train_dataset, config.algorithm, tokenizer.eos_token_id)
        counter = _TokenCounter(trainer.data_collator)
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
        ids = {key: _checked_ids(row.get(key), f"row {index}: {key}") for key in _ID_COLUMNS}
        if (ids["chosen_ids"] or ids["rejected_ids"]) and not ids["prompt_ids"]:
            raise ValueError(f"row {index}: chosen_ids / rejected_ids need the prompt_ids they continue")
        checked.append({**{key: row[key] for key in ("prompt", "chosen", "rejected")}, **ends, **ids})
    return checked


_ID_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def _checked_ids(value, where: str) -> list[int]:
    """A row's token ids as a list ([] when absent)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise ValueError(f"{where} must be a list of token ids (integers >= 0)")
    return list(value)


def _side_ids(example: dict, side: str, tokenizer) -> list[int]:
    """A side's ids for a row with prompt ids, ending with EOS as TRL ends every side (stripped later for a side
    that stops mid-answer): the sampled ids, or the side's text tokenised on its own (after an edit)."""
    ids = list(example[f"{side}_ids"]) or tokenizer(example[side], add_special_tokens=False)["input_ids"]
    return ids if ids and ids[-1] == tokenizer.eos_token_id else ids + [tokenizer.eos_token_id]


def _on_token_ids(trainer_class):
    """`trainer_class` taught to train rows that carry `prompt_ids` on exactly those ids.

    TRL 1.16 tokenises prompt and completion itself: DPOTrainer in `_prepare_dataset` (prompt alone, then
    prompt + completion, cut where they diverge, with the "not a prefix" warning), the CPO and ORPO trainers in
    `tokenize_row`. The subclass builds the same columns from the ids for those rows and leaves the others to
    TRL; nothing else of the trainers changes (collators, losses, truncation of the completion)."""
    if hasattr(trainer_class, "tokenize_row"):  # CPO (SimPO) and ORPO

        class WithTokenIds(trainer_class):
            def tokenize_row(self, feature, model=None):
                if not feature.get("prompt_ids"):
                    return super().tokenize_row(feature, model)
                prompt = list(feature["prompt_ids"])
                batch = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
                for side in ("chosen", "rejected"):
                    answer = _side_ids(feature, side, self.processing_class)
                    answer = answer[: max(0, self.max_length - len(prompt))]
                    batch[f"{side}_input_ids"] = prompt + answer
                    batch[f"{side}_attention_mask"] = [1] * (len(prompt) + len(answer))
                    batch[f"{side}_labels"] = [-100] * len(prompt) + answer
                return batch
    else:  # DPOTrainer (DPO, IPO)

        class WithTokenIds(trainer_class):
            def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
                given = [i for i, ids in enumerate(dataset["prompt_ids"]) if ids]
                if not given:
                    return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
                import datasets

                tokenizer = getattr(processing_class, "tokenizer", processing_class)
                with_ids = dataset.select(given).map(
                    lambda example: {
                        "chosen_ids": _side_ids(example, "chosen", tokenizer),
                        "rejected_ids": _side_ids(example, "rejected", tokenizer),
                    }
                )
                if args.max_length is not None and args.truncation_mode == "keep_start":  # as TRL drops them
                    with_ids = with_ids.filter(lambda example: len(example["prompt_ids"]) < args.max_length)
                others = sorted(set(range(len(dataset))) - set(given))
                if not others:
                    return with_ids
                text = super()._prepare_dataset(dataset.select(others), processing_class, args, dataset_name)
                return datasets.concatenate_datasets([text.cast(with_ids.features), with_ids])

    WithTokenIds.__name__ = WithTokenIds.__qualname__ = trainer_class.__name__
    return WithTokenIds


# The token columns each trainer builds for a side: DPOTrainer tokenises the completion apart (`chosen_ids`);
# the CPO (SimPO) and ORPO trainers store prompt + completion with labels.
_SIDE_COLUMNS = {
    "dpo": ("{side}_ids",),
    "ipo": ("{side}_ids",),
    "simpo": ("{side}_input_ids", "{side}_attention_mask", "{side}_labels"),
    "orpo": ("{side}_input_ids", "{side}_attention_mask", "{side}_labels"),
}


def _unfinished_without_eos(dataset, algorithm: str, eos_id: int):
    """TRL ends every chosen and rejected text with EOS. A step-level pair compares fragments that stop mid-
    answer (the rest of the answer follows in later steps): an EOS there would teach the policy to stop after
    the fragment. Rows mark such sides `chosen_ends` / `rejected_ends` = False; their trailing EOS is removed
    from the tokenised columns, so the loss covers the fragment's own tokens only."""
    if all(dataset["chosen_ends"]) and all(dataset["rejected_ends"]):
        return dataset

    def strip(example):
        for side in ("chosen", "rejected"):
            if example[f"{side}_ends"]:
                continue
            columns = [c.format(side=side) for c in _SIDE_COLUMNS[algorithm]]
            ids = example[columns[0]]
            if len(ids) > 1 and ids[-1] == eos_id:
                for column in columns:
                    example[column] = example[column][:-1]
        return example

    return dataset.map(strip)


class _TokenCounter:
    """Wraps the trainer's collator and counts the prompt + chosen + rejected tokens of every batch it builds, and
    the pairs (with a fingerprint of each, so pairs lost or doubled across processes show)."""

    def __init__(self, collate):
        self.collate, self.tokens, self.examples = collate, 0, 0
        self.fingerprints: set[int] = set()

    def __call__(self, features: list[dict]):
        for f in features:
            if "prompt_ids" in f:  # DPOTrainer: the three parts tokenised apart
                self.tokens += len(f["prompt_ids"]) + len(f["chosen_ids"]) + len(f["rejected_ids"])
                ids = (*f["prompt_ids"], -1, *f["chosen_ids"], -1, *f["rejected_ids"])
            else:  # CPO / ORPO trainers: chosen and rejected sequences each include the prompt
                self.tokens += len(f["chosen_input_ids"]) + len(f["rejected_input_ids"]) - len(f["prompt_input_ids"])
                ids = (*f["chosen_input_ids"], -1, *f["rejected_input_ids"])
            self.examples += 1
            self.fingerprints.add(hash(ids))  # ints and tuples of ints hash the same in every process
        return self.collate(features)


# --- shared with workers.train.grpo: arguments, loading, logging, checkpoints, saving


def training_arguments(params, output_dir: str | Path, save_checkpoints: bool) -> dict:
    """TrainingArguments kwargs every engine here uses (`params` has seed, max_steps, learning rate, ...)."""
    import torch

    cuda = torch.cuda.is_available()
    return dict(
        output_dir=str(output_dir),
        learning_rate=params.learning_rate,
        max_steps=params.max_steps,
        logging_steps=params.logging_steps,
        seed=params.seed,
        report_to="none",
        disable_tqdm=True,
        save_strategy="steps" if save_checkpoints else "no",
        save_steps=params.save_steps,
        save_total_limit=params.keep_checkpoints,
        use_cpu=not cuda,
        dataloader_num_workers=0,
        # TRL turns bf16 on by default, on CPU too; there it ran slower than fp32 here (SimPO, 6 steps: 0.55 s
        # against 0.38 s), and the tiny model does not need the memory.
        bf16=cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,  # TRL turns it on by default; it only pays off for large models
    )


def world_size() -> int:
    """Processes training together: WORLD_SIZE as `accelerate launch` (or torchrun) sets it; 1 in-process."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def per_device(batch: int, what: str = "batch_size") -> int:
    """A step's `batch` shared over the processes: each takes an equal part, so a step trains on the same number
    of examples however many processes run it (and one process reproduces the in-process run)."""
    processes = world_size()
    if batch % processes:
        raise ValueError(
            f"{what} {batch} does not split evenly over {processes} processes: use a multiple of {processes}"
        )
    return batch // processes


def across_ranks(trainer, value) -> list:
    """`value` from every process, in rank order ([value] in a single process)."""
    if trainer.accelerator.num_processes == 1:
        return [value]
    from accelerate.utils import gather_object

    return gather_object([value])


def load_policy(model_path: str | Path, params):
    """Tokenizer and model from `model_path`, as every trainer (SFT, preference, GRPO) starts: progress bars off,
    torch seeded with `params.seed`, the model wrapped with LoRA adapters when `params.lora`."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()  # progress goes through the caller's callback, not a bar per dataset pass
    hf_logging.disable_progress_bar()
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    if params.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=params.lora_r, lora_alpha=params.lora_alpha, task_type="CAUSAL_LM", target_modules="all-linear"
            ),
        )
    return tokenizer, model


def trl_trainer(trainer_class, rows: list[dict], *, model, args, tokenizer, callback, **kwargs):
    """A `trainer_class` (a TRL trainer) on `rows` that reports through `callback` only: no console printing."""
    import datasets
    from transformers import PrinterCallback

    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[callback],
        **kwargs,
    )
    trainer.remove_callback(PrinterCallback)  # losses reach the caller through `progress` instead
    return trainer


def save_policy(model, tokenizer, output_dir: str | Path, lora: bool) -> None:
    if lora:
        model = model.merge_and_unload()
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def save_trained(trainer, tokenizer, output_dir: str | Path, lora: bool) -> None:
    """Save the trained policy once. In-process as `save_policy`; across processes the main one writes: a LoRA
    policy merged there (DDP: every process holds the whole model), a full one through `trainer.save_model`, which
    gathers FSDP / ZeRO-3 shards first. The others wait until it is written."""
    accelerator = trainer.accelerator
    if accelerator.num_processes == 1:
        save_policy(trainer.model, tokenizer, output_dir, lora)
        return
    if lora:
        if accelerator.is_main_process:
            save_policy(accelerator.unwrap_model(trainer.model), tokenizer, output_dir, lora)
    else:
        trainer.save_model(str(output_dir))
        if accelerator.is_main_process:
            tokenizer.save_pretrained(output_dir)
    accelerator.wait_for_everyone()


def last_checkpoint(checkpoint_dir: str | Path) -> str | None:
    """The newest complete `checkpoint-N` the trainer wrote under `checkpoint_dir`, or None (nothing saved yet).

    The trainer writes trainer_state.json after the weights, optimiser and RNG states, and deletes older
    checkpoints only after that: a checkpoint a kill interrupted has no readable state file and is passed over.
    """
    steps = {
        int(p.name.rsplit("-", 1)[1]): p
        for p in Path(checkpoint_dir).glob("checkpoint-*")
        if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()
    }
    for step in sorted(steps, reverse=True):
        try:
            json.loads((steps[step] / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(steps[step])
    return None


class TrainLog:
    """A TrainerCallback collecting the logged losses and forwarding {"step", "max_steps", "loss", "epoch"} (plus
    the `extra` logged values present, and "tokens_per_second" since the previous report when `tokens` counts the
    tokens trained so far) to `progress`."""

    def __init__(
        self,
        progress: Progress | None,
        extra: Sequence[str] = (),
        tokens: Callable[[], int] | None = None,
    ):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):  # after a resume's state is loaded
                outer.start_step, outer.start_tokens = state.global_step, state.num_input_tokens_seen
                outer.mark = (time.perf_counter(), outer.tokens() if outer.tokens else 0)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if not logs or "loss" not in logs:  # the end-of-training summary has train_loss, not loss
                    return
                outer.losses.append(float(logs["loss"]))
                if outer.progress:
                    outer.progress(
                        {
                            "step": state.global_step,
                            "max_steps": state.max_steps,
                            "loss": float(logs["loss"]),
                            "epoch": float(state.epoch or 0.0),
                            **{key: float(logs[key]) for key in outer.extra if key in logs},
                            **outer.token_rate(),
                        }
                    )

        self.start_step, self.start_tokens = 0, 0  # where this call's training began (> 0 after a resume)
        self.losses: list[float] = []
        self.progress, self.extra, self.tokens = progress, tuple(extra), tokens
        self.mark = (time.perf_counter(), 0)  # (time, tokens) when training began
        self.callback = Callback()

    def token_rate(self) -> dict:
        """Tokens per second since this call's training began (a rate over the whole run so far: the data loader
        builds a batch ahead of the step, so a rate between two reports would swing)."""
        if self.tokens is None:
            return {}
        (began, before), now = self.mark, time.perf_counter()
        return {"tokens_per_second": (self.tokens() - before) / (now - began) if now > began else 0.0}


def trimmed(values: list[float], limit: int = MAX_LOGGED_LOSSES) -> list[float]:
    """At most `limit` values, evenly spaced over the list, first and last kept."""
    if len(values) <= limit:
        return list(values)
    return [values[round(k * (len(values) - 1) / (limit - 1))] for k in range(limit)]
