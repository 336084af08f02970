"""A backend run in a child process of its own, so that closing it returns all of its memory (GPU and host).

`IsolatedBackend("transformers", model_path=...)` starts `python -m workers.llm.isolated`, which builds the real
backend with `get_backend(name, **kwargs)` and serves the proxy's calls (`generate`, `score`, `encode`,
`decode`) over a socket; results and exceptions are pickled back, so a caller sees the same samples and the same
exception types and messages as in-process. Freeing a model in-process leaves memory behind (allocator caches,
CUDA context, vLLM's engine processes, fragments of the host heap); a process that exits leaves nothing.

Why a plain subprocess and not `multiprocessing`: Celery's prefork pool runs tasks in daemonic processes, which
multiprocessing does not let have children; and a `spawn` child re-imports the parent's `__main__` (celery,
manage.py), where this child imports only `workers.llm` (no Django).

The child is the leader of a process group of its own (with whatever its engine starts, e.g. vLLM's engine core
processes): `close()` asks it to close its backend and exit, waits, and then kills the whole group; a child whose
parent died (a worker killed by its hard time limit) kills its group itself. A child that dies during a call
(killed, out of memory) raises `GenerationProcessError` in the parent instead of leaving it waiting.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Connection
from pathlib import Path

from .base import BaseBackend, Prompt, Sample, SamplingParams
from .tokens import decode_ids, encode_text, load_tokenizer

logger = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the child imports workers.llm from here
POLL_SECONDS = 0.2  # how often a waiting parent checks that the child is alive
# Backends whose tokenizer is the model directory's (`tokens.load_tokenizer`): the proxy encodes and decodes here.
LOCAL_TOKENIZER_BACKENDS = ("transformers", "vllm")
# Text the local tokenizer must encode and decode exactly as the child's does: calls, digits, accents, a
# character of several bytes, whitespace runs.
TOKENIZER_PROBE = "[get_weather(city='Zürich', days=3), f(x=-0.5)] 東京  \n\t end"
ORPHAN_CHECK_SECONDS = 1.0  # how often the child checks that its parent is alive


class GenerationProcessError(RuntimeError):
    """The generation child process died, or raised an exception that could not be sent back as itself."""


class IsolatedBackend(BaseBackend):
    """A proxy for backend `name` built with `kwargs` in a child process; `close()` ends the process."""

    def __init__(self, name: str, *, close_timeout: float = 60.0, **kwargs):
        """Start the child and wait until its backend is built; an exception building it (engine not installed,
        device missing, bad model path) is raised here as the child raised it, and no process is left."""
        self.name = name
        self.close_timeout = close_timeout  # seconds the backend gets to close itself before its group is killed
        self._lock = threading.Lock()  # one call at a time on the socket
        self._pending = False  # a call was sent and its answer not read (the caller was interrupted)
        self._closed = False
        parent_end, child_end = socket.socketpair()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "workers.llm.isolated", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own process group: close() kills the engine's processes with it
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._conn = Connection(parent_end.detach())
        # Safety net for a proxy dropped without close() (or an interpreter exiting): the group still goes.
        self._finalizer = weakref.finalize(self, _kill_group, self._process, 0.0)
        self._tokenizer = None
        try:
            self._call("__init__", name, kwargs)
            self._tokenizer = self._local_tokenizer(name, kwargs.get("model_path"))
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self._process.pid

    # --- the backend interface -----------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Sample]]:
        return self._call("generate", prompts, params)

    def score(self, prompts: list[str], continuations: list[str]) -> list[list[float]]:
        return self._call("score", prompts, continuations)

    def encode(self, text: str) -> list[int] | None:
        if self._tokenizer is not None and not self._closed:
            return encode_text(self._tokenizer, text)
        return self._call("encode", text)

    def decode(self, token_ids: list[int]) -> str:
        if self._tokenizer is not None and not self._closed:
            return decode_ids(self._tokenizer, token_ids)
        return self._call("decode", token_ids)

    @property
    def converts_here(self) -> bool:
        """Whether `encode` and `decode` run in this process (else each is a call that waits for the child,
        also behind a `generate` it is busy with)."""
        return self._tokenizer is not None or self.name not in LOCAL_TOKENIZER_BACKENDS

    def _local_tokenizer(self, name: str, model_path: str | None):
        """The model's tokenizer in this process, for `encode` and `decode`, when it converts exactly as the
        child's backend does (checked on a probe); else None, and they ask the child.

        The search decodes every sample's token ids several times over (to cut a fragment on a token boundary),
        and a round trip to the child costs ten times a decode here (about 50 µs against 3–10 µs); nor does a
        decode here wait behind a `generate` call the child is busy with."""
        if name not in LOCAL_TOKENIZER_BACKENDS or not model_path:
            return None
        try:
            tokenizer = load_tokenizer(model_path)
        except Exception as exc:  # the child could load it: asking the child stays correct
            logger.warning("the %s backend's tokenizer did not load here (%s): each decode asks the child", name, exc)
            return None
        ids = self._call("encode", TOKENIZER_PROBE)
        if ids == encode_text(tokenizer, TOKENIZER_PROBE):
            ids = [*ids, *(i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None)]
            if self._call("decode", ids) == decode_ids(tokenizer, ids):
                return tokenizer
        logger.warning("the %s backend's tokenizer converts differently here than in its child: each decode asks", name)
        return None

    def close(self) -> None:
        """Close the backend in the child and end the child's process group; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if _running(self._process) and not self._pending:
            try:  # ask nicely: the backend releases its engine (vLLM's shutdown), then the child exits
                self._conn.send(("close", ()))
                if self._conn.poll(self.close_timeout):
                    self._conn.recv()
            except (OSError, EOFError):  # it died meanwhile: the group is killed below all the same
                pass
        _kill_group(self._process, grace=0.0 if self._pending else self.close_timeout)  # a busy child: at once
        self._conn.close()
        self._finalizer.detach()

    # --- the protocol --------------------------------------------------------------------------------------
    def _call(self, method: str, *args):
        with self._lock:
            if self._closed:
                raise GenerationProcessError(f"the {self.name} backend is closed")
            if self._pending:
                raise GenerationProcessError(
                    f"the {self.name} backend's process is still busy with a call that was interrupted; close it"
                )
            self._pending = True
            try:
                self._conn.send((method, args))
                self._wait_reply(method)
                status, payload = self._conn.recv()
            except (EOFError, OSError) as exc:  # the child died, or close() from another thread ended it
                raise self._died(method) from exc
            self._pending = False
        if status == "ok":
            return payload
        raise _exception_from(payload)

    def _wait_reply(self, method: str) -> None:
        """Return once an answer (or the end of the socket) is there; raise if the child died without one."""
        while not self._conn.poll(POLL_SECONDS):
            if not _running(self._process) and not self._conn.poll(0):
                raise self._died(method)

    def _died(self, method: str) -> GenerationProcessError:
        code = _exit_code(self._process, timeout=5.0)
        if code is None:
            how = "closed its connection"
        elif code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
            if -code == signal.SIGKILL:
                how += " (out of memory? the kernel's OOM killer sends SIGKILL: see `dmesg`)"
        else:
            how = f"exited with code {code}"
        what = "while building the backend" if method == "__init__" else f"during {method}"
        return GenerationProcessError(
            f"the {self.name} generation process (pid {self._process.pid}) {how} {what}; "
            "its output is in this worker's log"
        )


def _kill_group(process: subprocess.Popen, grace: float) -> None:
    """Wait up to `grace` seconds for the child to exit, then kill its process group (the child and whatever its
    engine started) and reap it. The group is killed before the child is reaped, so its id cannot be reused."""
    deadline = time.monotonic() + grace
    while _running(process) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _running(process):
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _running(process) and time.monotonic() < deadline:
            time.sleep(0.02)
    _signal_group(process.pid, signal.SIGKILL)  # leftovers (engine processes) and a child that ignored SIGTERM
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # stuck in the kernel (uninterruptible I/O): nothing more to do
        pass


def _exit_status(process: subprocess.Popen) -> int | None:
    """The child's exit code as Popen gives it (negative: killed by that signal), None while it runs. Read without
    reaping where the system has waitid: an exited child keeps its id, and so its process group's, until reaped."""
    if process.returncode is not None:
        return process.returncode
    if not hasattr(os, "waitid"):  # macOS: poll() reaps
        return process.poll()
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped by someone else
        return process.poll()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _running(process: subprocess.Popen) -> bool:
    return _exit_status(process) is None


def _exit_code(process: subprocess.Popen, timeout: float) -> int | None:
    """The child's exit code once it has exited, waiting up to `timeout` seconds; None if it still runs."""
    deadline = time.monotonic() + timeout
    while (code := _exit_status(process)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return code


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _exception_from(payload: tuple[bytes | None, str, str]) -> BaseException:
    """The child's exception as itself when it unpickles, else a GenerationProcessError with its type and text;
    the child's traceback is attached as a note."""
    pickled, summary, child_traceback = payload
    exc = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:  # its class is not importable here
            exc = None
    if not isinstance(exc, BaseException):
        exc = GenerationProcessError(summary)
    exc.add_note(f"raised in the generation process:\n{child_traceback}")
    return exc


# --- the child ---------------------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    """Kill this process group once the parent is gone (the child is re-parented): no orphaned engine."""
    while True:
        time.sleep(ORPHAN_CHECK_SECONDS)
        if os.getppid() != parent_pid:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def _error_payload(exc: BaseException) -> tuple[bytes | None, str, str]:
    try:
        pickled = pickle.dumps(exc)
        pickle.loads(pickled)  # some exceptions pickle but cannot be rebuilt (required keyword arguments)
    except Exception:
        pickled = None
    return pickled, f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))


def serve(fd: int) -> None:
    """The child's loop: build the backend from the first message, then answer calls until "close" or EOF."""
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    conn = Connection(fd)
    backend = None
    try:
        while True:
            try:
                method, args = conn.recv()
            except EOFError:  # the parent closed its end without asking: close and go
                return
            try:
                if method == "__init__":
                    from .registry import get_backend

                    name, kwargs = args
                    backend, result = get_backend(name, **kwargs), None
                elif method == "close":
                    backend, result = None, (backend.close() if backend is not None else None)
                else:
                    result = getattr(backend, method)(*args)
                reply = ("ok", result)
            except Exception as exc:
                reply = ("error", _error_payload(exc))
            try:
                conn.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a result that does not pickle
                conn.send(("error", _error_payload(exc)))
            if method == "close" or (method == "__init__" and backend is None):
                return
    finally:
        if backend is not None:
            backend.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)  # at once: an engine's leftover non-daemon threads must not keep the process (and its memory)
