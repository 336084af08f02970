"""The sandbox child's tables: what a call's process may read, which syscalls and audit events it is refused,
the result reasons, the modules worth importing before the forks (see _sandbox_child.py).

Plain data, standard library only: the child runs this file first, in the namespace of the files after it.
"""

import os

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
