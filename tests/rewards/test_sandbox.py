"""The sandbox: tool code runs and fails cleanly, and attacks on the machine fail safely with a clear reason."""

import ast
import dis
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import types
import uuid

import psutil
import pytest

from rewards import _sandbox_child, sandbox
from rewards.sandbox import PROJECT_ROOT, SandboxLimits, run_calls, sandbox_barriers

FAST = SandboxLimits(cpu_seconds=1, wall_seconds=1.5, memory_mb=128, output_bytes=4_000, file_mb=1)
SLACK = 1.5  # seconds beyond the wall limit for startup, kill and clean-up on a busy 2-core machine
SECRET = f"itool-secret-{uuid.uuid4().hex}"


@pytest.fixture(autouse=True)
def sandbox_sessions(monkeypatch):
    """Session ids of the sandboxes a test starts; afterwards no process may be left in any of them."""
    monkeypatch.setenv("ITOOL_TEST_SECRET", SECRET)
    started, real_popen = [], subprocess.Popen

    def popen(args, *rest, **kwargs):
        proc = real_popen(args, *rest, **kwargs)
        if str(sandbox.CHILD_SCRIPT) in map(str, args):
            started.append(proc.pid)
        return proc

    monkeypatch.setattr(sandbox.subprocess, "Popen", popen)
    yield started
    survivors = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) in started:
                survivors.append(process)
        except (ProcessLookupError, PermissionError):
            pass
    assert not survivors, f"sandbox processes left behind: {survivors}"


@pytest.fixture
def victim():
    """An innocent process in its own group, with the secret in its environment."""
    process = subprocess.Popen(["sleep", "60"], env={"ITOOL_TEST_SECRET": SECRET}, start_new_session=True)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def outside_path():
    """A path in /tmp, outside any sandbox dir; the test fails if something created it."""
    path = f"/tmp/itool-attack-{uuid.uuid4().hex}"
    yield path
    assert not os.path.exists(path), f"the attack created {path}"


def run(code: str, limits: SandboxLimits = FAST, **arguments):
    """Runs `code`, which defines `tool`, on one call; checks the sandbox kept to its time bound."""
    started = time.monotonic()
    [outcome] = run_calls({"tool": textwrap.dedent(code)}, [{"name": "tool", "arguments": arguments}], limits)
    assert time.monotonic() - started < limits.wall_seconds + SLACK
    return outcome


def attack(code: str, reason: str = "blocked", limits: SandboxLimits = FAST, says: str = "", **arguments):
    """Runs an attack; it must fail cleanly with `reason` and an error that `says` what happened."""
    outcome = run(code, limits, **arguments)
    assert not outcome.ok, outcome
    assert outcome.reason == reason, outcome
    assert says in outcome.error, outcome
    assert outcome.output == f"an error occurred when calling tool: {outcome.error}"
    assert SECRET not in outcome.output
    return outcome


# --- running tools ---------------------------------------------------------------------------------------


def test_tool_output_is_json_for_dicts_and_lists_else_str():
    implementations = {
        "weather": "def weather(city):\n    return {'city': city, 'temp': 21, 'sky': 'ciel dégagé'}",
        "cities": "def cities():\n    return ['Paris', 'Lyon']",
        "count": "def count(n):\n    return n * 2",
    }
    calls = [
        {"name": "weather", "arguments": {"city": "Paris"}},
        {"name": "cities", "arguments": {}},
        {"name": "count", "arguments": {"n": 21}},
    ]
    started = time.monotonic()
    outcomes = run_calls(implementations, calls, FAST)
    assert time.monotonic() - started < 1.0  # one child for the batch, started in tens of milliseconds
    assert [o.output for o in outcomes] == [
        '{"city": "Paris", "temp": 21, "sky": "ciel dégagé"}',
        '["Paris", "Lyon"]',
        "42",
    ]
    assert all(o.ok and not o.error and not o.reason and not o.killed for o in outcomes)
    assert [o.name for o in outcomes] == ["weather", "cities", "count"]


def test_exception_becomes_a_clear_error_output():
    outcome = run("def tool(x):\n    raise ValueError(f'bad x: {x}')", x=3)
    assert (outcome.ok, outcome.reason, outcome.killed) == (False, "exception", False)
    assert outcome.output == "an error occurred when calling tool: ValueError: bad x: 3"


@pytest.mark.parametrize(
    "implementations, call, reason, says",
    [
        ({}, {"name": "tool", "arguments": {}}, "unknown_tool", "no implementation for tool 'tool'"),
        (
            {"tool": "def other():\n    return 1"},
            {"name": "tool", "arguments": {}},
            "missing_function",
            "defines no function named tool",
        ),
        (
            {"tool": "def tool():\n    return 1"},
            {"name": "tool", "arguments": "{}"},
            "bad_arguments",
            "arguments must be a JSON object, not str",
        ),
        (
            {"tool": "def tool():\n    return 1"},
            {"name": "tool", "arguments": {"x": 1}},
            "exception",
            "unexpected keyword argument 'x'",
        ),
        ({"tool": "def tool(:\n"}, {"name": "tool", "arguments": {}}, "exception", "SyntaxError"),
    ],
)
def test_calls_that_cannot_run_fail_clearly(implementations, call, reason, says):
    [outcome] = run_calls(implementations, [call], FAST)
    assert (outcome.ok, outcome.reason) == (False, reason)
    assert says in outcome.error and outcome.output.endswith(outcome.error)


def test_state_does_not_leak_between_calls():
    implementations = {
        "count": "seen = []\ndef count():\n    seen.append(1)\n    return len(seen)",
        "rebind": "import builtins\ndef rebind():\n    builtins.len = lambda _: 42\n    return len([1])",
        "length": "def length():\n    return len([1, 2])",
    }
    calls = [{"name": name, "arguments": {}} for name in ("count", "count", "rebind", "length", "count")]
    assert [o.output for o in run_calls(implementations, calls, FAST)] == ["1", "1", "42", "2", "1"]


def test_calls_after_a_killed_call_still_run_in_a_fresh_process():
    implementations = {"hang": "import time\ndef hang():\n    time.sleep(60)", "ok": "def ok():\n    return 'fine'"}
    calls = [{"name": "ok", "arguments": {}}, {"name": "hang", "arguments": {}}, {"name": "ok", "arguments": {}}]
    outcomes = run_calls(implementations, calls, FAST)
    assert [(o.ok, o.reason) for o in outcomes] == [(True, ""), (False, "timeout"), (True, "")]
    assert outcomes[1].killed and outcomes[2].output == "fine"


def test_printing_does_not_disturb_results():
    outcome = run(
        "import sys\ndef tool():\n    print('noise\\n' * 1000)\n    sys.stderr.write('x' * 10**6)\n    return 'result'"
    )
    assert (outcome.ok, outcome.output) == (True, "result")


def test_tools_may_use_the_standard_library_and_their_own_directory():
    outcome = run("""
        import collections, dataclasses, datetime, enum, inspect, json, math, os, random, re, tempfile, typing
        @dataclasses.dataclass
        class Point:
            x: int
            y: typing.Optional[int] = None
        def tool():
            assert list(inspect.signature(Point).parameters) == ["x", "y"]
            assert enum.Enum("Colour", "red green").red.value == 1
            assert collections.namedtuple("Pair", "a b")(1, 2).b == 2
            with open("notes.txt", "w") as f:
                f.write("kept")
            with tempfile.NamedTemporaryFile("w") as f:
                f.write("scratch")
            return {"point": dataclasses.asdict(Point(1, 2)), "notes": open("notes.txt").read(),
                    "day": str(datetime.date(2025, 1, 2)), "root": round(math.sqrt(2), 3),
                    "cwd_files": sorted(os.listdir("."))}
    """)
    assert outcome.ok, outcome
    assert json.loads(outcome.output) == {
        "point": {"x": 1, "y": 2},
        "notes": "kept",
        "day": "2025-01-02",
        "root": 1.414,
        "cwd_files": ["notes.txt"],
    }


def test_limits_are_validated():
    for bad in (
        {"cpu_seconds": 0},
        {"memory_mb": 8},
        {"wall_seconds": -1},
        {"output_bytes": 1.5},
        {"open_files": True},
    ):
        with pytest.raises(ValueError):
            SandboxLimits(**bad)


def test_barriers_in_force():
    barriers = sandbox_barriers(FAST)
    assert {"rlimits", "audit-hook"} <= set(barriers)
    if os.geteuid() == 0:  # this machine: root on a recent Linux
        assert "netns" in barriers and "seccomp" in barriers
        assert any(barrier.startswith("landlock") for barrier in barriers)


def test_audit_hook_makes_no_global_lookups():
    """Tool code can rebind builtins and module attributes; the hook must not depend on any of them."""

    def code_objects(code):
        yield code
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                yield from code_objects(constant)

    hook = next(
        c
        for c in _sandbox_child.install_audit_hook.__code__.co_consts
        if isinstance(c, types.CodeType) and c.co_name == "hook"
    )
    lookups = [
        i.argval
        for c in code_objects(hook)
        for i in dis.get_instructions(c)
        if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    ]
    assert lookups == []


def test_child_sources_import_only_the_standard_library_and_what_ran_before_them():
    """The child runs CHILD_SOURCES in order in one namespace and imports none of them (the worker does, under
    `if __name__ != "__main__"`): a name one file takes from another must come from a file that runs before it."""
    defined = set()
    for path in sandbox.CHILD_SOURCES:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                outside = [
                    m for m in modules if getattr(node, "level", 0) or m.split(".")[0] not in sys.stdlib_module_names
                ]
                assert not outside, f"{path.name} imports {outside} in the child"
            elif isinstance(node, ast.If):  # the worker's imports
                for imported in (statement for statement in node.body if isinstance(statement, ast.ImportFrom)):
                    missing = {alias.name for alias in imported.names} - defined
                    assert not missing, f"{path.name} takes {sorted(missing)} from a file that runs after it"
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined |= {
                    name.id for target in node.targets for name in ast.walk(target) if isinstance(name, ast.Name)
                }
    assert {"Plan", "lock_down", "install_audit_hook", "clean_result", "main"} <= defined


# --- network ---------------------------------------------------------------------------------------------


@pytest.fixture
def tcp_listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    yield server
    with pytest.raises(TimeoutError):  # nobody connected
        server.accept()
    server.close()


@pytest.fixture
def udp_receiver():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    yield receiver
    with pytest.raises(TimeoutError):  # nothing arrived
        receiver.recvfrom(100)
    receiver.close()


def test_socket_connect_to_local_listener(tcp_listener):
    attack(
        """
        import socket
        def tool(port):
            socket.create_connection(("127.0.0.1", port), timeout=1).sendall(b"hello")
    """,
        says="network access is blocked",
        port=tcp_listener.getsockname()[1],
    )


def test_dns_lookup():
    attack("import socket\ndef tool():\n    return socket.getaddrinfo('example.com', 80)", says="network")


def test_udp_send(udp_receiver):
    attack(
        """
        import socket
        def tool(port):
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", ("127.0.0.1", port))
    """,
        says="network access is blocked",
        port=udp_receiver.getsockname()[1],
    )


def test_unix_socket_to_a_local_service(tmp_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "service.sock"))
    server.listen()
    server.settimeout(0.2)
    attack(
        """
        import socket
        def tool(path):
            socket.socket(socket.AF_UNIX).connect(path)
    """,
        says="network",
        path=str(tmp_path / "service.sock"),
    )
    with pytest.raises(TimeoutError):
        server.accept()


# --- filesystem ------------------------------------------------------------------------------------------


def test_write_tmp_outside_sandbox_dir(outside_path):
    attack("def tool(path):\n    open(path, 'w').write('pwned')", says="writing outside", path=outside_path)


def test_write_into_project_dir():
    path = PROJECT_ROOT / f"attack-{uuid.uuid4().hex}.txt"
    attack("def tool(path):\n    open(path, 'w').write('pwned')", says="writing outside", path=str(path))
    assert not path.exists()


def test_delete_file_outside(tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    attack("import os\ndef tool(path):\n    os.remove(path)", says="writing outside", path=str(keep))
    assert keep.read_text() == "precious"


def test_relative_escape_and_dir_fd_trick(outside_path):
    """`..` from the sandbox dir, then a directory opened outside used as dir_fd (the open event hides it)."""
    name = os.path.basename(outside_path)
    attack("def tool(name):\n    open('../' + name, 'w').write('pwned')", says="writing outside", name=name)
    attack(
        """
        import os
        def tool(name):
            fd = os.open("/tmp", os.O_RDONLY)
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    """,
        says="opening directories outside",
        name=name,
    )


def test_symlink_out_of_sandbox(outside_path):
    attack(
        """
        import os
        def tool(path):
            os.symlink(path, "link")
            open("link", "w").write("pwned")
    """,
        says="creating links is blocked",
        path=outside_path,
    )


def test_mkfifo_outside_has_no_audit_event_but_the_kernel_refuses(outside_path):
    attack("import os\ndef tool(path):\n    os.mkfifo(path)", says="Operation not permitted", path=outside_path)


def test_huge_file_in_sandbox_dir_hits_the_file_size_limit():
    attack(
        """
        def tool():
            with open("big.bin", "wb") as f:
                for _ in range(64):
                    f.write(b"x" * 2**20)
    """,
        reason="exception",
        says="File too large",
    )


def test_reading_the_apps_files():
    attack(
        "def tool(path):\n    return open(path).read()",
        says="reading the app's files",
        path=str(PROJECT_ROOT / "itool_web" / "settings.py"),
    )


def test_reading_raw_devices():
    attack("def tool():\n    return open('/dev/vda', 'rb').read(512)", says="reading devices")


# --- secrets ---------------------------------------------------------------------------------------------


def test_environment_holds_no_secrets():
    outcome = run("import os\ndef tool():\n    return dict(os.environ)")
    assert outcome.ok
    assert set(json.loads(outcome.output)) <= {"HOME", "TMPDIR", "LC_CTYPE"}  # LC_CTYPE: Python's locale coercion
    assert SECRET not in outcome.output


@pytest.mark.parametrize("whose", ["parent", "victim"])
def test_reading_another_process_environ(whose, victim):
    attack(
        "import os\ndef tool(pid):\n    return open(f'/proc/{pid or os.getppid()}/environ', 'rb').read().decode()",
        says="reading /proc beyond this process",
        pid=victim.pid if whose == "victim" else None,
    )


# --- processes -------------------------------------------------------------------------------------------


def test_os_system(outside_path):
    attack(
        "import os\ndef tool(path):\n    return os.system(f'touch {path}')",
        says="starting processes",
        path=outside_path,
    )


def test_subprocess_run(outside_path):
    attack(
        "def tool(path):\n    import subprocess\n    subprocess.run(['touch', path])",
        says="importing _posixsubprocess is blocked",
        path=outside_path,
    )


def test_fork_bomb():
    attack("import os\ndef tool():\n    while True:\n        os.fork()", says="starting processes")


def test_posix_spawn(outside_path):
    attack(
        "import os\ndef tool(path):\n    os.posix_spawn('/usr/bin/touch', ['touch', path], {})",
        says="starting processes",
        path=outside_path,
    )


def test_multiprocessing():
    attack(
        """
        import multiprocessing
        def tool():
            process = multiprocessing.Process(target=print)
            process.start()
            process.join()
    """,
        says="importing _posixsubprocess is blocked",
    )


def test_execv(outside_path):
    attack(
        "def tool(path):\n    __import__('os').execv('/bin/sh', ['sh', '-c', f'touch {path}'])",
        says="starting processes",
        path=outside_path,
    )


def test_ctypes_libc_system(outside_path):
    attack(
        """
        def tool(path):
            import ctypes
            ctypes.CDLL(None).system(f"touch {path}".encode())
    """,
        says="importing _ctypes is blocked",
        path=outside_path,
    )


def test_thread_bomb():
    attack(
        """
        import threading, time
        def tool():
            for _ in range(10_000):
                threading.Thread(target=time.sleep, args=(60,)).start()
    """,
        reason="exception",
        says="can't start new thread",
    )


@pytest.mark.parametrize("target", ["parent", "victim"])
def test_kill_another_process(target, victim):
    attack(
        "import os, signal\ndef tool(pid):\n    os.kill(pid or os.getppid(), signal.SIGKILL)",
        says="sending signals",
        pid=victim.pid if target == "victim" else None,
    )
    assert victim.poll() is None  # and this test process, the sandbox's parent, is still here


def test_signal_another_process_group(victim):
    attack(
        "import os, signal\ndef tool(pgid):\n    os.killpg(pgid, signal.SIGKILL)",
        says="sending signals",
        pgid=os.getpgid(victim.pid),
    )
    assert victim.poll() is None


# --- escaping the audit hook -----------------------------------------------------------------------------


def test_walking_the_object_graph_to_reach_the_hook():
    attack("import gc\ndef tool():\n    return len(gc.get_objects())", says="walking the object graph")


def test_sub_interpreter_without_hooks():
    attack("def tool():\n    import _xxsubinterpreters", says="importing _xxsubinterpreters is blocked")


def test_crafting_bytecode():
    attack("def tool():\n    return tool.__code__.replace(co_code=b'\\x00' * 8)", says="building code objects")


def test_raising_own_limits():
    attack(
        "import resource\ndef tool():\n    resource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))",
        says="changing resource limits",
    )


@pytest.mark.parametrize("copy", ["_bisect.so", "innocent.txt"])
def test_loading_native_code_written_to_the_sandbox_dir(copy):
    attack(
        """
        import importlib.machinery, importlib.util, shutil, _bisect
        def tool(copy):
            shutil.copy(_bisect.__file__, copy)
            loader = importlib.machinery.ExtensionFileLoader("_bisect", copy)
            spec = importlib.util.spec_from_file_location("_bisect", copy, loader=loader)
            return importlib.util.module_from_spec(spec)
    """,
        says="loading native code from outside the Python installation",
        copy=copy,
    )


def test_rebinding_what_the_hook_might_use(outside_path):
    attack(
        """
        import builtins, os, posixpath, stat
        def tool(path):
            builtins.type = lambda obj: str
            builtins.len = lambda obj: 0
            os.readlink = posixpath.normpath = lambda p: "/tmp/sandbox/x"
            stat.S_ISDIR = lambda mode: False
            open(path, "w").write("pwned")
    """,
        says="writing outside",
        path=outside_path,
    )


def test_a_caught_refusal_still_fails_the_call(tcp_listener):
    attack(
        """
        import socket
        def tool(port):
            try:
                socket.create_connection(("127.0.0.1", port))
            except Exception:
                return "all good"
    """,
        says="network access is blocked",
        port=tcp_listener.getsockname()[1],
    )


# --- resources -------------------------------------------------------------------------------------------


def test_infinite_loop_hits_the_cpu_limit():
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=4, memory_mb=128)  # wall well above CPU: load-proof
    outcome = attack(
        "def tool():\n    while True:\n        pass",
        reason="cpu_limit",
        limits=limits,
        says="CPU time limit of 1s exceeded",
    )
    assert outcome.killed


def test_sleep_forever_hits_the_wall_limit():
    outcome = attack(
        "import time\ndef tool():\n    time.sleep(10**6)", reason="timeout", says="wall time limit of 1.5s exceeded"
    )
    assert outcome.killed and outcome.seconds >= FAST.wall_seconds


@pytest.mark.parametrize("hog", ["bytearray(2**40)", "[' ' * 2**20 for _ in range(10**6)]"])
def test_memory_hog(hog):
    parent = psutil.Process()
    before = parent.memory_info().rss
    attack(f"def tool():\n    return len({hog})", reason="memory_limit", says="memory limit of 128 MB exceeded")
    assert parent.memory_info().rss - before < 50 * 2**20


def test_huge_output_is_truncated():
    parent = psutil.Process()
    before = parent.memory_info().rss
    outcome = run("def tool():\n    return 'x' * 50_000_000")
    assert outcome.ok and outcome.truncated
    assert outcome.output == "x" * FAST.output_bytes + f"\n[output truncated at {FAST.output_bytes} bytes]"
    assert parent.memory_info().rss - before < 50 * 2**20


def test_flooding_the_result_pipe_is_cut_off():
    parent = psutil.Process()
    before = parent.memory_info().rss
    outcome = attack(
        """
        import os
        def tool():
            for fd in range(3, 10):
                try:
                    while True:
                        os.write(fd, b"x" * 2**20)
                except OSError:
                    pass
    """,
        reason="output_limit",
        says="output exceeded",
    )
    assert outcome.killed
    assert parent.memory_info().rss - before < 50 * 2**20


def test_garbling_the_result_pipe():
    implementations = {
        "garble": "import os\ndef garble():\n    for fd in range(3, 10):\n        try:\n"
        "            os.write(fd, b'not json\\n')\n        except OSError:\n"
        "            pass",
        "fine": "def fine():\n    return 'fine'",
    }
    outcomes = run_calls(
        implementations, [{"name": "garble", "arguments": {}}, {"name": "fine", "arguments": {}}], FAST
    )
    assert [(o.ok, o.reason) for o in outcomes] == [(False, "crashed"), (True, "")]
    assert "unreadable result" in outcomes[0].error


def test_deep_recursion():
    attack("def tool(n=0):\n    return tool(n + 1)", reason="exception", says="RecursionError")


def test_deep_recursion_past_the_c_stack_fails_only_the_call():
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=4, memory_mb=128)  # it takes about a second
    outcome = run("import sys\nsys.setrecursionlimit(10**7)\ndef tool(n=0):\n    return tool(n + 1)", limits)
    assert not outcome.ok and outcome.reason in ("crashed", "exception", "memory_limit", "cpu_limit"), outcome


def test_many_open_files():
    attack(
        "def tool():\n    return [open(f'f{i}', 'w') for i in range(10_000)]",
        reason="exception",
        says="Too many open files",
    )


# --- the kernel barriers alone ---------------------------------------------------------------------------

KERNEL_ATTACKS = {  # name: (code, what the kernel says)
    "tcp connect": (
        "import socket\ndef tool(pid, path):\n    socket.create_connection(('127.0.0.1', 9))",
        "Operation not permitted",
    ),
    "fork": ("import os\ndef tool(pid, path):\n    os.fork()", "Operation not permitted"),
    "exec": (
        "import os\ndef tool(pid, path):\n    os.execv('/usr/bin/touch', ['touch', path])",
        "Operation not permitted",
    ),
    "write outside": ("def tool(pid, path):\n    open(path, 'w')", "Permission denied"),
    "read app files": (
        "def tool(pid, path):\n    open(" + repr(str(PROJECT_ROOT / "pytest.ini")) + ").read()",
        "Permission denied",
    ),
    "read environ": ("def tool(pid, path):\n    open(f'/proc/{pid}/environ').read()", "Permission denied"),
    "kill": ("import os\ndef tool(pid, path):\n    os.kill(pid, 9)", "Operation not permitted"),
}


@pytest.mark.parametrize("name", KERNEL_ATTACKS)
def test_kernel_barriers_hold_without_the_audit_hook(name, monkeypatch, victim, outside_path):
    barriers = sandbox_barriers(FAST)
    if "seccomp" not in barriers or not any(b.startswith("landlock") for b in barriers):
        pytest.skip(f"this kernel lacks seccomp or Landlock: {barriers}")
    monkeypatch.setattr(sandbox, "_AUDIT_HOOK", False)
    code, says = KERNEL_ATTACKS[name]
    attack(code, says=says, pid=victim.pid, path=outside_path)
    assert victim.poll() is None
