"""A backend in a child process: the same samples as in-process, its exceptions re-raised, its death reported, and
nothing left running once it is closed."""

import importlib.util
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time

import psutil
import pytest

from tests.processes import Descendants
from workers.llm.base import BackendUnavailableError, SamplingParams
from workers.llm.isolated import GenerationProcessError, IsolatedBackend
from workers.llm.registry import get_backend

# This module's descendants: not those other tests of the session left running before it (e.g. the browser tests'
# Playwright driver and its browser), nor the module's shared child, alive across its tests (in `skip`).
DESCENDANTS = Descendants()


@pytest.fixture(autouse=True, scope="module")
def earlier_children():
    DESCENDANTS.snapshot()


def children() -> list[psutil.Process]:
    """This process's live descendants started by this module, the shared child aside."""
    return DESCENDANTS.live()


@pytest.fixture(scope="module")
def isolated(tiny_model_dir):
    backend = IsolatedBackend("transformers", model_path=str(tiny_model_dir), batch_size=16, num_threads=1)
    DESCENDANTS.skip.add(backend.pid)
    yield backend
    backend.close()
    DESCENDANTS.skip.discard(backend.pid)


@pytest.fixture
def silent_server():
    """A port that takes connections and never answers: a call to it waits until the process is killed."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    server.close()


def remote(base_url: str) -> IsolatedBackend:
    """An isolated openai backend: a child that starts in a moment (no torch), for the process's life cycle."""
    return IsolatedBackend("openai", base_url=base_url, model="m", max_retries=0)


def test_same_seed_same_samples_as_in_process(isolated, backend, prompts):
    params = SamplingParams(n=3, max_tokens=24, seed=11)
    assert isolated.generate(prompts, params) == backend.generate(prompts, params)
    ids = [backend.encode(p) for p in prompts]
    assert [isolated.encode(p) for p in prompts] == ids
    assert isolated.generate(ids, params) == backend.generate(ids, params)  # token-id prompts too
    assert isolated.decode(ids[0]) == backend.decode(ids[0]) == prompts[0]
    continuations = [" [get_weather(city='Paris')]"] * len(prompts)
    assert isolated.score(prompts, continuations) == backend.score(prompts, continuations)


def test_tokens_convert_here_as_in_the_child_even_while_it_is_busy(isolated, backend, prompts):
    """The search decodes each sample's ids several times over: the proxy converts with the model's tokenizer in
    this process, exactly as the child's backend does, and so never waits behind a `generate` in the child."""
    sample = backend.generate(prompts[:1], SamplingParams(n=1, max_tokens=32, seed=3))[0][0]
    ids = backend.encode(prompts[0] + " Zürich 東京") + sample.token_ids
    expected = [backend.decode(ids[:k]) for k in range(len(ids) + 1)]  # partial characters included
    busy = threading.Thread(target=isolated.generate, args=(prompts * 4, SamplingParams(n=8, max_tokens=256)))
    busy.start()
    try:
        while not isolated._pending:
            time.sleep(0.001)
        assert [isolated.decode(ids[:k]) for k in range(len(ids) + 1)] == expected
        assert [isolated.encode(p) for p in prompts] == [backend.encode(p) for p in prompts]
        assert isolated._pending  # the child is still generating: none of these waited for it
        assert isolated.converts_here
    finally:
        busy.join()


def test_a_tokenizer_here_that_converts_differently_is_not_used(tiny_model_dir, backend, prompts, monkeypatch):
    from workers.llm import isolated as module

    monkeypatch.setattr(module, "encode_text", lambda tokenizer, text: [0, *backend.encode(text)])
    proxy = IsolatedBackend("transformers", model_path=str(tiny_model_dir), num_threads=1)
    try:
        assert proxy.encode(prompts[0]) == backend.encode(prompts[0])  # the child's answer
        assert not proxy.converts_here  # so the search does not overlap generation with decodes that wait for it
    finally:
        proxy.close()


def test_an_exception_in_the_child_is_raised_as_itself_and_the_backend_still_serves(isolated, prompts):
    with pytest.raises(ValueError, match="prompt 1 is empty") as raised:
        isolated.generate([prompts[0], ""], SamplingParams(max_tokens=4))
    assert "raised in the generation process" in raised.value.__notes__[0]
    assert "transformers_backend.py" in raised.value.__notes__[0]  # the child's traceback
    assert len(isolated.generate(prompts[:1], SamplingParams(max_tokens=4, seed=1))[0]) == 1


def test_close_ends_the_child_and_is_idempotent(tiny_model_dir):
    backend = IsolatedBackend("transformers", model_path=str(tiny_model_dir), num_threads=1)
    child = psutil.Process(backend.pid)
    assert child in children()
    backend.close()
    assert not psutil.pid_exists(child.pid) and children() == []
    backend.close()
    with pytest.raises(GenerationProcessError, match="closed"):
        backend.generate(["x"], SamplingParams())


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "message"),
    [
        pytest.param(
            "vllm",
            {"model_path": "m"},
            BackendUnavailableError,
            "install requirements-gpu.txt on a GPU machine",
            marks=pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here"),
        ),
        ("transformers", {"model_path": "m", "device": "cuda:99"}, BackendUnavailableError, "GENERATION_DEVICE=cpu"),
    ],
)
def test_an_engine_that_cannot_start_here_raises_its_message_and_leaves_no_process(name, kwargs, error, message):
    with pytest.raises(error, match=message) as isolated_error:
        IsolatedBackend(name, **kwargs)
    with pytest.raises(error) as in_process_error:
        get_backend(name, **kwargs)
    assert str(isolated_error.value) == str(in_process_error.value)
    assert children() == []


def test_a_missing_model_raises_what_in_process_raises(tmp_path):
    with pytest.raises(Exception) as in_process_error:
        get_backend("transformers", model_path=str(tmp_path / "missing"))
    with pytest.raises(type(in_process_error.value)) as isolated_error:
        IsolatedBackend("transformers", model_path=str(tmp_path / "missing"))
    assert str(isolated_error.value) == str(in_process_error.value) and str(tmp_path / "missing") in str(
        isolated_error.value
    )
    assert children() == []


def test_a_child_killed_mid_call_raises_a_clear_error_instead_of_hanging(silent_server):
    backend = remote(silent_server)
    outcome = {}

    def call():
        try:
            backend.generate(["hello"], SamplingParams(max_tokens=4))
        except Exception as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    while not backend._pending:  # the call is sent: the child is waiting on the silent server
        time.sleep(0.01)
    os.kill(backend.pid, signal.SIGKILL)
    caller.join(timeout=60)
    assert not caller.is_alive(), "the caller hung on a dead child"
    error = outcome["error"]
    assert isinstance(error, GenerationProcessError)
    assert "killed by SIGKILL" in str(error) and "during generate" in str(error)
    backend.close()
    assert children() == []


def test_close_during_a_call_kills_the_busy_child(silent_server):
    backend = remote(silent_server)
    outcome = {}

    def call():
        try:
            backend.generate(["hi"], SamplingParams())
        except Exception as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    while not backend._pending:
        time.sleep(0.01)
    backend.close()  # from another thread, as a cancelled stage's finally would after an interruption
    caller.join(timeout=60)
    assert not caller.is_alive() and children() == []
    assert isinstance(outcome["error"], GenerationProcessError) and "killed by SIGTERM" in str(outcome["error"])


def test_an_orphaned_child_ends_itself(tmp_path, silent_server):
    """A worker killed outright (a hard time limit) cannot close its backend: the child, busy with a call that
    would last minutes, notices and exits."""
    ready = tmp_path / "child.pid"
    script = (
        "import pathlib, threading, time\n"
        "from workers.llm.base import SamplingParams\n"
        "from workers.llm.isolated import IsolatedBackend\n"
        f"b = IsolatedBackend('openai', base_url={silent_server!r}, model='m')\n"
        "threading.Thread(target=b.generate, args=(['hi'], SamplingParams()), daemon=True).start()\n"
        "while not b._pending:\n"
        "    time.sleep(0.01)\n"
        f"pathlib.Path({str(ready)!r}).write_text(str(b.pid))\n"
        "time.sleep(600)\n"
    )
    parent = psutil.Popen([sys.executable, "-c", script], cwd=os.getcwd())
    while not ready.exists() or not ready.read_text():
        assert parent.poll() is None, "the parent exited early"
        time.sleep(0.05)
    child = psutil.Process(int(ready.read_text()))
    parent.kill()
    parent.wait(timeout=30)
    try:
        child.wait(timeout=30)
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("the orphaned generation process kept running")


def _start_in_daemon(base_url, queue):
    backend = remote(base_url)
    queue.put(backend.encode("x") is None and backend.pid > 0)
    backend.close()


def test_starts_from_a_daemonic_process_as_celery_prefork_runs_tasks(silent_server):
    """multiprocessing refuses children to daemonic processes; a Celery prefork worker runs its tasks in one."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_start_in_daemon, args=(silent_server, queue), daemon=True)
    process.start()
    assert queue.get(timeout=120) is True
    process.join(timeout=60)
    assert process.exitcode == 0
