"""Preference rows on their way into TRL: the token ids a row carries (the ids the policy sampled, docs/token-ids.md)
instead of TRL's own tokenisation, no EOS after a fragment that stops mid-answer, and the count of the pairs each
process batched."""

from __future__ import annotations

ID_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def checked_ids(value, where: str) -> list[int]:
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


def on_token_ids(trainer_class):
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


def unfinished_without_eos(dataset, algorithm: str, eos_id: int):
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


class TokenCounter:
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
