"""Sandbox child: locks its own process down, then runs tool implementations on calls (see sandbox.py).

Started by apps/rewards/sandbox.py as `python -I -S -B _sandbox_child.py` with an empty environment, in a
fresh temp dir that is its working directory. Standard library only, so it starts in milliseconds and never
sees the app's code or settings. Protocol: one JSON request on stdin; on stdout one JSON line naming the
barriers in force, then one JSON line per call, in order.

Barriers, outermost first (sandbox.py adds a network namespace and the wall-clock kill):
- rlimits: CPU, address space, file size, open files, core dumps, processes (the last is ignored for root);
- Landlock (Linux >= 5.13): reads only from the Python install, system library dirs and /proc/self, writes
  only beneath the temp dir, no exec, no ptrace of other processes, no TCP (ABI >= 4), no signals to
  processes outside the sandbox (ABI >= 6);
- seccomp (x86-64): no fork/clone/exec, no sockets, no signals to other pids, no namespaces or mounts;
- an audit hook: refuses the same things at the Python level, with messages that say what was refused.
"""
import builtins
import errno
import json
import os
import resource
import signal
import stat
import struct
import sys
import time

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
ERROR_CHARS = 2000  # an error message longer than this says nothing more useful

# Landlock (include/uapi/linux/landlock.h): syscall numbers are the same on every architecture.
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_DIR, FS_MAKE_REG = 1 << 4, 1 << 5, 1 << 7, 1 << 8
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
FS_RIGHTS_BY_ABI = {1: 13, 2: 14, 3: 15, 4: 15}  # how many access bits each ABI knows; 16 from ABI 5 on
# What tool code may read besides the Python install and its own dir (the hook applies the same lists).
PROC_FILES = ("cpuinfo", "meminfo", "stat", "uptime", "loadavg", "version")  # and /proc/self, i.e. /proc/<pid>
DEV_FILES = ("null", "zero", "full", "random", "urandom")
READABLE_DIRS = ("/usr", "/lib", "/lib64", "/sys", "/proc/self")  # shared libraries, zoneinfo, CPU count
READABLE_FILES = ("/etc/localtime", "/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                  *(f"/proc/{name}" for name in PROC_FILES), *(f"/dev/{name}" for name in DEV_FILES))

# seccomp (x86-64 numbers, arch/x86/entry/syscalls/syscall_64.tbl): refused with EPERM.
DENIED_SYSCALLS = {
    "socket": 41, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "tkill": 200,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_open": 434,
    "pidfd_send_signal": 424, "pidfd_getfd": 438, "setsid": 112, "setpgid": 109, "unshare": 272,
    "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "mknod": 133,
    "mknodat": 259, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249,
    "open_by_handle_at": 304, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "kexec_load": 246, "init_module": 175, "finit_module": 313,
    "reboot": 169,
}
SYS_CLONE3, SYS_KILL, SYS_TGKILL, SYS_PRLIMIT64 = 435, 62, 234, 302
AUDIT_ARCH_X86_64 = 0xC000003E

# Audit events refused outright, by prefix, with the reason the tool is told.
REFUSED_EVENTS = (
    (("socket.",), "network access is blocked"),
    (("os.system", "os.fork", "os.exec", "os.spawn", "os.posix_spawn", "subprocess.Popen", "os.startfile"),
     "starting processes is blocked"),
    (("os.kill", "signal.pthread_kill"), "sending signals is blocked"),
    (("ctypes.",), "ctypes (raw memory and C calls) is blocked"),
    (("resource.setrlimit", "resource.prlimit"), "changing resource limits is blocked"),
    (("gc.get_objects", "gc.get_referrers", "gc.get_referents"), "walking the object graph is blocked"),
    (("code.__new__",), "building code objects is blocked (crafted bytecode can corrupt memory)"),
    (("os.chdir",), "changing the working directory is blocked"),
    (("os.symlink", "os.link"), "creating links is blocked (they could lead outside the sandbox)"),
)
# Modules that slip past audit hooks: _posixsubprocess forks unaudited, sub-interpreters have no hooks,
# _test* expose raw memory. Names starting with these prefixes are refused too.
REFUSED_MODULES = ("_posixsubprocess", "_ctypes", "_xx", "_test")
# Events that change the filesystem: (event, ((position of a path argument, position of its dir_fd), ...)).
PATH_EVENTS = (
    ("os.mkdir", ((0, 2),)), ("os.rmdir", ((0, 1),)), ("os.remove", ((0, 1),)), ("os.rename", ((0, 2), (1, 3))),
    ("os.truncate", ((0, None),)), ("os.chmod", ((0, 2),)), ("os.chown", ((0, 3),)), ("os.utime", ((0, 3),)),
    ("os.setxattr", ((0, None),)), ("os.removexattr", ((0, None),)), ("os.chflags", ((0, None),)),
)
PROC_LINKS = ("root", "cwd", "fd", "map_files", "exe")  # /proc/self/<these> lead outside the sandbox


def set_limits(limits: dict, call_count: int) -> None:
    mb = 1024 * 1024
    cpu_seconds = limits["cpu_seconds"] * call_count + 1  # the whole batch; each call also has an itimer
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU first, SIGKILL after
    for rlimit, value in (
        (resource.RLIMIT_AS, limits["memory_mb"] * mb),
        (resource.RLIMIT_FSIZE, limits["file_mb"] * mb),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),  # no forks or threads, except for root, whom the kernel exempts
    ):
        resource.setrlimit(rlimit, (value, value))


def landlock(libc, ctypes, workdir: str) -> int:
    """Restricts this process with Landlock; returns the ABI version used, 0 where the kernel lacks it."""
    long = ctypes.c_long
    abi = libc.syscall(long(SYS_LANDLOCK_CREATE_RULESET), None, long(0), long(1))  # 1: ask for the version
    if abi < 1:
        return 0
    handled_fs = (1 << FS_RIGHTS_BY_ABI.get(abi, 16)) - 1
    handled_net = 0b11 if abi >= 4 else 0  # bind and connect TCP; no rule grants them
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets and signals outside the sandbox
    attr = struct.pack("<QQQ", handled_fs, handled_net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    ruleset = libc.syscall(long(SYS_LANDLOCK_CREATE_RULESET), attr, long(len(attr)), long(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    writable = FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | FS_REFER | FS_TRUNCATE
    python_dirs = {sys.base_prefix, sys.base_exec_prefix}
    rules = [(path, FS_READ_FILE | FS_READ_DIR) for path in (*READABLE_DIRS, *python_dirs)]
    rules += [(path, FS_READ_FILE) for path in READABLE_FILES]
    rules.append((workdir, FS_READ_FILE | FS_READ_DIR | writable))
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # not on this system
            try:
                rule = struct.pack("<Qi", rights & handled_fs, fd)  # struct landlock_path_beneath_attr, packed
                if libc.syscall(long(SYS_LANDLOCK_ADD_RULE), long(ruleset), long(1), rule, long(0)) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        if libc.syscall(long(SYS_LANDLOCK_RESTRICT_SELF), long(ruleset), long(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def seccomp_program(own_pid: int) -> list[tuple[int, int, int, int]]:
    """A classic-BPF filter as (code, jump if true, jump if false, k) rows; see linux/seccomp.h."""
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    allow, deny, nosys, kill = 0x7FFF0000, 0x50000 | errno.EPERM, 0x50000 | errno.ENOSYS, 0x80000000
    program = [(load, 0, 0, 4), (jeq, 1, 0, AUDIT_ARCH_X86_64), (ret, 0, 0, kill),  # other ABIs: kill
               (load, 0, 0, 0), (jge, 0, 1, 0x40000000), (ret, 0, 0, deny)]  # x32 numbers: refuse
    for number in DENIED_SYSCALLS.values():
        program += [(jeq, 0, 1, number), (ret, 0, 0, deny)]
    program += [(jeq, 0, 1, SYS_CLONE3), (ret, 0, 0, nosys)]  # glibc then falls back to clone, refused above
    for number, allowed_first_argument in ((SYS_KILL, own_pid), (SYS_TGKILL, own_pid), (SYS_PRLIMIT64, 0)):
        program += [(jeq, 0, 4, number), (load, 0, 0, 16), (jeq, 0, 1, allowed_first_argument),
                    (ret, 0, 0, allow), (ret, 0, 0, deny)]
    return program + [(ret, 0, 0, allow)]


def seccomp(libc, ctypes) -> bool:
    if os.uname().machine != "x86_64":
        return False
    rows = seccomp_program(os.getpid())
    program = ctypes.create_string_buffer(b"".join(struct.pack("<HBBI", *row) for row in rows))
    fprog = struct.pack("<H6xQ", len(rows), ctypes.addressof(program))  # struct sock_fprog
    return libc.prctl(ctypes.c_int(22), ctypes.c_ulong(2), fprog, ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0


def lock_down_kernel(workdir: str) -> list[str]:
    """Applies the kernel barriers this machine has; returns their names. ctypes is gone again afterwards."""
    barriers = []
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        ulong = ctypes.c_ulong
        if libc.prctl(ctypes.c_int(38), ulong(1), ulong(0), ulong(0), ulong(0)) != 0:  # PR_SET_NO_NEW_PRIVS
            return barriers  # refused: neither Landlock nor seccomp can follow
        try:
            if abi := landlock(libc, ctypes, workdir):
                barriers.append(f"landlock-v{abi}")
        except OSError as error:
            print(f"sandbox: Landlock unavailable: {error}", file=sys.stderr)
        if seccomp(libc, ctypes):
            barriers.append("seccomp")
    except (ImportError, OSError, AttributeError) as error:  # no ctypes or no libc here
        print(f"sandbox: no kernel barriers: {error}", file=sys.stderr)
    finally:
        for name in [name for name in sys.modules if name.startswith(("ctypes", "_ctypes"))]:
            del sys.modules[name]
    return barriers


def install_audit_hook(workdir: str, private_dirs: list[str], refusals: list) -> None:
    """Refuses network, processes, signals, ctypes, native code, file changes outside `workdir` and reads of
    the app's files, other processes' /proc entries and devices, at the Python level.

    The hook is one flat function whose free variables are immutable values or C functions, all bound here:
    tool code that rebinds a builtin or a module attribute does not change it, and tool code that reaches its
    frame (say from a __del__ run mid-hook) finds nothing to rebind. It calls no method of a tool's object.
    """
    type_, str_, bytes_, int_, len_ = type, str, bytes, int, len
    permission_error, os_error = PermissionError, OSError
    stat_, is_dir, readlink, note = os.stat, stat.S_ISDIR, os.readlink, refusals.append
    workdir_slash = workdir + "/"
    private = tuple(path.rstrip("/") + "/" for path in private_dirs)
    python_dirs = tuple({os.path.realpath(path) + "/" for path in (sys.base_prefix, sys.base_exec_prefix)})
    refused_events, refused_modules, path_events = REFUSED_EVENTS, REFUSED_MODULES, PATH_EVENTS
    write_flags, proc_links = WRITE_FLAGS, PROC_LINKS
    proc_readable = ("self", "thread-self", str(os.getpid()), *PROC_FILES)
    dev_readable = ("fd", "stdin", "stdout", "stderr", *DEV_FILES)

    def hook(event, args):
        why, targets, access = None, (), "write"  # targets: (path, dir_fd) pairs; access: write, read or load
        for prefixes, reason in refused_events:
            if event.startswith(prefixes):
                why = reason
        if event == "import":
            module, filename = args[0], args[1]
            if type_(module) is not str_ or module.rpartition(".")[2].startswith(refused_modules):
                why = f"importing {module if type_(module) is str_ else 'that'} is blocked (it slips past this hook)"
            elif filename is not None:  # a native module: only the interpreter's own
                targets, access = ((filename, None),), "load"
        elif event == "open":
            access = "write" if type_(args[2]) is int_ and args[2] & write_flags else "read"
            if type_(args[0]) is not int_:  # an int wraps a descriptor that was checked when it was opened
                targets = ((args[0], None),)
        else:
            for name, positions in path_events:
                if name == event:
                    targets = [(args[p], None if d is None else args[d]) for p, d in positions]
        for path, dir_fd in targets:
            if why is not None:
                break
            if type_(path) is int_:
                path = readlink(f"/proc/self/fd/{path}")
            elif type_(path) is bytes_:
                path = path.decode("utf-8", "surrogateescape")
            elif type_(path) is not str_:
                why = "paths must be str, bytes or int"
                break
            if not path.startswith("/"):
                if type_(dir_fd) is int_ and dir_fd >= 0:
                    path = readlink(f"/proc/self/fd/{dir_fd}") + "/" + path
                else:
                    path = workdir_slash + path
            parts = []  # lexical normalisation: the sandbox holds no symlinks (creating them is refused)
            for part in path.split("/"):
                if part == "..":
                    if parts:
                        parts.pop()
                elif part and part != ".":
                    parts.append(part)
            path = "/" + "/".join(parts)
            beneath = path.startswith(workdir_slash)
            if access == "load":
                if not path.startswith(python_dirs):
                    why = f"loading native code from outside the Python installation is blocked ({path})"
            elif access == "write":
                if not beneath and not (event == "open" and path == workdir):  # O_TMPFILE opens the dir itself
                    why = f"writing outside the sandbox directory is blocked ({path})"
            elif path.startswith(private) and not path.startswith(python_dirs):
                why = f"reading the app's files is blocked ({path})"
            elif len_(parts) > 1 and parts[0] == "proc":
                if parts[1] not in proc_readable or [part for part in parts[2:] if part in proc_links]:
                    why = f"reading /proc beyond this process is blocked ({path})"
            elif len_(parts) > 1 and parts[0] == "dev" and parts[1] not in dev_readable:
                why = f"reading devices is blocked ({path})"
            elif not beneath and path != workdir:
                try:  # a directory opened outside could serve as a dir_fd, which the open event does not show
                    if is_dir(stat_(path).st_mode):
                        why = f"opening directories outside the sandbox directory is blocked ({path})"
                except os_error:
                    pass
        if why is not None:
            note(f"{event}: {why}")
            raise permission_error(f"sandbox refused {event}: {why}")

    sys.addaudithook(hook)


def error(reason: str, message: str) -> dict:
    return {"ok": False, "reason": reason, "error": message}


def describe(exception: BaseException) -> str:
    try:
        text = f"{type(exception).__name__}: {exception}"
    except BaseException:  # a tool's exception whose __str__ fails
        text = type(exception).__name__
    return text[:ERROR_CHARS].encode("utf-8", "replace").decode()


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
        cap = limits["output_bytes"]
        data = output[:cap].encode("utf-8", "replace")  # lone surrogates cannot cross the pipe
        truncated = len(output) > cap or len(data) > cap
        if truncated:
            output = data[:cap].decode("utf-8", "ignore") + f"\n[output truncated at {cap} bytes]"
        else:
            output = data.decode()
        return {"ok": True, "output": output, "truncated": truncated}
    except MemoryError:
        return error("memory_limit", f"memory limit of {limits['memory_mb']} MB exceeded")
    except PermissionError as exception:
        return error("blocked", describe(exception))
    except BaseException as exception:  # SystemExit and KeyboardInterrupt included: the tool's, not ours
        return error("exception", describe(exception))
    finally:
        namespace.clear()


def send(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()  # ASCII escapes: one line per message, whatever the text
    while data:
        data = data[os.write(fd, data):]


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    protocol = os.dup(1)  # results go here; fd 0 and 1 become /dev/null, so a tool's print() garbles nothing
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    limits, calls, implementations = request["limits"], request["calls"], request["implementations"]
    workdir = os.getcwd()
    set_limits(limits, len(calls))
    barriers = ["rlimits", *lock_down_kernel(workdir)]
    refusals = []
    if request["audit_hook"]:
        install_audit_hook(workdir, request["private_dirs"], refusals)
        barriers.append("audit-hook")
    send(protocol, {"barriers": barriers})
    builtins_dict = vars(builtins)
    pristine_builtins = dict(builtins_dict)
    for index, call in enumerate(calls):
        refusals.clear()
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_PROF, limits["cpu_seconds"])  # CPU of this call; SIGPROF ends the process
        result = run_call(implementations, call, limits)
        signal.setitimer(signal.ITIMER_PROF, 0)
        if refusals:  # a refusal fails the call even when the tool caught the exception
            result = error("blocked", f"sandbox refused {refusals[0]}")
        send(protocol, {**result, "index": index, "seconds": time.monotonic() - started})
        builtins_dict.clear()  # a tool that rebinds a builtin does not change the next call's
        builtins_dict.update(pristine_builtins)
    os._exit(0)  # no atexit handlers, no waiting on threads a tool may have left


if __name__ == "__main__":
    main()
