"""An exported trl file is a dataset TRL trains on: `datasets.load_dataset("json")` + one DPOTrainer step."""

import math

import pytest
from django.core.management import call_command

from apps.datasets.services import snapshot_freeze
from tests.factories import QueryFactory


@pytest.mark.slow
@pytest.mark.parametrize("span", ["fragment", "completion"])
def test_dpo_trains_a_step_on_the_exported_file(project, make_pair, round_, tiny_model_dir, tmp_path, span):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    for i, city in enumerate(["Paris", "Rome", "Oslo", "Lima"]):
        query = QueryFactory(
            project=project,
            messages=[{"role": "user", "content": f"Weather in {city}?"}],
            ground_truth=[{"get_weather": {"city": [city]}}],
        )
        make_pair(
            "approved" if i % 2 else "edited",
            round=round_,
            query=query,
            chosen=f"city='{city}')]",
            rejected="city='Lyon')]",
        )
    snapshot = snapshot_freeze(project=project, round=round_)
    path = tmp_path / "train.jsonl"
    call_command(
        "export_dataset",
        "--project",
        project.name,
        "--snapshot",
        str(snapshot.pk),
        "--format",
        "trl",
        "--span",
        span,
        "--output",
        str(path),
        verbosity=0,
    )

    datasets.disable_progress_bars()
    train = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert train.num_rows == 4 and {"prompt", "chosen", "rejected", "metadata"} <= set(train.column_names)
    assert train[0]["metadata"]["snapshot_hash"] == snapshot.content_hash

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)
    # what TRL trains on is the exported text. (With span=fragment the BPE may merge the prefix's last
    # characters with the fragment's first, e.g. `(` + `city`: TRL then starts the completion a token early.)
    first, row = trainer.train_dataset[0], train[0]
    prompt = tokenizer.decode(first["prompt_ids"])
    assert row["prompt"].startswith(prompt) and len(row["prompt"]) - len(prompt) <= 2
    eos = tokenizer.eos_token  # TRL appends it to both completions
    assert tokenizer.decode(first["prompt_ids"] + first["chosen_ids"]) == row["prompt"] + row["chosen"] + eos
    assert tokenizer.decode(first["prompt_ids"] + first["rejected_ids"]) == row["prompt"] + row["rejected"] + eos
