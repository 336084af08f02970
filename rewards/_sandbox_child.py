"""Sandbox child: runs each call in a fresh process that locks itself down before any tool code (see sandbox.py).

Started by rewards/sandbox.py as `python -I -S -B _sandbox_child.py` with an empty environment, in a
fresh temp dir that is its working directory, where it can be in its own network and mount namespaces.
Standard library only, so it starts in milliseconds and never sees the app's code or settings. Protocol: one
JSON request on stdin; on stdout one JSON line naming the barriers in force, then one JSON line per call.

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
import stat
import struct
import sys
import time

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
ERROR_CHARS = 2000  # an error message longer than this says nothing more useful
NOBODY = 65534  # uid and gid of tool code when the worker is root ("nobody"/"nogroup" on Debian and Red Hat)
REFUSED_EXIT = 86  # a call's process exits with this when it cannot report a refusal (its pipe was tampered with)
REASONS = frozenset(
    {
        "exception",
        "blocked",
        "unknown_tool",
        "missing_function",
        "bad_arguments",
        "memory_limit",
        "cpu_limit",
        "timeout",
        "output_limit",
        "crashed",
    }
)  # CallOutcome.reason, "" aside
# Standard-library modules this process imports before forking when a tool's code imports them: the calls'
# processes read no bytecode caches (see `lock_down`), so each would otherwise compile them from source.
# Only modules whose import has no side effect: importing runs here, outside the sandbox.
PRELOADABLE = frozenset(
    {
        "__future__",
        "abc",
        "array",
        "base64",
        "binascii",
        "bisect",
        "calendar",
        "cmath",
        "collections",
        "collections.abc",
        "colorsys",
        "contextlib",
        "copy",
        "csv",
        "dataclasses",
        "datetime",
        "decimal",
        "difflib",
        "enum",
        "fnmatch",
        "fractions",
        "functools",
        "hashlib",
        "heapq",
        "hmac",
        "html",
        "inspect",
        "io",
        "ipaddress",
        "itertools",
        "json",
        "keyword",
        "math",
        "numbers",
        "operator",
        "os",
        "os.path",
        "pathlib",
        "pprint",
        "random",
        "re",
        "secrets",
        "shlex",
        "statistics",
        "string",
        "struct",
        "tempfile",
        "textwrap",
        "time",
        "typing",
        "unicodedata",
        "urllib.parse",
        "uuid",
        "zlib",
        "zoneinfo",
    }
)
IMPORT_STATEMENT = r"(?m)^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([\w., \t]+))"  # (from X, import X, Y)

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
READABLE_FILES = (
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    *(f"/proc/{name}" for name in PROC_FILES),
    *(f"/dev/{name}" for name in DEV_FILES),
)

# seccomp (x86-64 numbers, arch/x86/entry/syscalls/syscall_64.tbl): refused with EPERM.
DENIED_SYSCALLS = {
    "socket": 41,
    "clone": 56,
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "execveat": 322,
    "tkill": 200,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "pidfd_open": 434,
    "pidfd_send_signal": 424,
    "pidfd_getfd": 438,
    "setsid": 112,
    "setpgid": 109,
    "unshare": 272,
    "setns": 308,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "mknod": 133,
    "mknodat": 259,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "open_by_handle_at": 304,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "kexec_load": 246,
    "init_module": 175,
    "finit_module": 313,
    "reboot": 169,
    # other processes' scheduling, priority and memory (issue 14: tool code reniced and pinned other processes)
    "setpriority": 141,
    "sched_setparam": 142,
    "sched_setscheduler": 144,
    "sched_setaffinity": 203,
    "sched_setattr": 314,
    "ioprio_set": 251,
    "migrate_pages": 256,
    "move_pages": 279,
    "process_madvise": 440,
    "process_mrelease": 448,
    "kcmp": 312,
    # files in memory, which the noexec temp dir does not cover
    "memfd_create": 319,
    "memfd_secret": 447,
}
SYS_CLONE3, SYS_KILL, SYS_TGKILL, SYS_PRLIMIT64 = 435, 62, 234, 302
AUDIT_ARCH_X86_64 = 0xC000003E

# Audit events refused outright, by prefix, with the reason the tool is told.
REFUSED_EVENTS = (
    (("socket.",), "network access is blocked"),
    (
        ("os.system", "os.fork", "os.exec", "os.spawn", "os.posix_spawn", "subprocess.Popen", "os.startfile"),
        "starting processes is blocked",
    ),
    (("os.kill", "signal.pthread_kill"), "sending signals is blocked"),
    (("ctypes.",), "ctypes (raw memory and C calls) is blocked"),
    (("resource.setrlimit", "resource.prlimit"), "changing resource limits is blocked"),
    (("gc.get_objects", "gc.get_referrers", "gc.get_referents"), "walking the object graph is blocked"),
    (("code.__new__",), "building code objects is blocked (crafted bytecode can corrupt memory)"),
    (("marshal.load",), "unmarshalling code is blocked (crafted bytecode can corrupt memory)"),
    (("os.chdir",), "changing the working directory is blocked"),
    (("os.symlink", "os.link"), "creating links is blocked (they could lead outside the sandbox)"),
)
# Modules that slip past audit hooks: _posixsubprocess forks unaudited, sub-interpreters have no hooks,
# _test* expose raw memory. Names starting with these prefixes are refused too.
REFUSED_MODULES = ("_posixsubprocess", "_ctypes", "_xx", "_test")
# Events that change the filesystem: (event, ((position of a path argument, position of its dir_fd), ...)).
PATH_EVENTS = (
    ("os.mkdir", ((0, 2),)),
    ("os.rmdir", ((0, 1),)),
    ("os.remove", ((0, 1),)),
    ("os.rename", ((0, 2), (1, 3))),
    ("os.truncate", ((0, None),)),
    ("os.chmod", ((0, 2),)),
    ("os.chown", ((0, 3),)),
    ("os.utime", ((0, 3),)),
    ("os.setxattr", ((0, None),)),
    ("os.removexattr", ((0, None),)),
    ("os.chflags", ((0, None),)),
)
PROC_LINKS = ("root", "cwd", "fd", "map_files", "exe")  # /proc/self/<these> lead outside the sandbox


def set_limits(limits: dict) -> None:
    """The limits of one call's process."""
    mb = 1024 * 1024
    cpu_seconds = limits["cpu_seconds"] + 1  # the call's itimer fires first; then SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    for rlimit, value in (
        (resource.RLIMIT_AS, limits["memory_mb"] * mb),
        (resource.RLIMIT_FSIZE, limits["file_mb"] * mb),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),  # no forks or threads (seccomp refuses them too); root would be exempt
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
    program = [
        (load, 0, 0, 4),
        (jeq, 1, 0, AUDIT_ARCH_X86_64),
        (ret, 0, 0, kill),  # other ABIs: kill
        (load, 0, 0, 0),
        (jge, 0, 1, 0x40000000),
        (ret, 0, 0, deny),
    ]  # x32 numbers: refuse
    for number in DENIED_SYSCALLS.values():
        program += [(jeq, 0, 1, number), (ret, 0, 0, deny)]
    program += [(jeq, 0, 1, SYS_CLONE3), (ret, 0, 0, nosys)]  # glibc then falls back to clone, refused above
    for number, allowed_first_argument in ((SYS_KILL, own_pid), (SYS_TGKILL, own_pid), (SYS_PRLIMIT64, 0)):
        program += [
            (jeq, 0, 4, number),
            (load, 0, 0, 16),
            (jeq, 0, 1, allowed_first_argument),
            (ret, 0, 0, allow),
            (ret, 0, 0, deny),
        ]
    return program + [(ret, 0, 0, allow)]


def seccomp(libc, ctypes) -> bool:
    if os.uname().machine != "x86_64":
        return False
    rows = seccomp_program(os.getpid())
    program = ctypes.create_string_buffer(b"".join(struct.pack("<HBBI", *row) for row in rows))
    fprog = struct.pack("<H6xQ", len(rows), ctypes.addressof(program))  # struct sock_fprog
    return libc.prctl(ctypes.c_int(22), ctypes.c_ulong(2), fprog, ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0


def searchable_by_nobody(path: str, rights: int = 0o1) -> bool:
    """Whether NOBODY (no supplementary groups) has `rights` (1 search, 4 read) on every dir down to `path`."""
    parts = [part for part in path.split("/") if part]
    for depth in range(len(parts) + 1):
        info = os.stat("/" + "/".join(parts[:depth]))
        shift = 6 if info.st_uid == NOBODY else 3 if info.st_gid == NOBODY else 0
        wanted = (rights if depth == len(parts) else 0o1) << shift
        if info.st_mode & wanted != wanted:
            return False
    return True


class Plan:
    """What every call's process in this batch gets, settled here once, before the first fork."""

    MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MNT_DETACH = 2, 4, 8, 4096, 16384, 2

    def __init__(self, request: dict, workdir: str):
        self.limits, self.workdir = request["limits"], workdir
        self.private_dirs, self.audit_hook = request["private_dirs"], request["audit_hook"]
        self.libc = self.ctypes = None
        try:
            import ctypes

            self.ctypes, self.libc = ctypes, ctypes.CDLL(None, use_errno=True)
        except (ImportError, OSError) as error:  # no ctypes or no libc here: rlimits and the hook only
            print(f"sandbox: no kernel barriers: {error}", file=sys.stderr)
        libc, long = self.libc, getattr(self.ctypes, "c_long", None)
        # Mount only in a mount namespace of our own (sandbox.py starts us in one where it can).
        self.mounts = libc is not None and os.stat("/proc/self/ns/mnt").st_ino != request["host_mount_namespace"]
        self.landlock_abi = libc.syscall(long(SYS_LANDLOCK_CREATE_RULESET), None, long(0), long(1)) if libc else 0
        self.landlock_abi = max(self.landlock_abi, 0)
        self.seccomp = libc is not None and os.uname().machine == "x86_64"
        try:
            with open("/proc/sys/kernel/cap_last_cap") as file:
                self.last_capability = int(file.read())
        except (OSError, ValueError):
            self.last_capability = 63  # dropping capabilities the kernel does not know fails harmlessly
        self.nobody = os.geteuid() == 0 and libc is not None and self._nobody_mapped() and self._reveal_python()
        self.uid, self.gid = (NOBODY, NOBODY) if self.nobody else (os.getuid(), os.getgid())
        self.tmpfs = self.mounts and self._tmpfs_works()
        if not self.tmpfs and self.nobody:
            os.chown(workdir, NOBODY, NOBODY)
        self.kernel_barriers = [
            "rlimits",
            *(["tmpfs"] if self.tmpfs else []),
            *([f"landlock-v{self.landlock_abi}"] if self.landlock_abi else []),
            *(["user-nobody"] if self.nobody else []),
            *(["no-capabilities"] if libc else []),
            *(["seccomp"] if self.seccomp else []),
        ]
        self.barriers = ["process-per-call", *self.kernel_barriers, *(["audit-hook"] if self.audit_hook else [])]

    def mount(self, source, target: str, fstype, flags: int, options) -> None:
        if self.libc.mount(source, target.encode(), fstype, self.ctypes.c_ulong(flags), options) != 0:
            raise OSError(self.ctypes.get_errno(), f"mount {target}")

    def mount_call_dir(self) -> None:
        """A fresh tmpfs over the temp dir for one call: its size and inode count are the disk quota, and
        noexec refuses executable mappings of anything written there (a copied .so does not load)."""
        limits = self.limits
        options = (
            f"size={limits['disk_mb']}m,nr_inodes={limits['files'] + 1},mode=0700,"
            f"uid={self.uid},gid={self.gid}"
        )  # one inode is the root dir's
        self.mount(b"tmpfs", self.workdir, b"tmpfs", self.MS_NOSUID | self.MS_NODEV | self.MS_NOEXEC, options.encode())

    def unmount_call_dir(self) -> None:
        if self.libc.umount2(self.workdir.encode(), self.ctypes.c_int(self.MNT_DETACH)) != 0:
            raise OSError(self.ctypes.get_errno(), f"umount {self.workdir}")

    def clear_call_dir(self) -> None:
        """Empties the temp dir after a call, so the next call finds nothing of it."""
        if self.tmpfs:
            self.unmount_call_dir()
            return
        import shutil

        with os.scandir(self.workdir) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                except OSError:  # a file the tool made undeletable for us stays; the rest goes
                    pass

    def _tmpfs_works(self) -> bool:
        try:
            self.mount_call_dir()
            self.unmount_call_dir()
            return True
        except OSError as error:
            print(f"sandbox: no tmpfs for the temp dir: {error}", file=sys.stderr)
            return False

    @staticmethod
    def _nobody_mapped() -> bool:
        """Whether NOBODY exists in this user namespace (not under `unshare --map-root-user`)."""
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/self/{name}") as file:
                ranges = [[int(field) for field in line.split()] for line in file if line.strip()]
            if not any(first <= NOBODY < first + count for first, _, count in ranges):
                return False
        return True

    def _reveal_python(self) -> bool:
        """Makes the Python install reachable for NOBODY. One under /root (mode 700) is not: the closest
        unreachable dir above it gets a small tmpfs holding just the path down to the install, bind-mounted
        back, so every path stays the same. Only in our own mount namespace; False if it stays unreachable."""
        for prefix in sorted({os.path.realpath(path) for path in (sys.base_prefix, sys.base_exec_prefix)}):
            parts = [part for part in prefix.split("/") if part]
            above = ["/" + "/".join(parts[:depth]) for depth in range(len(parts))]
            blocked = next((path for path in above if not searchable_by_nobody(path)), None)
            if blocked is None or not self.mounts:
                continue
            keep = os.open(prefix, os.O_PATH | os.O_CLOEXEC)  # the install, before the tmpfs hides it
            try:
                self.mount(
                    b"tmpfs", blocked, b"tmpfs", self.MS_NOSUID | self.MS_NODEV | self.MS_NOEXEC, b"mode=0755,size=64k"
                )
                os.makedirs(prefix, mode=0o755, exist_ok=True)
                self.mount(f"/proc/self/fd/{keep}".encode(), prefix, None, self.MS_BIND | self.MS_REC, None)
            except OSError as error:
                print(f"sandbox: cannot make {prefix} reachable: {error}", file=sys.stderr)
                return False
            finally:
                os.close(keep)
        prefixes = {os.path.realpath(path) for path in (sys.base_prefix, sys.base_exec_prefix)}
        return all(searchable_by_nobody(prefix, rights=0o5) for prefix in prefixes)


def lock_down(plan: Plan) -> list[str]:
    """Locks this call's process down as `plan` says; returns the barriers in force (those of plan.kernel_barriers
    unless a step failed). ctypes is gone again afterwards, and the plan holds no handle on libc."""
    set_limits(plan.limits)
    os.chdir(plan.workdir)  # into this call's tmpfs, mounted over the dir the parent started in
    barriers = ["rlimits", *(["tmpfs"] if plan.tmpfs else [])]
    libc, ctypes = plan.libc, plan.ctypes
    plan.libc = plan.ctypes = None
    try:
        if libc is None:
            return barriers
        ulong = ctypes.c_ulong
        if libc.prctl(ctypes.c_int(38), ulong(1), ulong(0), ulong(0), ulong(0)) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if plan.landlock_abi:  # before the privileges go: it opens every dir it grants, the temp dir included
            barriers.append(f"landlock-v{landlock(libc, ctypes, plan.workdir)}")
        barriers += drop_privileges(plan, libc, ctypes)
        if plan.seccomp:
            if not seccomp(libc, ctypes):
                raise OSError(ctypes.get_errno(), "seccomp")
            barriers.append("seccomp")
        return barriers
    finally:
        for name in [name for name in sys.modules if name.startswith(("ctypes", "_ctypes"))]:
            del sys.modules[name]


def drop_privileges(plan: Plan, libc, ctypes) -> list[str]:
    """Empties the capability bounding set, then as root becomes NOBODY with no groups; all capability sets
    end empty. Without root (and without the right to drop the bounding set) the sets are emptied all the same."""
    ulong = ctypes.c_ulong
    for capability in range(plan.last_capability + 1):
        # PR_CAPBSET_DROP; EPERM without CAP_SETPCAP (a worker that is not root), which changes nothing below
        libc.prctl(ctypes.c_int(24), ulong(capability), ulong(0), ulong(0), ulong(0))
    libc.prctl(ctypes.c_int(47), ulong(4), ulong(0), ulong(0), ulong(0))  # PR_CAP_AMBIENT_CLEAR_ALL
    dropped = []
    if plan.nobody:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)  # all ids non-zero: the kernel clears the permitted and effective sets
        dropped.append("user-nobody")
    header = struct.pack("<Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    if libc.capset(header, bytes(24)) != 0:  # effective, permitted and inheritable, both 32-bit halves: empty
        raise OSError(ctypes.get_errno(), "capset")
    return [*dropped, "no-capabilities"]


def install_audit_hook(workdir: str, private_dirs: list[str], result_fd: int) -> None:
    """Refuses network, processes, signals, ctypes, native code, unmarshalling, file changes outside `workdir`
    and reads of the app's files, other processes' /proc entries and devices, at the Python level.

    Each refusal is written to the result pipe `result_fd` before the tool sees the exception, so a tool that
    catches it cannot hide it: the call fails as blocked. If the pipe is not the one it was (closed, or another
    file dup'ed over its number) or takes the report only in part, the process exits with REFUSED_EXIT instead.

    The hook is one flat function whose free variables are immutable values or C functions, all bound here:
    tool code that rebinds a builtin or a module attribute does not change it, and tool code that reaches its
    frame (say from a __del__ run mid-hook) finds nothing to rebind. It calls no method of a tool's object.
    """
    type_, str_, bytes_, int_, len_ = type, str, bytes, int, len
    permission_error, os_error, base_exception = PermissionError, OSError, BaseException
    stat_, is_dir, readlink = os.stat, stat.S_ISDIR, os.readlink
    fstat, write, exit_, refused_exit = os.fstat, os.write, os._exit, REFUSED_EXIT
    pipe = os.fstat(result_fd)
    pipe_device, pipe_inode = pipe.st_dev, pipe.st_ino
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
            report = f"{event}: {why}"[:1000]  # with the hex below, under PIPE_BUF: one write, never split
            try:
                record = b"\nrefused " + report.encode("utf-8", "replace").hex().encode() + b"\n"
                current = fstat(result_fd)
                if current.st_dev != pipe_device or current.st_ino != pipe_inode:
                    exit_(refused_exit)
                if write(result_fd, record) != len_(record):
                    exit_(refused_exit)
            except base_exception:
                exit_(refused_exit)
            raise permission_error(f"sandbox refused {report}")

    sys.addaudithook(hook)


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
