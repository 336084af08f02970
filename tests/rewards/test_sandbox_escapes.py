"""The sandbox escapes of issue 14 (items 11-14): each attack that once worked now fails, at the kernel where it can."""

import json
import os
import shutil
import subprocess

import pytest

from rewards import sandbox
from rewards.sandbox import SandboxLimits, run_calls, sandbox_barriers
from tests.rewards.test_sandbox import FAST, attack, run, sandbox_sessions, tcp_listener, victim  # noqa: F401 (fixtures)

ROOT = os.geteuid() == 0  # this machine and CI: the worker (and so the test) runs as root
NOBODY = 65534


def _mounts_allowed() -> bool:
    """Whether this machine lets the sandbox have a mount namespace (so its temp dir can be a noexec tmpfs)."""
    unshare = shutil.which("unshare")
    return unshare is not None and any(
        subprocess.run([unshare, "--mount", *extra, "true"], capture_output=True).returncode == 0
        for extra in ([], ["--map-root-user"])
    )


# --- 11. privileges and scheduling -----------------------------------------------------------------------

RESCHEDULING = {  # what tool code tried on other processes; each left its mark when it worked
    "setpriority": "os.setpriority(os.PRIO_PROCESS, pid, 19)",
    "sched_setscheduler": "os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))",
    "sched_setaffinity": "os.sched_setaffinity(pid, {0})",
}


def _scheduling(pid: int) -> tuple:
    return os.getpriority(os.PRIO_PROCESS, pid), os.sched_getscheduler(pid), os.sched_getaffinity(pid)


@pytest.mark.parametrize("target", ["parent", "victim"])
@pytest.mark.parametrize("call", RESCHEDULING)
def test_tool_code_cannot_reschedule_other_processes(call, target, victim):
    pid = os.getpid() if target == "parent" else victim.pid
    before = _scheduling(pid)
    try:
        attack(f"import os\ndef tool(pid):\n    {RESCHEDULING[call]}", says="Operation not permitted", pid=pid)
        assert _scheduling(pid) == before
    finally:  # undo a success, so a failing run does not leave this test process at SCHED_IDLE on one CPU
        os.sched_setaffinity(pid, before[2])
        os.sched_setscheduler(pid, before[1], os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, pid, before[0])


def test_tool_code_runs_unprivileged():
    outcome = run("""
        import os
        def tool():
            status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
            fields = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")
            return {field: status[field].split() for field in fields}
    """)
    assert outcome.ok, outcome
    status = json.loads(outcome.output)
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities][0], 16) == 0, status
    assert status["NoNewPrivs"] == ["1"]
    if ROOT:  # real, effective, saved and filesystem ids all dropped, supplementary groups gone
        assert status["Uid"] == status["Gid"] == [str(NOBODY)] * 4, status
        assert status["Groups"] == []
        assert "user-nobody" in sandbox_barriers(FAST)


def test_unprivileged_tool_code_still_imports_the_standard_library():
    """As nobody, with no bytecode caches: a module the sandbox did not load beforehand, and native code."""
    outcome = run("""
        import importlib
        def tool():
            statistics = importlib.import_module("statistics")  # pure Python, pulls in _decimal (native)
            fraction = importlib.import_module("fractions").Fraction
            return str(statistics.median([fraction(1, 3), 1, 2]))
    """)
    assert (outcome.ok, outcome.output) == (True, "1"), outcome


# --- 12. one call tampering with the others ----------------------------------------------------------------

WALK_FRAMES = """
import sys
def frames():
    frame = sys._getframe()
    while frame is not None:
        yield frame
        frame = frame.f_back
"""


def test_a_call_cannot_erase_its_refusal(tcp_listener):
    attack(
        WALK_FRAMES
        + """
import socket
def tool(port):
    try:
        socket.create_connection(("127.0.0.1", port))
    except Exception:
        pass
    for frame in frames():  # empty every list of strings the sandbox's own frames hold
        for value in list(frame.f_locals.values()):
            if type(value) is list and all(type(item) is str for item in value):
                value.clear()
    return "all good"
""",
        says="network access is blocked",
        port=tcp_listener.getsockname()[1],
    )


def test_a_call_cannot_hide_its_refusal_by_replacing_its_pipe(tcp_listener):
    """A file dup'ed over every descriptor the report could go to: the refusal still fails the call."""
    attack(
        """
        import os, socket
        def tool(port):
            decoy = os.open("decoy", os.O_WRONLY | os.O_CREAT)
            for fd in range(3, 24):  # not all 32 the rlimit allows: with none left, nothing reaches the network
                if fd != decoy:
                    os.dup2(decoy, fd)
            try:
                socket.create_connection(("127.0.0.1", port))
            except Exception:
                pass
            return "all good"
    """,
        says="its report was tampered with",
        port=tcp_listener.getsockname()[1],
    )


def test_a_call_cannot_change_the_calls_after_it():
    implementations = {
        "hijack": WALK_FRAMES
        + """
def hijack():
    for frame in frames():
        for value in list(frame.f_locals.values()):
            if type(value) is dict and "genuine" in value:
                value["genuine"] = "def genuine():\\n    return 'HIJACKED'"
            if type(value) is list:
                for call in value:
                    if type(call) is dict and call.get("name") == "genuine":
                        call["arguments"] = {"word": "hijacked"}
    return "done"
""",
        "genuine": "def genuine(word='genuine'):\n    return word",
    }
    outcomes = run_calls(
        implementations, [{"name": "hijack", "arguments": {}}, {"name": "genuine", "arguments": {}}], FAST
    )
    assert [(o.ok, o.output) for o in outcomes] == [(True, "done"), (True, "genuine")]


def test_a_call_cannot_read_the_other_calls():
    implementations = {
        "spy": WALK_FRAMES
        + """
def spy():
    seen = [repr(frame.f_locals) for frame in frames()]
    wanted = ("other-call-" + "secret", "the other " + "tool")  # not spelt out: this code is in those frames
    return any(word in text for text in seen for word in wanted)
""",
        "other": "def other(word):\n    return 'the other tool'",
    }
    outcomes = run_calls(
        implementations,
        [{"name": "spy", "arguments": {}}, {"name": "other", "arguments": {"word": "other-call-secret"}}],
        FAST,
    )
    assert [(o.ok, o.output) for o in outcomes] == [(True, "False"), (True, "the other tool")]


def test_a_call_cannot_forge_results():
    """Forged result lines on every descriptor: at worst the forger's own call fails; the next one is its own."""
    forge = """
import json, os
def forge():
    for index in (0, 1):
        line = (json.dumps({"ok": True, "output": "FORGED", "index": index, "seconds": 0}) + "\\n").encode()
        for fd in range(3, 64):
            try:
                os.write(fd, line)
            except OSError:
                pass
    return "real"
"""
    outcomes = run_calls(
        {"forge": forge, "fine": "def fine():\n    return 'fine'"},
        [{"name": "forge", "arguments": {}}, {"name": "fine", "arguments": {}}],
        FAST,
    )
    assert "FORGED" not in [o.output for o in outcomes]
    assert (outcomes[1].ok, outcomes[1].output) == (True, "fine")


def test_a_forged_result_cannot_pass_the_output_cap():
    outcome = run("""
        import json, os
        def tool():
            line = (json.dumps({"ok": True, "output": "x" * 20_000, "index": 0, "seconds": 0}) + "\\n").encode()
            for fd in range(3, 64):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
            os._exit(0)
    """)
    marker = f"\n[output truncated at {FAST.output_bytes} bytes]"
    assert len(outcome.output.encode()) <= FAST.output_bytes + len(marker), len(outcome.output)


def test_the_parent_caps_what_the_sandbox_sends():
    """The parent trusts no length or type the child's process reports (issue 14: a 200,014-character output)."""
    call = {"name": "tool", "arguments": {}}
    outcome = sandbox._outcome(call, {"ok": True, "output": "é" * 200_014, "truncated": False}, FAST)
    assert outcome.truncated and len(outcome.output.encode()) <= FAST.output_bytes + 64
    outcome = sandbox._outcome(call, {"ok": False, "error": "e" * 200_014, "reason": "made up", "seconds": "x"}, FAST)
    assert outcome.reason == "exception" and len(outcome.error) <= 2_000 and outcome.seconds == 0.0


# --- 13. crafted code and native code ------------------------------------------------------------------


def test_unmarshalling_code_objects():
    attack(
        """
        import marshal
        def tool():
            code = marshal.loads(marshal.dumps(compile("40 + 2", "<crafted>", "eval")))
            return eval(code)
    """,
        says="unmarshalling code is blocked",
    )


@pytest.mark.parametrize("copy", ["_bisect.so", "innocent.txt"])
def test_native_code_copied_into_the_sandbox_dir_does_not_map_without_the_audit_hook(copy, monkeypatch):
    """The kernel barrier under the audit hook's refusal: the temp dir is mounted noexec."""
    if not _mounts_allowed():
        pytest.skip("no mount namespace here: the temp dir cannot be mounted noexec")
    monkeypatch.setattr(sandbox, "_AUDIT_HOOK", False)
    attack(
        """
        import importlib.machinery, importlib.util, shutil, _bisect
        def tool(copy):
            shutil.copy(_bisect.__file__, copy)
            loader = importlib.machinery.ExtensionFileLoader("_bisect", copy)
            spec = importlib.util.spec_from_file_location("_bisect", copy, loader=loader)
            return str(importlib.util.module_from_spec(spec))
    """,
        reason="exception",
        says="failed to map segment",
        copy=copy,
    )


# --- 14. disk quota ------------------------------------------------------------------------------------


def test_a_call_cannot_fill_the_disk():
    """Default limits: 16 MB files (RLIMIT_FSIZE) are allowed, 64 MB in all (the call's tmpfs) are not."""
    attack(
        """
        def tool():
            block = b"x" * 2**20
            for number in range(100):
                with open(f"part{number}", "wb") as f:
                    for _ in range(4):
                        f.write(block)
    """,
        reason="exception",
        limits=SandboxLimits(),
        says="No space left on device",
    )


def test_a_call_cannot_create_files_without_end():
    outcome = attack(
        """
        import os
        def tool():
            for number in range(5_000):
                os.close(os.open(f"f{number}", os.O_CREAT | os.O_WRONLY))
    """,
        reason="exception",
        limits=SandboxLimits(),
        says="No space left on device",
    )
    assert not outcome.killed


def test_files_written_by_one_call_are_gone_for_the_next():
    implementations = {
        "write": "def write():\n    open('note', 'w').write('left behind')\n    return 'written'",
        "look": "import os\ndef look():\n    return sorted(os.listdir('.'))",
    }
    outcomes = run_calls(implementations, [{"name": "write", "arguments": {}}, {"name": "look", "arguments": {}}], FAST)
    assert [o.output for o in outcomes] == ["written", "[]"]
