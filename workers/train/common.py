"""What the trainers share (preference, GRPO, the warm-up SFT): training arguments, processes and per-device
batches, loading and saving the policy, building a TRL trainer, checkpoints, and the loss log."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from workers.progress import Progress

MAX_LOGGED_LOSSES = 200  # results keep at most this many loss points (evenly spaced, first and last kept)


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
