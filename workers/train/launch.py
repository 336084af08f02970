"""Start a training job with `accelerate launch` and supervise it: progress, cancel, failure, leftovers.

`run_job(spec_path, progress)` runs `python -m accelerate.commands.launch ... -m workers.train.job SPEC` as a child
process group and turns rank 0's JSON lines (workers/train/job.py) into `progress(dict)` calls; it returns the
job's result. `check()`, called every `check_interval` seconds, raises to cancel: the whole job — the launcher and
the workers torch's elastic agent starts in sessions of their own — gets SIGTERM, then SIGKILL after
`grace_seconds`, and the exception goes on up. A job that exits non-zero raises JobFailed with its exit code and
the tail of its stderr; input that cannot start a job (no accelerate, a config file missing or unreadable, more
processes than the machine has GPUs or cores, a bad spec) raises LaunchError before anything starts.

Without a config file, one process runs accelerate's simple launcher and N > 1 run DDP (`--multi_gpu`; on a
machine without CUDA accelerate makes that gloo on CPU). With a config file (DDP, FSDP, DeepSpeed; see
configs/accelerate/), the file decides, and `num_processes` > 1 overrides its process count.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from workers.progress import Progress
from workers.train.job import LAUNCHER_ENV, SpecError, read_spec

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # `-m workers.train.job` runs from here
GPU_TYPES = ("MULTI_GPU", "FSDP", "DEEPSPEED", "MEGATRON_LM")  # accelerate distributed types that need CUDA


class LaunchError(RuntimeError):
    """A job that could not be started; the message says why."""


class JobFailed(RuntimeError):
    """A job that ended badly: its exit code (negative: killed by that signal) and the tail of its stderr."""

    def __init__(self, exit_code: int, stderr_tail: str, reason: str = ""):
        self.exit_code, self.stderr_tail = exit_code, stderr_tail
        how = f"was killed by {signal.Signals(-exit_code).name}" if exit_code < 0 else f"exited with code {exit_code}"
        reason = reason or _reason(stderr_tail)
        super().__init__(
            f"training job {how}"
            + (f": {reason}" if reason else "")
            + (f"\n--- stderr (last lines) ---\n{stderr_tail}" if stderr_tail else "")
        )


def launch_command(
    spec_path: str | Path,
    *,
    num_processes: int = 1,
    accelerate_config: str | Path | None = None,
    python: str = sys.executable,
    port: int | None = None,
) -> list[str]:
    """The `accelerate launch` command line for a job (checks nothing; `run_job` does)."""
    cmd = [python, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", str(accelerate_config)]
        if num_processes > 1:
            cmd += ["--num_processes", str(num_processes)]
    else:
        # every choice given, so a user's default accelerate config (~/.cache/huggingface) plays no part
        cmd += [
            "--num_processes",
            str(num_processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
        ]
        if num_processes > 1:
            cmd.append("--multi_gpu")  # DDP: NCCL on GPUs, gloo on a machine without CUDA
    if port is not None:
        cmd += ["--main_process_port", str(port)]
    return cmd + ["-m", "workers.train.job", str(spec_path)]


def run_job(
    spec_path: str | Path,
    progress: Progress | None = None,
    check: Callable[[], None] | None = None,
    *,
    num_processes: int = 1,
    accelerate_config: str | Path | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    log_path: str | Path | None = None,
    on_start: Callable[[int], None] | None = None,
    check_interval: float = 1.0,
    grace_seconds: float = 10.0,
    tail_lines: int = 60,
) -> dict:
    """Run the job at `spec_path` to the end and return its result line: {"algorithm", "world_size", "launcher",
    "config", "result"}. `progress` gets each progress line ({"step", "max_steps", "loss", ...}); `on_start` the
    launcher's pid (= its process group); `env` adds variables; `log_path` keeps the job's whole stderr."""
    config = _checked_input(spec_path, num_processes, accelerate_config, python)
    port = None
    if (
        config.get("num_machines", 1) == 1
        and not config.get("main_process_port")
        and (num_processes > 1 or config.get("num_processes", 1) > 1)
    ):
        port = _free_port()  # accelerate's default port is shared by every job on the machine
    cmd = launch_command(
        spec_path, num_processes=num_processes, accelerate_config=accelerate_config, python=python, port=port
    )
    child_env = {
        **os.environ,
        **(env or {}),
        LAUNCHER_ENV: "accelerate",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    try:
        process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=PROJECT_ROOT,
            env=child_env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # one prctl call before exec
        )
    except OSError as exc:
        raise LaunchError(f"cannot start {cmd[0]}: {exc}") from None
    if on_start:
        on_start(process.pid)
    job = _Supervised(process, progress, log_path, tail_lines)
    try:
        job.follow(check, check_interval, grace_seconds)
    except BaseException:
        job.terminate(grace_seconds)
        raise
    finally:
        job.close()
    if process.returncode != 0:
        raise JobFailed(process.returncode, job.tail())
    if job.result is None:
        raise JobFailed(0, job.tail(), "the job ended without its result line")
    return job.result


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when the one that started it dies (Linux; elsewhere nothing). The
    launcher runs in a session of its own, so a worker killed with SIGKILL would otherwise leave its job training
    on; the job's ranks ask the same of the launcher (workers/train/job.py), so the whole job ends."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# --- checks before anything starts


def _checked_input(spec_path, num_processes, accelerate_config, python) -> dict:
    """The accelerate config as a dict ({} without one), after every check that can fail before a launch."""
    if not isinstance(num_processes, int) or isinstance(num_processes, bool) or num_processes < 1:
        raise LaunchError(f"num_processes must be an integer >= 1, got {num_processes!r}")
    try:
        read_spec(spec_path)
    except SpecError as exc:
        raise LaunchError(f"bad job spec: {exc}") from None
    _check_accelerate(python)
    config = _read_config(accelerate_config) if accelerate_config else {}
    machines = int(config.get("num_machines") or 1)
    processes = num_processes if num_processes > 1 or not config else int(config.get("num_processes") or 1)
    per_machine = max(1, processes // machines)
    gpus = _cuda_devices()
    wants_gpu = str(config.get("distributed_type", "")).upper() in GPU_TYPES and not config.get("use_cpu")
    if wants_gpu and not gpus:
        raise LaunchError(
            f"accelerate config {accelerate_config} asks for {config['distributed_type']}, which needs "
            "GPUs, and this machine has none visible to torch"
        )
    if gpus and not config.get("use_cpu"):
        if per_machine > gpus:
            raise LaunchError(
                f"{per_machine} processes per machine but only {gpus} GPU(s) here: one process drives one GPU"
            )
    elif per_machine > (os.cpu_count() or 1):
        raise LaunchError(
            f"{per_machine} processes but only {os.cpu_count()} CPU core(s) here (no GPU): lower TRAIN_NUM_PROCESSES"
        )
    return config


def _check_accelerate(python: str) -> None:
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('accelerate') else 3)"
    try:
        found = subprocess.run([python, "-c", probe], capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"cannot run the python interpreter {python}: {exc}") from None
    if not found:
        raise LaunchError(f"the launcher is missing: accelerate is not installed for {python} (pip install accelerate)")


def _read_config(path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LaunchError(f"accelerate config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())  # accelerate reads YAML or JSON; YAML covers both
    except (OSError, yaml.YAMLError) as exc:
        raise LaunchError(f"accelerate config file {path} does not parse: {exc}") from None
    if not isinstance(config, dict):
        raise LaunchError(f"accelerate config file {path} does not parse as a mapping of settings")
    for key in ("num_processes", "num_machines"):
        if key in config and (not isinstance(config[key], int) or config[key] < 1):
            raise LaunchError(f"accelerate config file {path}: {key} must be an integer >= 1, got {config[key]!r}")
    return config


def _cuda_devices() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- supervision


class _Supervised:
    """A started job: its output read line by line, its processes known, its end awaited."""

    def __init__(self, process: subprocess.Popen, progress, log_path, tail_lines: int):
        import psutil

        self.process, self.progress = process, progress
        self.result: dict | None = None
        self.stderr_tail: deque[str] = deque(maxlen=tail_lines)
        self.log = open(log_path, "a") if log_path else None  # noqa: SIM115 - closed in close()
        self.known: dict[int, psutil.Process] = {}  # the job's processes seen so far, orphans included
        self.selector = selectors.DefaultSelector()
        self.partial = {process.stdout: b"", process.stderr: b""}
        for stream in self.partial:
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream, selectors.EVENT_READ)

    def follow(self, check, check_interval: float, grace_seconds: float) -> None:
        next_check, exited_at = time.monotonic(), None
        while self.selector.get_map():
            for key, _ in self.selector.select(timeout=min(check_interval, 0.5)):
                self._read(key.fileobj)
            now = time.monotonic()
            if now >= next_check:
                self._note_processes()
                if check:
                    check()
                next_check = now + check_interval
            if exited_at is None and self.process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > grace_seconds:
                break  # the launcher is gone but something holds its pipes: orphaned workers, ended below
        self.process.wait()
        self._kill_leftovers(grace_seconds)

    def _read(self, stream) -> None:
        try:
            data = os.read(stream.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if data:
            *lines, self.partial[stream] = (self.partial[stream] + data).split(b"\n")
        else:  # end of stream
            self.selector.unregister(stream)
            lines, self.partial[stream] = [self.partial[stream]] if self.partial[stream] else [], b""
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r")
            if stream is self.process.stdout and self._event(line):
                continue
            if line.strip():
                self.stderr_tail.append(line)
            if self.log:
                self.log.write(line + "\n")

    def _event(self, line: str) -> bool:
        if not line.startswith('{"event"'):
            return False
        try:
            event = json.loads(line)
        except ValueError:
            return False
        kind = event.pop("event", None)
        if kind == "progress" and self.progress:
            self.progress(event)
        elif kind == "result":
            self.result = event
        return kind in ("progress", "result")

    def _note_processes(self) -> None:
        import psutil

        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.known.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def _alive(self) -> list:
        import psutil

        alive = []
        for proc in self.known.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                pass
        return alive

    def terminate(self, grace_seconds: float) -> None:
        """SIGTERM to the launcher's group and to every process of the job (workers run in sessions of their
        own), SIGKILL to what is left after `grace_seconds`."""
        import psutil

        self._note_processes()
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and (self.process.poll() is None or self._alive()):
            psutil.wait_procs(self._alive(), timeout=0.2)
            self.process.poll()
        self._signal_all(signal.SIGKILL)
        self.process.wait()
        psutil.wait_procs(self._alive(), timeout=5)

    def _kill_leftovers(self, grace_seconds: float) -> None:
        if self._alive():
            self.terminate(grace_seconds)

    def _signal_all(self, sig) -> None:
        import psutil

        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for proc in self._alive():
            try:
                proc.send_signal(sig)  # psutil checks the pid still names the process it saw
            except psutil.Error:
                pass

    def tail(self) -> str:
        return "\n".join(self.stderr_tail)

    def close(self) -> None:
        self.selector.close()
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()
        if self.log:
            self.log.close()


_NOT_THE_CAUSE = ("ChildFailedError", "CalledProcessError", "SignalException")  # launchers reporting a dead child


def _reason(tail: str) -> str:
    """The line of a stderr tail that says what went wrong: a job spec error, or the last `SomeError: message`
    that is not a launcher reporting its child's death."""
    lines = tail.splitlines()
    for line in reversed(lines):
        if line.startswith("job spec error:"):
            return line
    for line in reversed(lines):
        match = re.match(r"\s*(?:\[rank\d+\]:\s*)?([\w.]*(?:Error|Exception|Interrupt)\b.*)", line)
        if match and not any(name in line for name in _NOT_THE_CAUSE):
            return match.group(1)
    return ""
