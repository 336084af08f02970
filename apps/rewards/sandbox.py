"""Runs a query's tool implementations on parsed calls in a locked-down child process (FTRL's execution reward).

Each batch of calls runs in a fresh `python -I -S -B apps/rewards/_sandbox_child.py`: empty environment, a
fresh temp dir as working directory (removed afterwards), its own session, and where this machine permits
(root, or unprivileged user namespaces) its own empty network namespace. The child locks itself down further
(rlimits, Landlock, seccomp, an audit hook: see _sandbox_child.py) before it runs any tool code. Here the
parent enforces the wall-clock limit, caps what it reads, and kills the child's whole process group.
If the child dies during a call, that call fails and a fresh child runs the calls after it.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

CHILD_SCRIPT = Path(__file__).with_name("_sandbox_child.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # tool code may not read the app's files (settings, keys)
ERROR_OUTPUT = "an error occurred when calling {name}: {error}"  # FTRL: "an error occured when call NAME: ERR"
STDERR_BYTES = 4096  # kept from the child's stderr to explain a crash
_AUDIT_HOOK = True  # tests switch it off to check the kernel barriers on their own


@dataclass(frozen=True)
class SandboxLimits:
    """Per-call limits; a batch of n calls shares one process."""

    cpu_seconds: int = 2  # CPU per call; FTRL's tools are look-ups that take milliseconds, a loop is a bug
    wall_seconds: float = 5.0  # per call, child startup included; FTRL's func_set_timeout(10), halved: rollouts wait
    memory_mb: int = 256  # address space of the child; the interpreter takes ~30 MB, tool data a few MB
    output_bytes: int = 64_000  # output fed back per call, ~16k tokens: more would swamp the model's context
    file_mb: int = 16  # largest file a tool may write in its temp dir (RLIMIT_FSIZE)
    open_files: int = 32  # RLIMIT_NOFILE; the interpreter itself holds about six

    def __post_init__(self):
        for name, minimum in (("cpu_seconds", 1), ("memory_mb", 64), ("output_bytes", 1), ("file_mb", 1),
                              ("open_files", 16)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"SandboxLimits.{name} must be an int >= {minimum}, got {value!r}")
        wall = self.wall_seconds
        if not isinstance(wall, (int, float)) or isinstance(wall, bool) or not 0 < wall <= 600:
            raise ValueError(f"SandboxLimits.wall_seconds must be in (0, 600], got {self.wall_seconds!r}")


@dataclass(frozen=True)
class CallOutcome:
    """What one call produced. `output` is what goes back to the model as the tool message."""

    name: str
    ok: bool  # the tool returned a value
    output: str  # the result text, or ERROR_OUTPUT when the call failed
    error: str = ""  # why it failed; "" when ok
    # "" when ok, else: exception, blocked (the sandbox refused an operation), unknown_tool, missing_function,
    # bad_arguments, memory_limit, cpu_limit, timeout, output_limit, crashed
    reason: str = ""
    killed: bool = False  # the sandbox process was killed or died during this call
    truncated: bool = False  # the output was cut at SandboxLimits.output_bytes
    seconds: float = 0.0  # wall time of the call


def run_calls(implementations: dict[str, str], calls: list[dict],
              limits: SandboxLimits = SandboxLimits()) -> list[CallOutcome]:
    """Runs each call `{"name": str, "arguments": dict}` with the tool's Python source; one outcome per call."""
    requested = [{"name": call.get("name"), "arguments": call.get("arguments")} for call in calls]
    outcomes: list[CallOutcome] = []
    while len(outcomes) < len(requested):
        outcomes += _run_batch(implementations, requested[len(outcomes):], limits)[1]
    return outcomes


def sandbox_barriers(limits: SandboxLimits = SandboxLimits()) -> tuple[str, ...]:
    """The barriers a sandbox gets on this machine, e.g. ("netns", "rlimits", "landlock-v7", "seccomp", ...)."""
    return _run_batch({}, [], limits)[0]


@cache
def _network_namespace() -> tuple[str, ...]:
    """A command prefix giving the child an empty network namespace (a loopback that is down), if permitted."""
    unshare, true = shutil.which("unshare"), shutil.which("true")
    if not unshare or not true:
        return ()
    for prefix in ((unshare, "--net"), (unshare, "--net", "--map-root-user")):
        try:
            if subprocess.run([*prefix, true], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.SubprocessError):
            pass
    return ()


def _run_batch(implementations: dict, calls: list[dict],
               limits: SandboxLimits) -> tuple[tuple[str, ...], list[CallOutcome]]:
    """Runs calls in one child until they are done or the child dies; returns (barriers, outcomes so far).

    When the child dies, the call it was running gets the failure, so at least one outcome comes back."""
    with tempfile.TemporaryDirectory(prefix="itool-sandbox-") as workdir:
        workdir = os.path.realpath(workdir)  # the child's path checks are lexical: no symlink in the prefix
        request = json.dumps({"limits": asdict(limits), "implementations": implementations, "calls": calls,
                              "private_dirs": [str(PROJECT_ROOT)], "audit_hook": _AUDIT_HOOK}).encode()
        namespace = _network_namespace()
        proc = subprocess.Popen(
            [*namespace, sys.executable, "-I", "-S", "-B", str(CHILD_SCRIPT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=workdir, env={"HOME": workdir, "TMPDIR": workdir}, start_new_session=True,
        )
        try:
            barriers, outcomes = _collect(proc, request, calls, limits)
        finally:
            _kill_group(proc)
        return (("netns",) if namespace else ()) + barriers, outcomes


def _collect(proc: subprocess.Popen, request: bytes, calls: list[dict],
             limits: SandboxLimits) -> tuple[tuple[str, ...], list[CallOutcome]]:
    try:  # the child reads its whole request before anything else, so this cannot block for long
        proc.stdin.write(request)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    line_cap = 6 * limits.output_bytes + 4096  # a JSON escape takes at most 6 bytes per byte of output
    barriers, outcomes, pending, stderr = (), [], b"", b""
    failure = None  # (reason, error) that ends the batch early
    call_started = time.monotonic()
    deadline = call_started + limits.wall_seconds
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        while (len(outcomes) < len(calls) or not barriers) and failure is None and proc.stdout in selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = ("timeout", f"wall time limit of {limits.wall_seconds}s exceeded")
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is proc.stderr:
                    stderr += chunk[: STDERR_BYTES - len(stderr)]  # the start says why a crash happened
                else:
                    pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:  # the barriers first, then one result per call, in order
                message = _parse(line)
                if not barriers and isinstance(message.get("barriers"), list):
                    barriers = tuple(str(barrier) for barrier in message["barriers"])
                elif message.get("index") == len(outcomes) and len(outcomes) < len(calls):
                    outcomes.append(_outcome(calls[len(outcomes)], message))
                    call_started = time.monotonic()
                    deadline = call_started + limits.wall_seconds
                else:
                    failure = ("crashed", "the sandbox sent an unreadable result")
                    break
            if failure is None and len(pending) > line_cap:
                failure = ("output_limit", f"the sandbox's output exceeded {line_cap} bytes")
    if len(outcomes) < len(calls):
        if failure is None:  # the child closed its stdout: find out how it ended
            status = _exit_status(proc, deadline)
            failure = (("timeout", f"wall time limit of {limits.wall_seconds}s exceeded") if status is None
                       else _death(status, stderr, limits))
        reason, error = failure
        name = str(calls[len(outcomes)].get("name"))
        outcomes.append(CallOutcome(name=name, ok=False, output=ERROR_OUTPUT.format(name=name, error=error),
                                    error=error, reason=reason, killed=True,
                                    seconds=time.monotonic() - call_started))
    return barriers, outcomes


def _parse(line: bytes) -> dict:
    """One protocol line as a dict; {} for anything else (only tool code can garble the protocol)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return {}
    return message if isinstance(message, dict) else {}


def _outcome(call: dict, message: dict) -> CallOutcome:
    name = str(call.get("name"))
    seconds = message.get("seconds")
    seconds = float(seconds) if isinstance(seconds, (int, float)) else 0.0
    if message.get("ok") is True:
        return CallOutcome(name=name, ok=True, output=str(message.get("output", "")),
                           truncated=message.get("truncated") is True, seconds=seconds)
    error = str(message.get("error", "unknown error"))
    return CallOutcome(name=name, ok=False, output=ERROR_OUTPUT.format(name=name, error=error), error=error,
                       reason=str(message.get("reason", "exception")), seconds=seconds)


def _exit_status(proc: subprocess.Popen, deadline: float) -> int | None:
    """The child's exit status (negative: killed by that signal), waiting until `deadline` at most.

    WNOWAIT leaves the child a zombie, so its process group id stays reserved until _kill_group."""
    while True:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        if info is not None:
            killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
            return -info.si_status if killed else info.si_status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def _death(status: int, stderr: bytes, limits: SandboxLimits) -> tuple[str, str]:
    if status in (-signal.SIGPROF, -signal.SIGXCPU):
        return "cpu_limit", f"CPU time limit of {limits.cpu_seconds}s exceeded"
    last_line = next((line for line in reversed(stderr.decode(errors="replace").splitlines()) if line.strip()), "")
    if status < 0:
        how = f"was killed by {signal.Signals(-status).name if -status in signal.valid_signals() else -status}"
    else:
        how = f"exited with status {status}"
    return "crashed", f"the sandbox process {how}" + (f": {last_line.strip()}" if last_line else "")


def _kill_group(proc: subprocess.Popen) -> None:
    """Kills everything in the child's session (it leads its own process group), then reaps the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            stream.close()
        except OSError:  # stdin still holding bytes for a child that is gone
            pass
