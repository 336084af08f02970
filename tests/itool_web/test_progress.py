"""Progress in a log: plain lines, throttled, and the last state always written."""

import io

from itool_web.progress import progress_bar


def test_a_bar_in_a_log_writes_throttled_plain_lines():
    log = io.StringIO()
    bar = progress_bar("warm-up", "step", file=log, interval=3600)
    bar.total = 100
    for n in range(1, 101):
        bar.n = n
        bar.refresh()  # the commands refresh on every report; a log must not get a line each time
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in log.getvalue()
    assert lines[0].endswith("warm-up: 0step [00:00, ?step/s]")  # the bar opening
    assert "warm-up" in lines[1] and "100/100" in lines[1]


def test_a_bar_on_a_terminal_is_tqdms_own():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    with progress_bar("search", "tree", file=term) as bar:
        bar.update(3)
    assert "\r" in term.getvalue() and "3tree" in term.getvalue().replace(" ", "")
