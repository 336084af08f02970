"""trl rows through TRL's own tokenisation: exported with `--complete --span completion` every side is a whole
answer after a boundary-safe prompt, so DPOTrainer gives no "tokenized prompt is not a prefix" warning and trains
each side with the EOS that really ends it; the rows' token ids are the sampled ones, split where the texts are."""

import pytest
from django.core.management import call_command

from apps.datasets.services import snapshot_freeze, snapshot_rows
from apps.training.policy import policy_tokenizer
from tests.factories import QueryFactory, SearchTreeFactory, TreeNodeFactory

ANSWERS = {"Paris": "[get_weather(city='Paris', unit='c')]", "Lyon": "[get_weather(city='Lyon', unit='c')]"}


@pytest.fixture
def sampled_pairs(project, make_pair, round_, checkpoint):
    """Two step-level pairs as the search makes them on the tiny policy: cuts on token boundaries, each node with
    the ids it sampled; the chosen (Paris) and rejected (Lyon) fragments stop mid-answer (`city='…',`), each with
    a finished rollout below it (`unit='c')]`). The prefix `[get_weather(city` ends where BPE merges `(` + `city`:
    the place where a text prompt is not a prefix of prompt + completion."""
    tokenizer = policy_tokenizer(checkpoint)
    ids = {city: tokenizer(text, add_special_tokens=False)["input_ids"] for city, text in ANSWERS.items()}
    assert ids["Paris"][:3] == ids["Lyon"][:3]  # `[get`, `_weather`, `(city`
    text = tokenizer.decode
    for n in range(2):
        query = QueryFactory(project=project, messages=[{"role": "user", "content": f"Weather in Paris? ({n})"}])
        tree = SearchTreeFactory(project=project, query=query)
        root = TreeNodeFactory(tree=tree, fragment="", token_ids=[])
        branch = TreeNodeFactory(tree=tree, parent=root, fragment=text(ids["Paris"][:3]), token_ids=ids["Paris"][:3])
        sides = {}
        for ordinal, city in enumerate(("Paris", "Lyon")):
            cut = len(tokenizer(f"[get_weather(city='{city}',", add_special_tokens=False)["input_ids"])
            side = TreeNodeFactory(
                tree=tree, parent=branch, fragment=text(ids[city][3:cut]), token_ids=ids[city][3:cut], ordinal=ordinal
            )
            TreeNodeFactory(
                tree=tree,
                parent=side,
                fragment=text(ids[city][cut:]),
                token_ids=ids[city][cut:],
                is_terminal=True,
                terminal_reward=1.0 if city == "Paris" else -0.5,
            )
            sides[city] = side
        make_pair(
            "approved",
            round=round_,
            query=query,
            tree=tree,
            node=branch,
            chosen_node=sides["Paris"],
            rejected_node=sides["Lyon"],
            prefix=branch.fragment,
            chosen=sides["Paris"].fragment,
            rejected=sides["Lyon"].fragment,
            prefix_ids=branch.token_ids,
            chosen_ids=sides["Paris"].token_ids,
            rejected_ids=sides["Lyon"].token_ids,
        )
    for city, text_ in ANSWERS.items():  # the fixture's cuts spell the answers
        assert "".join([text(ids[city][:3]), text(ids[city][3:])]) == text_
    return snapshot_freeze(project=project, round=round_), tokenizer


def test_trl_rows_carry_the_sampled_ids_split_where_the_texts_are(sampled_pairs):
    snapshot, tokenizer = sampled_pairs
    for span in ("fragment", "completion"):
        for complete in (False, True):
            for row in snapshot_rows(snapshot, "trl", span, complete=complete):
                for side in ("chosen", "rejected"):
                    sampled = row["prompt_ids"] + row[f"{side}_ids"]
                    assert tokenizer.decode(sampled) == row["prompt"] + row[side], (span, complete, side)
                # the prompt's own ids are its rendering's: tokenising it alone is what the policy was prompted with
                rendered = row["prompt"] if span == "completion" else row["prompt"][: -len("[get_weather(city")]
                assert (
                    row["prompt_ids"][: len(tokenizer(rendered, add_special_tokens=False)["input_ids"])]
                    == tokenizer(rendered, add_special_tokens=False)["input_ids"]
                )
    completed = next(snapshot_rows(snapshot, "trl", "fragment", complete=True))
    assert completed["chosen"] == "='Paris', unit='c')]" and completed["metadata"]["completed"]


def _dpo_tokenise(path, tiny_model_dir, tmp_path, monkeypatch):
    """TRL's DPOTrainer over an exported file: its own tokenisation (in the constructor), with the warnings it
    gives recorded; returns (the file's rows, TRL's tokenised rows, the warnings)."""
    import datasets
    import trl.trainer.dpo_trainer as dpo
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    warnings = []
    monkeypatch.setattr(dpo.logger, "warning_once", lambda message, *a, **k: warnings.append(message))
    datasets.disable_progress_bars()
    train = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    args = DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=2,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=args,
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    return train, trainer.train_dataset, warnings


def _export(snapshot, path, *options):
    call_command(
        "export_dataset",
        "--project",
        snapshot.project.name,
        "--snapshot",
        str(snapshot.pk),
        "--format",
        "trl",
        "--output",
        str(path),
        *options,
        verbosity=0,
    )


@pytest.mark.slow
def test_complete_rows_tokenise_in_trl_without_a_boundary_warning(sampled_pairs, tiny_model_dir, tmp_path, monkeypatch):
    snapshot, tokenizer = sampled_pairs
    path = tmp_path / "complete.jsonl"
    _export(snapshot, path, "--complete", "--span", "completion")
    rows, tokenised, warnings = _dpo_tokenise(path, tiny_model_dir, tmp_path, monkeypatch)
    assert not [w for w in warnings if "not a prefix" in w]
    eos = tokenizer.eos_token
    for row, done in zip(rows, tokenised):
        assert done["prompt_ids"] == tokenizer(row["prompt"])["input_ids"]  # the prompt stays whole
        assert row["chosen"] == ANSWERS["Paris"] and row["rejected"] == ANSWERS["Lyon"]  # whole answers ...
        assert tokenizer.decode(done["chosen_ids"]) == row["chosen"] + eos  # ... so TRL's EOS is where it ends
        assert tokenizer.decode(done["rejected_ids"]) == row["rejected"] + eos
        # TRL's ids are the sampled ones (here the tokenizer re-cuts the whole answer as it was sampled)
        assert done["chosen_ids"][:-1] == row["chosen_ids"] and row["prompt_ids"] == done["prompt_ids"]


@pytest.mark.slow
def test_fragment_rows_as_text_are_what_trl_warns_about(
    project, make_pair, round_, checkpoint, tiny_model_dir, tmp_path, monkeypatch
):
    """The contrast (why the ids and `--complete` exist): a step-level row cut inside a BPE merge (`(` + `city`,
    as a search without token ids cuts), fed to stock TRL as text, makes TRL warn and re-cut the completion."""
    make_pair("approved", round=round_, prefix="[get_weather(", chosen="city='Paris', ", rejected="city='Lyon', ")
    make_pair("approved", round=round_, prefix="[get_weather(", chosen="city='Rome')]", rejected="city='Oslo')]")
    snapshot = snapshot_freeze(project=project, round=round_)
    path = tmp_path / "fragment.jsonl"
    _export(snapshot, path)
    rows, tokenised, warnings = _dpo_tokenise(path, tiny_model_dir, tmp_path, monkeypatch)
    assert [w for w in warnings if "not a prefix" in w]
    tokenizer = policy_tokenizer(checkpoint)
    assert rows[0]["prompt"].endswith("[get_weather(")
    assert tokenised[0]["prompt_ids"] != tokenizer(rows[0]["prompt"])["input_ids"]  # TRL cut the prompt short
