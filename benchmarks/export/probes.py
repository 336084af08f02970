"""What the export benchmark reports alongside its figures: peak RSS growth of processes while a block runs,
and the machine's load (load average, CPU stolen by the hypervisor)."""

from __future__ import annotations

import gc
import os
import threading

import psutil

MB = 1 << 20


class PeakRSS:
    """Peak resident memory growth of a process (or the sum over several: a server's) while the block runs, sampled
    every 10 ms in a thread (psutil)."""

    def __init__(self, pids: list[int] | None = None):
        self.processes = [psutil.Process(pid) for pid in pids] if pids else [psutil.Process()]

    def rss(self) -> int:
        return sum(process.memory_info().rss for process in self.processes)

    def __enter__(self):
        gc.collect()
        self.start = self.peak = self.rss()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.01):
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / MB


_cpu_times: list[int] = []


def _load() -> str:
    """The load average, and since the last call the CPU time the hypervisor gave elsewhere (steal, which the
    load average does not show: on a shared VM it moves figures from one run to the next)."""
    one, five, _ = os.getloadavg()
    text = f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs"
    try:
        with open("/proc/stat") as stat:
            times = [int(t) for t in stat.readline().split()[1:]]
    except OSError:
        return text
    if _cpu_times:
        delta = [now - before for now, before in zip(times, _cpu_times)]
        busy = sum(delta) - delta[3] - delta[4]  # not idle, not iowait
        total = max(1, sum(delta))
        text += f"; since the last report CPU busy {busy / total:.0%}, stolen {delta[7] / total:.0%}"
    _cpu_times[:] = times
    return text
