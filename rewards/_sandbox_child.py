"""Sandbox child: runs each call in a fresh process that locks itself down before any tool code (see sandbox.py).

Started by rewards/sandbox.py under `python -I -S -B` with an empty environment, in a fresh temp dir that is
its working directory, where it can be in its own network and mount namespaces. Its code is four files, run in
order in one namespace (sandbox.py's CHILD_SOURCES, compiled once per worker): _sandbox_tables.py (what is
allowed and refused), _sandbox_lockdown.py (the kernel barriers), _sandbox_audit.py (the audit hook), then this
one. The child imports none of them; the worker imports them as modules of `rewards`. Standard library only, so
it starts in milliseconds and never sees the app's code or settings. Protocol: one JSON request on stdin; on
stdout one JSON line naming the barriers in force, then one JSON line per call.

This process runs no tool code. It prepares what every call shares (the Python install made reachable for
the unprivileged user, the standard-library modules the tools import), then forks one process per call:
that process locks itself down, runs the call and writes its result to a pipe of its own, which this process
reads, checks and re-caps. A call can therefore reach neither the other calls nor the channel to the parent:
whatever it changes or forges dies with its process.

Barriers of a call's process, outermost first (sandbox.py adds the network namespace and the wall-clock kill):
- rlimits: CPU, address space, file size, open files, core dumps, processes;
- tmpfs: a fresh temp dir per call, sized (`disk_mb`, `files`) and mounted noexec, nosuid, nodev;
- privileges: as root it drops to nobody (uid and gid 65534, no groups); capability sets all emptied;
- Landlock (Linux >= 5.13): reads only from the Python install, system library dirs and /proc/self, writes
  only beneath the temp dir, no exec, no TCP (ABI >= 4), no signals to processes outside it (ABI >= 6);
- seccomp (x86-64): no fork/clone/exec, no sockets, no signals to other pids, no namespaces or mounts, no
  scheduling or priority changes, no memory-backed files;
- an audit hook: refuses the same things at the Python level, with messages that say what was refused, and
  reports each refusal on the result pipe before the tool can catch it.
"""

import errno
import json
import os
import resource
import signal
import sys
import time

if __name__ != "__main__":  # the worker imports this module; in the child, sandbox.py has run the files before it
    from ._sandbox_audit import install_audit_hook
    from ._sandbox_lockdown import Plan, lock_down
    from ._sandbox_tables import ERROR_CHARS, IMPORT_STATEMENT, PRELOADABLE, REASONS, REFUSED_EXIT


def error(reason: str, message: str) -> dict:
    return {"ok": False, "reason": reason, "error": message}


def describe(exception: BaseException) -> str:
    try:
        text = f"{type(exception).__name__}: {exception}"
    except BaseException:  # a tool's exception whose __str__ fails
        text = type(exception).__name__
    return text[:ERROR_CHARS].encode("utf-8", "replace").decode()


def cap_output(text: str, cap: int) -> tuple[str, bool]:
    """(text, truncated): at most `cap` UTF-8 bytes, with a note appended when cut. Text already capped this
    way is returned as it is, so the call's process, this process and the parent can each apply it."""
    marker = f"\n[output truncated at {cap} bytes]"
    head = text[: cap + len(marker) + 1].encode("utf-8", "replace")  # a character takes a byte at least
    if len(head) <= cap:  # lone surrogates cannot cross the pipe: the round trip replaces them
        return head.decode(), False
    if len(head) <= cap + len(marker) and text.endswith(marker):
        return head.decode(), True
    return head[:cap].decode("utf-8", "ignore") + marker, True


def clean_result(message: dict, output_bytes: int) -> dict:
    """A call's result as the next process up may pass it on: known fields of the right types, the output
    re-capped, the error cut, the reason one of REASONS. Whatever a call's process wrote is checked here."""
    output = message.get("output")
    if message.get("ok") is True and type(output) is str:
        output, cut = cap_output(output, output_bytes)
        return {"ok": True, "output": output, "truncated": cut or message.get("truncated") is True}
    if message.get("ok") is False:
        reason, text = message.get("reason"), message.get("error")
        return {
            **error(
                reason if type(reason) is str and reason in REASONS else "exception",
                text[:ERROR_CHARS] if type(text) is str else "unknown error",
            ),
            "killed": message.get("killed") is True,
        }
    return error("crashed", "the sandbox sent an unreadable result")


def run_call(implementations: dict, call: dict, limits: dict) -> dict:
    """FTRL's utils.call_function: exec the tool's code in a fresh namespace, call the function named like the
    tool with the arguments; dict/list results become JSON, anything else str()."""
    name, arguments = call.get("name"), call.get("arguments")
    code = implementations.get(name) if type(name) is str else None
    if not isinstance(code, str):
        return error("unknown_tool", f"no implementation for tool {name!r}")
    if not isinstance(arguments, dict):
        return error("bad_arguments", f"arguments must be a JSON object, not {type(arguments).__name__}")
    namespace = {}
    try:
        exec(compile(code, f"<tool {name}>", "exec"), namespace)
        function = namespace.get(name)
        if not callable(function):
            return error("missing_function", f"the implementation of {name} defines no function named {name}")
        value = function(**arguments)
        output = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
        output, truncated = cap_output(output, limits["output_bytes"])
        return {"ok": True, "output": output, "truncated": truncated}
    except MemoryError:
        return error("memory_limit", f"memory limit of {limits['memory_mb']} MB exceeded")
    except PermissionError as exception:
        return error("blocked", describe(exception))
    except BaseException as exception:  # SystemExit and KeyboardInterrupt included: the tool's, not ours
        return error("exception", describe(exception))


def send(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()  # ASCII escapes: one line per message, whatever the text
    while data:
        data = data[os.write(fd, data) :]


def call_process(plan: Plan, request: dict, index: int, result_fd: int) -> None:
    """The forked process of call `index` of `request`: locks down, runs the call, writes its result to
    `result_fd`, exits. The batch's other calls and tool code are wiped from its copy of memory first."""
    status = 1
    try:
        call = request["calls"][index]
        name = call.get("name") if isinstance(call, dict) else None
        implementations = request["implementations"]
        own = {name: implementations[name]} if type(name) is str and name in implementations else {}
        request["calls"].clear()  # the same objects as every other reference to them in this process
        implementations.clear()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # what a tool prints goes nowhere
            os.dup2(devnull, fd)
        os.closerange(3, result_fd)  # the channel to the parent among them
        os.closerange(result_fd + 1, 1 << 30)
        try:
            barriers = lock_down(plan)
            if barriers != plan.kernel_barriers:
                raise OSError(errno.EPERM, f"barriers {barriers}, expected {plan.kernel_barriers}")
        except BaseException as exception:  # no tool code has run
            send(result_fd, error("crashed", f"the sandbox could not lock down: {describe(exception)}"))
            return
        sys.implementation.cache_tag = None  # no bytecode caches: importing them needs marshal, refused below
        if plan.audit_hook:
            install_audit_hook(plan.workdir, plan.private_dirs, result_fd)
        limits = plan.limits
        signal.setitimer(signal.ITIMER_PROF, limits["cpu_seconds"])  # CPU of this call; SIGPROF ends the process
        result = run_call(own, call, limits)
        signal.setitimer(signal.ITIMER_PROF, 0)
        send(result_fd, result)
        status = 0
    finally:
        os._exit(status)  # never back into the loop of the process that forked this one


def pipe_cap(limits: dict) -> int:
    """Bytes a call's process may write to its pipe: its result, with a JSON escape taking at most 6 bytes per
    byte of output, and its refusal reports."""
    return 6 * limits["output_bytes"] + 4096


def wait_for_call(pid: int, read_fd: int, cap: int, deadline: float) -> tuple[bytes, str, int]:
    """(what a call's process wrote to its pipe, "" or why it was killed, its wait status). It is killed when
    it writes more than `cap` bytes ("flooded") or is still running at `deadline` ("timeout")."""
    import select

    data, killed = b"", ""
    while True:  # the pipe, until its end
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([read_fd], [], [], remaining)[0]:
            killed = "timeout"
            break
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        data += chunk
        if len(data) > cap:
            killed = "flooded"
            break
    while not killed:  # the end of the pipe is not the end of the process: tool code can close it and go on
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            return data, "", status
        if time.monotonic() >= deadline:
            killed = "timeout"
        else:
            time.sleep(0.0005)
    os.kill(pid, signal.SIGKILL)
    return data, killed, os.waitpid(pid, 0)[1]


def verdict(data: bytes, killed: str, status: int, limits: dict) -> dict:
    """One call's result from what its process wrote and how it ended. A refusal the audit hook reported
    fails the call whatever the tool did next; otherwise the pipe must hold exactly one result."""
    refusals, lines = [], []
    for line in data.split(b"\n"):
        if line.startswith(b"refused "):
            try:
                refusals.append(bytes.fromhex(line[8:].decode("ascii")).decode("utf-8", "replace"))
            except ValueError:
                refusals.append("an operation")
        elif line.strip():
            lines.append(line)
    if refusals:
        return error("blocked", f"sandbox refused {refusals[0]}"[:ERROR_CHARS])
    died = {"killed": True}
    if killed == "flooded":
        return {**error("output_limit", f"the call's output exceeded {pipe_cap(limits)} bytes"), **died}
    if killed == "timeout":
        return {**error("timeout", f"wall time limit of {limits['wall_seconds']}s exceeded"), **died}
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number in (signal.SIGPROF, signal.SIGXCPU):
            return {**error("cpu_limit", f"CPU time limit of {limits['cpu_seconds']}s exceeded"), **died}
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return {**error("crashed", f"the sandbox process was killed by {name}"), **died}
    code = os.WEXITSTATUS(status)
    if code == REFUSED_EXIT:
        return error("blocked", "sandbox refused an operation (and its report was tampered with)")
    message = None
    if len(lines) == 1:
        try:
            message = json.loads(lines[0])
        except (ValueError, RecursionError):
            pass
    if not isinstance(message, dict):
        if code:
            return {**error("crashed", f"the sandbox process exited with status {code}"), **died}
        return error("crashed", "the sandbox sent an unreadable result")
    return clean_result(message, limits["output_bytes"])


def run_in_process(plan: Plan, request: dict, index: int, started: float) -> dict:
    """Runs call `index` of `request` in a fresh process forked from this one, in a fresh temp dir; returns its
    checked result. The call's wall time counts from `started`."""
    if plan.tmpfs:
        plan.mount_call_dir()
    try:
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                call_process(plan, request, index, write_fd)
            os.close(write_fd)
            deadline = started + plan.limits["wall_seconds"]
            data, killed, status = wait_for_call(pid, read_fd, pipe_cap(plan.limits), deadline)
        finally:
            os.close(read_fd)
    finally:
        plan.clear_call_dir()
    return {**verdict(data, killed, status, plan.limits), "seconds": time.monotonic() - started}


def preload(implementations: dict, calls: list) -> None:
    """Imports the PRELOADABLE modules that the called tools' code imports, once for all the calls' processes.
    A regular expression finds the import statements: one it misses costs time, not correctness."""
    import re

    wanted = set()
    for call in calls:
        code = implementations.get(call.get("name")) if type(call.get("name")) is str else None
        for module, modules in re.findall(IMPORT_STATEMENT, code if isinstance(code, str) else ""):
            wanted.update([module] if module else (name.split()[0] for name in modules.split(",") if name.split()))
    for name in sorted(wanted & PRELOADABLE):
        try:
            __import__(name)
        except Exception:  # the tool's own import will say what is wrong
            pass


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    started = request["started"]  # the parent's clock (CLOCK_MONOTONIC): the first call's wall time has our start-up
    protocol = os.dup(1)  # results go here; fd 0 and 1 become /dev/null
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    os.umask(0o022)
    limits, calls, implementations = request["limits"], request["calls"], request["implementations"]
    cpu_seconds = limits["cpu_seconds"] * len(calls) + 2  # this process's own work; each call has its own limit
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    plan = Plan(request, os.getcwd())
    preload(implementations, calls)
    send(protocol, {"barriers": plan.barriers})
    for index in range(len(calls)):
        send(protocol, {**run_in_process(plan, request, index, started), "index": index})
        started = time.monotonic()
    os._exit(0)  # no atexit handlers


if __name__ == "__main__":
    main()
