"""Progress bars for the management commands: tqdm on a terminal, plain timestamped lines in a log."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between two progress lines when the output is a log, not a terminal


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into plain lines, at most one per `interval`
    seconds (however often the caller refreshes the bar) and always the last one."""

    def __init__(self, file, interval: float):
        self.file, self.interval = file, interval
        self.last = -float("inf")
        self.closing = False

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        now = time.monotonic()
        if text and (self.closing or now - self.last >= self.interval):
            self.file.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.last = now

    def flush(self) -> None:
        self.file.flush()


class _LogBar(tqdm):
    def close(self):
        if not self.disable:
            self.fp.closing = True
        super().close()


def progress_bar(desc: str, unit: str, file=None, interval: float = LOG_INTERVAL) -> tqdm:
    """A tqdm bar on `file` (stderr by default). When `file` is not a terminal — a log, CI, `nohup` — the bar
    still reports: one line at most every `interval` seconds, and one when it closes."""
    file = file or sys.stderr
    if getattr(file, "isatty", lambda: False)():
        return tqdm(desc=desc, unit=unit, file=file)
    return _LogBar(desc=desc, unit=unit, file=_Lines(file, interval), mininterval=interval, ascii=True, ncols=100)
