"""The processes a test module started, told apart from those the session had started before it."""

import psutil


class Descendants:
    """This process's descendants, less the subtrees of those alive when `snapshot()` ran and of any pid in `skip`.

    Whole subtrees are left out, not just their roots: a browser the browser tests left running starts helper
    processes of its own at any time, and they are not the module's."""

    def __init__(self) -> None:
        self.earlier: set[int] = set()
        self.skip: set[int] = set()

    def snapshot(self) -> None:
        self.earlier.update(p.pid for p in psutil.Process().children(recursive=True))

    def live(self) -> list[psutil.Process]:
        found, stack = [], psutil.Process().children()
        while stack:
            process = stack.pop()
            if process.pid in self.earlier | self.skip:
                continue
            try:
                stack.extend(process.children())
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.NoSuchProcess:
                continue
        return found
