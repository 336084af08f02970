"""Fixtures for the training engines' tests."""

import pytest
import torch
from transformers import AutoTokenizer

from workers.llm.tiny import render_prompt


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """Train the nano model on one thread: its matrices are too small for a second to help, and on a busy 2-core
    machine two threads spun against other processes (DPO steps ran 4-8x slower than on one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def rows(tokenizer, tiny_queries):
    """Eight pairs: the reference answer against the same answer calling a function that does not exist."""
    answered = [q for q in tiny_queries if q["reference_output"].startswith("[")][:8]
    return [
        {
            "prompt": render_prompt(tokenizer, q["messages"], q["tools"]),
            "chosen": q["reference_output"],
            "rejected": q["reference_output"].replace("(", "_v2(", 1),
        }
        for q in answered
    ]
