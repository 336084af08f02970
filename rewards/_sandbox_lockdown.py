"""Kernel barriers of a call's process in the sandbox child: rlimits, the call's tmpfs, Landlock, seccomp,
nobody without capabilities, and the Plan that settles them once per batch (see _sandbox_child.py)."""

import errno
import os
import resource
import struct
import sys

if __name__ != "__main__":  # the worker imports this module; in the child, sandbox.py has run the files before it
    from ._sandbox_tables import (
        AUDIT_ARCH_X86_64,
        DENIED_SYSCALLS,
        FS_MAKE_DIR,
        FS_MAKE_REG,
        FS_READ_DIR,
        FS_READ_FILE,
        FS_REFER,
        FS_REMOVE_DIR,
        FS_REMOVE_FILE,
        FS_RIGHTS_BY_ABI,
        FS_TRUNCATE,
        FS_WRITE_FILE,
        NOBODY,
        READABLE_DIRS,
        READABLE_FILES,
        SYS_CLONE3,
        SYS_KILL,
        SYS_LANDLOCK_ADD_RULE,
        SYS_LANDLOCK_CREATE_RULESET,
        SYS_LANDLOCK_RESTRICT_SELF,
        SYS_PRLIMIT64,
        SYS_TGKILL,
    )


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
