"""maa.core.progress: quiet shows no bar, a non-terminal stderr gets one line per stage, a terminal a bar."""

import io

from maa.core import progress
from maa.core.progress import NoBar, Reporter, StageLine


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_quiet_writes_nothing():
    out = io.StringIO()
    with progress.bar(10, "mel", quiet=True, stream=out) as b:
        b.update(10)
    assert isinstance(b, NoBar) and out.getvalue() == ""


def test_off_a_terminal_one_line_per_stage():
    out = io.StringIO()
    with progress.bar(3, "mel", stream=out) as b:
        for _ in range(3):
            b.update(1)
        b.set_postfix({"loss": 1.0})
    b.close()  # closing twice writes once
    lines = out.getvalue().splitlines()
    assert isinstance(b, StageLine) and len(lines) == 1 and lines[0].startswith("mel: 3/3 clips in ")
    out = io.StringIO()
    with progress.bar(100, "train vae", unit="step", initial=40, stream=out) as b:
        b.update(2)
    assert out.getvalue().startswith("train vae: 42/100 steps in ")


def test_a_terminal_gets_a_tqdm_bar():
    out = Tty()
    with progress.bar(2, "eval", stream=out) as b:
        b.update(2)
    assert type(b).__name__ == "tqdm" and "eval" in out.getvalue() and "2/2" in out.getvalue()


def test_reporter_quiet_and_disable():
    said = []
    ui = Reporter(info=said.append, warn=lambda m: said.append("w:" + m), quiet=True)
    assert isinstance(ui.bar(5, "x"), NoBar)
    assert isinstance(Reporter().bar(5, "x", disable=True), NoBar)  # e.g. not the main process
    ui.info("a")
    ui.warn("b")
    assert said == ["a", "w:b"]
