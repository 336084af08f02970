"""Warm-up SFT (round 0): iTool's easy-to-hard curriculum, one TRL SFTTrainer pass per difficulty bucket."""
from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BUCKETS = ("easy", "medium", "hard")  # iTool: warm up on easy data first, then medium, then hard


@dataclass(frozen=True)
class WarmupConfig:
    epochs: float = 3.0  # passes over each bucket
    learning_rate: float = 3e-3  # a tiny model trained from scratch; use ~2e-5 for a pretrained 7B model
    batch_size: int = 32
    max_length: int = 384  # tokens per example (prompt + answer), or per packed row
    cumulative: bool = True  # stage k trains on buckets 1..k (easy, +medium, +hard) rather than bucket k alone
    packing: bool = False  # pack several examples per row (BFD): far fewer padded tokens for short examples
    warmup_steps: int = 10  # linear warm-up of the learning rate at the start of each bucket
    weight_decay: float = 0.0
    lora: bool = False  # LoRA adapters through PEFT instead of full fine-tuning
    lora_r: int = 16
    lora_alpha: int = 32
    seed: int = 0
    max_steps_per_bucket: int = -1  # cap for quick runs; -1 = the epochs decide
    logging_steps: int = 10

    def __post_init__(self):
        if self.epochs <= 0 or self.learning_rate <= 0 or self.batch_size < 1 or self.max_length < 8:
            raise ValueError("epochs, learning_rate must be positive, batch_size >= 1, max_length >= 8")


@dataclass
class BucketResult:
    bucket: str
    examples: int
    steps: int
    first_loss: float
    last_loss: float
    seconds: float


class _LossLog:
    """A TrainerCallback collecting the training loss (and forwarding progress)."""

    def __init__(self, progress: Callable[[dict], None] | None, bucket: str):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    outer.losses.append(float(logs["loss"]))
                    if outer.progress:
                        outer.progress({"bucket": outer.bucket, "step": state.global_step,
                                        "max_steps": state.max_steps, "loss": float(logs["loss"])})

        self.losses: list[float] = []
        self.progress, self.bucket = progress, bucket
        self.callback = Callback()


def warmup_sft(model_path: str | Path, output_dir: str | Path, examples: Mapping[str, Sequence[dict]],
               config: WarmupConfig = WarmupConfig(),
               progress: Callable[[dict], None] | None = None) -> list[BucketResult]:
    """Fine-tune the policy at `model_path` on `{"prompt", "completion"}` examples, stage by stage in
    BUCKETS order (easy first), and save it (model + tokenizer) to `output_dir`. Loss is on the completion only."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()  # progress goes through `progress`, not a bar per dataset pass
    hf_logging.disable_progress_bar()

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    if config.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                                 task_type="CAUSAL_LM", target_modules="all-linear"))
    eos = tokenizer.eos_token or ""
    results = []
    with tempfile.TemporaryDirectory(prefix="itool-sft-") as scratch:
        seen: list[dict] = []
        for bucket in BUCKETS:
            fresh = [{"prompt": e["prompt"], "completion": e["completion"] if e["completion"].endswith(eos)
                      else e["completion"] + eos} for e in examples.get(bucket, [])]
            if not fresh:
                continue
            # Cumulative: each stage adds the harder bucket to what came before, so the model does not
            # forget single calls while it learns parallel and multi-hop ones.
            seen += fresh
            rows = list(seen) if config.cumulative else fresh
            args = SFTConfig(
                output_dir=str(Path(scratch) / bucket), num_train_epochs=config.epochs,
                max_steps=config.max_steps_per_bucket, per_device_train_batch_size=config.batch_size,
                learning_rate=config.learning_rate, warmup_steps=config.warmup_steps,
                weight_decay=config.weight_decay, max_length=config.max_length, completion_only_loss=True,
                packing=config.packing,
                logging_steps=config.logging_steps, save_strategy="no", report_to="none", seed=config.seed,
                use_cpu=not torch.cuda.is_available(), disable_tqdm=True, dataloader_num_workers=0,
                gradient_checkpointing=False,  # TRL turns it on by default; it only pays off for large models
            )
            log = _LossLog(progress, bucket)
            start = time.perf_counter()
            trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=tokenizer, callbacks=[log.callback])
            trainer.remove_callback(PrinterCallback)  # losses reach the caller through `progress` instead
            output = trainer.train()
            model = trainer.model
            losses = log.losses or [output.training_loss]
            results.append(BucketResult(bucket, len(rows), output.global_step, losses[0], losses[-1],
                                        time.perf_counter() - start))
    if config.lora:
        model = model.merge_and_unload()
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return results


def results_summary(results: list[BucketResult]) -> dict:
    return {"buckets": [asdict(r) for r in results],
            "final_loss": results[-1].last_loss if results else math.nan}
