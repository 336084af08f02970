"""Fixtures for the training engines' tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """Train the nano model on one thread: its matrices are too small for a second to help, and on a busy 2-core
    machine two threads spun against other processes (DPO steps ran 4-8x slower than on one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
