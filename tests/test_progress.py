"""wplus.progress: a tqdm bar on a terminal, whole lines at an interval in a log."""

from __future__ import annotations

import io

from tqdm import tqdm

from wplus.progress import LogProgress, is_terminal, progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_appear_at_the_interval_and_on_close():
    log, clock = io.StringIO(), FakeClock()
    bar = progress(10, desc="project", unit="step", file=log, interval=5.0, clock=clock)
    assert isinstance(bar, LogProgress)
    for _ in range(10):
        clock.now += 2.0  # one step every 2 s: a line every third step (6 s, 12 s, 18 s)
        bar.update()
        bar.set_postfix({"psnr": "20.5"}, refresh=False)
    assert log.getvalue().count("\n") == 3
    bar.close()
    bar.close()  # closing twice writes the last line once
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and all("\r" not in line for line in lines)
    assert lines[0] == "project: 3/10 step (30%), 00:06 elapsed, 00:14 left, 0.5 step/s, psnr=20.5"
    assert lines[1].startswith("project: 6/10 step (60%), 00:12 elapsed")
    assert lines[-1].startswith("project: 10/10 step (100%), 00:20 elapsed, 0.5 step/s")


def test_log_without_total_and_silent_streams():
    log, clock = io.StringIO(), FakeClock()
    with progress(None, desc="train", unit="img", file=log, clock=clock) as bar:
        clock.now += 4.0
        bar.update(16)
    assert log.getvalue() == "train: 16 img, 00:04 elapsed, 4 img/s\n"
    log = io.StringIO()
    with progress(2, desc="d", file=log, interval=1.0, clock=clock) as bar:
        clock.now += 1.0
        bar.update(2)  # the interval has passed: this line already shows the end, close adds none
    assert log.getvalue().count("2/2") == 1
    quiet = io.StringIO()
    with progress(5, file=quiet, disable=True) as bar:
        bar.update(5)
    assert quiet.getvalue() == "" and bar.n == 5


def test_a_terminal_gets_tqdm_and_a_closed_stream_is_no_terminal():
    term = Terminal()
    bar = progress(3, desc="x", file=term)
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert "3/3" in term.getvalue()
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(None)
    bar = progress(2, file=closed)
    bar.update(2)
    bar.close()  # writing to a closed stream is not an error
