"""Runs a query's tool implementations on parsed calls in locked-down processes (FTRL's execution reward).

Each batch of calls runs under a fresh `python -I -S -B` on rewards/_sandbox_child.py: empty environment, a
fresh temp dir as working directory (removed afterwards), its own session, and where this machine permits
(root, or unprivileged user namespaces) its own empty network namespace and its own mount namespace. That
child runs no tool code: it forks one process per call, which locks itself down (rlimits, a tmpfs temp dir,
an unprivileged user, Landlock, seccomp, an audit hook: see _sandbox_child.py) before the tool code runs,
and kills it at the call's wall-clock limit. Here the parent re-checks and re-caps every result it reads,
kills the child's whole process group when it is done, and kills it earlier if it stops answering; the call
then fails and a fresh child runs the calls after it. docs/sandbox.md says what this guarantees and under
which privileges.
"""

from __future__ import annotations

import json
import marshal
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

from rewards._sandbox_child import clean_result

# The child's code: these files run in this order in one namespace, the script last (its docstring says why).
CHILD_SOURCES = tuple(
    Path(__file__).with_name(name)
    for name in ("_sandbox_tables.py", "_sandbox_lockdown.py", "_sandbox_audit.py", "_sandbox_child.py")
)
CHILD_SCRIPT = CHILD_SOURCES[-1]
# The child's command line: it reads the code of CHILD_SOURCES, compiled here, from stdin, then runs it (which
# reads the request that follows). Compiling the script in every child took ~15 ms of its ~45 ms start-up.
CHILD_BOOT = (
    "import marshal, sys\n"
    "stdin, namespace = sys.stdin.buffer, {'__name__': '__main__'}\n"
    "for code in marshal.loads(stdin.read(int(stdin.readline()))):\n"
    "    exec(code, namespace)\n"
)
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # tool code may not read the app's files (settings, keys)
ERROR_OUTPUT = "an error occurred when calling {name}: {error}"  # FTRL: "an error occured when call NAME: ERR"
STDERR_BYTES = 4096  # kept from the child's stderr to explain a crash
# The child kills a call's process at its wall limit; the parent kills the child only if it has not answered
# this long after that (a child stuck or starved on a busy machine).
BACKSTOP_SECONDS = 1.0
_AUDIT_HOOK = True  # tests switch it off to check the kernel barriers on their own


@dataclass(frozen=True)
class SandboxLimits:
    """Per-call limits: each call runs in a process and a temp dir of its own."""

    cpu_seconds: int = 2  # CPU per call; FTRL's tools are look-ups that take milliseconds, a loop is a bug
    wall_seconds: float = 5.0  # per call, child startup included; FTRL's func_set_timeout(10), halved: rollouts wait
    memory_mb: int = 256  # address space of a call's process; the interpreter takes ~30 MB, tool data a few MB
    output_bytes: int = 64_000  # output fed back per call, ~16k tokens: more would swamp the model's context
    file_mb: int = 16  # largest file a tool may write in its temp dir (RLIMIT_FSIZE)
    # All a call may write in its temp dir, a tmpfs of this size (so it is memory, not disk); issue 14 saw one
    # call write 645 MB in 1.5 s. FTRL's tools write nothing: this leaves room for scratch files.
    disk_mb: int = 64
    files: int = 1000  # files and dirs a call may create (the tmpfs's inodes); issue 14 saw 16,600 a second
    open_files: int = 32  # RLIMIT_NOFILE; the interpreter itself holds about six

    def __post_init__(self):
        for name, minimum in (
            ("cpu_seconds", 1),
            ("memory_mb", 64),
            ("output_bytes", 1),
            ("file_mb", 1),
            ("disk_mb", 1),
            ("files", 1),
            ("open_files", 16),
        ):
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


def run_calls(
    implementations: dict[str, str], calls: list[dict], limits: SandboxLimits = SandboxLimits()
) -> list[CallOutcome]:
    """Runs each call `{"name": str, "arguments": dict}` with the tool's Python source; one outcome per call."""
    requested = [{"name": call.get("name"), "arguments": call.get("arguments")} for call in calls]
    outcomes: list[CallOutcome] = []
    while len(outcomes) < len(requested):
        outcomes += _run_batch(implementations, requested[len(outcomes) :], limits)[1]
    return outcomes


def sandbox_barriers(limits: SandboxLimits = SandboxLimits()) -> tuple[str, ...]:
    """The barriers a sandbox gets on this machine, e.g. ("netns", "rlimits", "landlock-v7", "seccomp", ...)."""
    return _run_batch({}, [], limits)[0]


@cache
def _child_code() -> bytes:
    """The code objects of CHILD_SOURCES, marshalled: compiled once per worker process."""
    return marshal.dumps(tuple(compile(path.read_bytes(), str(path), "exec") for path in CHILD_SOURCES))


@cache
def _namespaces() -> tuple[str, ...]:
    """A command prefix giving the child an empty network namespace (a loopback that is down) and its own mount
    namespace (private propagation: its mounts stay its own), or the first of these this machine permits."""
    unshare, true = shutil.which("unshare"), shutil.which("true")
    if not unshare or not true:
        return ()
    for prefix in (
        (unshare, "--net", "--mount"),
        (unshare, "--net", "--mount", "--map-root-user"),
        (unshare, "--net"),
        (unshare, "--net", "--map-root-user"),
    ):
        try:
            if subprocess.run([*prefix, true], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.SubprocessError):
            pass
    return ()


def _run_batch(
    implementations: dict, calls: list[dict], limits: SandboxLimits
) -> tuple[tuple[str, ...], list[CallOutcome]]:
    """Runs calls in one child until they are done or the child dies; returns (barriers, outcomes so far).

    When the child dies, the call it was running gets the failure, so at least one outcome comes back."""
    with tempfile.TemporaryDirectory(prefix="itool-sandbox-") as workdir:
        workdir = os.path.realpath(workdir)  # the child's path checks are lexical: no symlink in the prefix
        code = _child_code()
        request = json.dumps(
            {
                "limits": asdict(limits),
                "implementations": implementations,
                "calls": calls,
                "private_dirs": [str(PROJECT_ROOT)],
                "audit_hook": _AUDIT_HOOK,
                "host_mount_namespace": os.stat("/proc/self/ns/mnt").st_ino,
                "started": time.monotonic(),
            }
        ).encode()  # the first call's wall time starts here
        namespace = _namespaces()
        proc = subprocess.Popen(
            [*namespace, sys.executable, "-I", "-S", "-B", "-c", CHILD_BOOT, str(CHILD_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env={"HOME": workdir, "TMPDIR": workdir},
            start_new_session=True,
        )
        try:
            barriers, outcomes = _collect(proc, b"%d\n" % len(code) + code + request, calls, limits)
        finally:
            _kill_group(proc)
        return (("netns",) if namespace else ()) + barriers, outcomes


def _collect(
    proc: subprocess.Popen, request: bytes, calls: list[dict], limits: SandboxLimits
) -> tuple[tuple[str, ...], list[CallOutcome]]:
    try:  # the child reads its whole request before anything else, so this cannot block for long
        proc.stdin.write(request)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    line_cap = 6 * limits.output_bytes + 4096  # a JSON escape takes at most 6 bytes per byte of output
    barriers, outcomes, pending, stderr = (), [], b"", b""
    failure = None  # (reason, error) that ends the batch early
    call_started = time.monotonic()
    deadline = call_started + limits.wall_seconds + BACKSTOP_SECONDS
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
                    outcomes.append(_outcome(calls[len(outcomes)], message, limits))
                    call_started = time.monotonic()
                    deadline = call_started + limits.wall_seconds + BACKSTOP_SECONDS
                else:
                    failure = ("crashed", "the sandbox sent an unreadable result")
                    break
            if failure is None and len(pending) > line_cap:
                failure = ("output_limit", f"the sandbox's output exceeded {line_cap} bytes")
    if len(outcomes) < len(calls):
        if failure is None:  # the child closed its stdout: find out how it ended
            status = _exit_status(proc, deadline)
            failure = (
                ("timeout", f"wall time limit of {limits.wall_seconds}s exceeded")
                if status is None
                else _death(status, stderr, limits)
            )
        reason, error = failure
        name = str(calls[len(outcomes)].get("name"))
        outcomes.append(
            CallOutcome(
                name=name,
                ok=False,
                output=ERROR_OUTPUT.format(name=name, error=error),
                error=error,
                reason=reason,
                killed=True,
                seconds=time.monotonic() - call_started,
            )
        )
    return barriers, outcomes


def _parse(line: bytes) -> dict:
    """One protocol line as a dict; {} for anything else (a child that died mid-line)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return {}
    return message if isinstance(message, dict) else {}


def _outcome(call: dict, message: dict, limits: SandboxLimits) -> CallOutcome:
    """A call's outcome from the child's message, re-checked and re-capped: the parent trusts no length or type."""
    name = str(call.get("name"))
    seconds = message.get("seconds")
    seconds = float(seconds) if type(seconds) in (int, float) and 0 <= seconds < 1e6 else 0.0
    result = clean_result(message, limits.output_bytes)
    if result["ok"]:
        return CallOutcome(name=name, ok=True, output=result["output"], truncated=result["truncated"], seconds=seconds)
    error = result["error"]
    return CallOutcome(
        name=name,
        ok=False,
        output=ERROR_OUTPUT.format(name=name, error=error),
        error=error,
        reason=result["reason"],
        killed=result.get("killed") is True,
        seconds=seconds,
    )


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
    for _ in range(200):  # a call's process orphaned by the kill is reaped by init: wait for that, 1 s at most
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.005)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            stream.close()
        except OSError:  # stdin still holding bytes for a child that is gone
            pass
