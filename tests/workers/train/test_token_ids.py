"""Preference rows that carry the sampled token ids train on exactly those ids (no retokenising across the
prompt's end); rows without ids keep TRL's text path."""

import pytest
from transformers import AutoTokenizer

from workers.llm.tiny import render_prompt
from workers.train import preference
from workers.train.preference import config_for, train_preference

QUICK = {"max_steps": 1, "batch_size": 8, "learning_rate": 1e-4, "warmup_ratio": 0.0, "logging_steps": 1}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def mid_token_rows(tokenizer, tiny_queries):
    """Step-level rows whose prompt ends mid-answer where the text would tokenise differently across the end:
    the ids are those a policy samples there (the prompt's tokens, then the fragment's on their own)."""
    rows = []
    for query in tiny_queries:
        rendered, answer = render_prompt(tokenizer, query["messages"], query["tools"]), query["reference_output"]
        for cut in [i + 1 for i, ch in enumerate(answer) if ch in "(="]:
            prefix, fragment = answer[:cut], answer[cut : cut + 12]
            prompt_ids = encode(tokenizer, rendered) + encode(tokenizer, prefix)
            chosen_ids = encode(tokenizer, fragment)
            if encode(tokenizer, rendered + prefix + fragment) == prompt_ids + chosen_ids or not fragment.strip():
                continue  # no merge across the end here: not the case under test
            rejected = fragment[::-1]
            rows.append(
                {
                    "prompt": rendered + prefix,
                    "chosen": fragment,
                    "rejected": rejected,
                    "chosen_ends": False,
                    "rejected_ends": False,
                    "prompt_ids": prompt_ids,
                    "chosen_ids": chosen_ids,
                    "rejected_ids": encode(tokenizer, rejected),
                }
            )
            break
        if len(rows) == 8:
            return rows
    pytest.fail(f"only {len(rows)} queries give a prompt end that merges across; the test needs 8")


@pytest.fixture
def recorded(monkeypatch):
    """The batches the trainer collates, and TRL's "not a prefix" warnings."""
    batches, warnings = [], []
    collate = preference.TokenCounter.__call__

    def record(self, features):
        batch = collate(self, features)
        batches.append(batch)
        return batch

    monkeypatch.setattr(preference.TokenCounter, "__call__", record)
    from trl.trainer import dpo_trainer

    def warning_once(message, *args, **kwargs):
        if "not a prefix" in message:
            warnings.append(message)

    monkeypatch.setattr(dpo_trainer.logger, "warning_once", warning_once)
    return batches, warnings


def sequences(batch, key, mask_key):
    return [ids[mask.bool()].tolist() for ids, mask in zip(batch[key], batch[mask_key])]


def test_dpo_trains_on_the_sampled_ids_without_the_prefix_warning(tiny_model_dir, mid_token_rows, recorded, tmp_path):
    batches, warnings = recorded
    train_preference(tiny_model_dir, tmp_path / "out", mid_token_rows, config_for("dpo", QUICK))
    assert warnings == []
    trained = sequences(batches[0], "input_ids", "attention_mask")
    expected = {tuple(r["prompt_ids"] + r["chosen_ids"]) for r in mid_token_rows} | {
        tuple(r["prompt_ids"] + r["rejected_ids"]) for r in mid_token_rows
    }
    assert {tuple(seq) for seq in trained} == expected  # exactly the sampled ids, no EOS on mid-answer sides


def test_the_same_rows_as_text_hit_the_boundary(tiny_model_dir, mid_token_rows, recorded, tmp_path):
    """The control: without ids TRL retokenises, warns, and trains on other ids than were sampled."""
    batches, warnings = recorded
    text_rows = [{k: v for k, v in r.items() if not k.endswith("_ids")} for r in mid_token_rows]
    train_preference(tiny_model_dir, tmp_path / "out", text_rows, config_for("dpo", QUICK))
    assert warnings
    trained = {tuple(seq) for seq in sequences(batches[0], "input_ids", "attention_mask")}
    assert not trained & {tuple(r["prompt_ids"] + r["chosen_ids"]) for r in mid_token_rows}


@pytest.mark.parametrize("algorithm", ["simpo", "orpo"])
def test_cpo_and_orpo_train_on_the_sampled_ids(algorithm, tiny_model_dir, mid_token_rows, recorded, tmp_path):
    batches, _ = recorded
    train_preference(tiny_model_dir, tmp_path / "out", mid_token_rows, config_for(algorithm, QUICK))
    chosen = sequences(batches[0], "chosen_input_ids", "chosen_attention_mask")
    assert {tuple(s) for s in chosen} == {tuple(r["prompt_ids"] + r["chosen_ids"]) for r in mid_token_rows}
    labels = batches[0]["chosen_labels"]
    assert sorted((labels != -100).sum(-1).tolist()) == sorted(len(r["chosen_ids"]) for r in mid_token_rows)


def test_text_rows_and_id_rows_train_together(tiny_model_dir, tokenizer, mid_token_rows, recorded, tmp_path):
    """Mixed rows (ids on some, an edited chosen without its ids on one, text only on the rest) train; an edited
    side is tokenised on its own after the exact prompt ids, and a finished side ends with EOS."""
    batches, _ = recorded
    edited = {**mid_token_rows[0], "chosen": "city='Oslo')]", "chosen_ids": None, "chosen_ends": True}
    text_only = [{k: v for k, v in r.items() if not k.endswith("_ids")} for r in mid_token_rows[4:]]
    rows = [edited, *mid_token_rows[1:4], *text_only]
    result = train_preference(tiny_model_dir, tmp_path / "out", rows, config_for("dpo", QUICK))
    assert result.examples == 8
    trained = {tuple(seq) for seq in sequences(batches[0], "input_ids", "attention_mask")}
    assert tuple(edited["prompt_ids"] + encode(tokenizer, "city='Oslo')]") + [tokenizer.eos_token_id]) in trained
    assert tuple(mid_token_rows[1]["prompt_ids"] + mid_token_rows[1]["chosen_ids"]) in trained


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"prompt_ids": [1, -2]}, "prompt_ids must be a list of token ids"),
        ({"prompt_ids": None, "chosen_ids": [1]}, "need the prompt_ids"),
        ({"rejected_ids": "1 2"}, "rejected_ids must be a list"),
    ],
)
def test_bad_ids_are_refused_naming_the_row(bad, message, tiny_model_dir, mid_token_rows, tmp_path):
    with pytest.raises(ValueError, match=message):
        train_preference(tiny_model_dir, tmp_path / "out", [{**mid_token_rows[0], **bad}], config_for("dpo", QUICK))
