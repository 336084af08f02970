"""The audit hook of a call's process in the sandbox child: the Python-level barrier (see _sandbox_child.py)."""

import os
import stat
import sys

if __name__ != "__main__":  # the worker imports this module; in the child, sandbox.py has run the files before it
    from ._sandbox_tables import (
        DEV_FILES,
        PATH_EVENTS,
        PROC_FILES,
        PROC_LINKS,
        REFUSED_EVENTS,
        REFUSED_EXIT,
        REFUSED_MODULES,
        WRITE_FLAGS,
    )


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
