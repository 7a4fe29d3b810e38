"""bgr.cli.logview: control characters escaped on a terminal (colour kept), headers on their own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgr.cli import logview
from tests.support import main, on_a_terminal, read, start_cli, wait_for


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text\n", "plain text\n"),
        ("tab\there\r\n", "tab\there\r\n"),
        ("\x1b[31mred\x1b[0m\n", "\x1b[31mred\x1b[0m\n"),  # colour passes
        ("\x1b[2J\x1b[Hwiped", "\\x1b[2J\\x1b[Hwiped"),  # clear screen, cursor home
        ("\x1b]0;owned\x07title", "\\x1b]0;owned\\x07title"),  # OSC window title, BEL
        ("progress 10%\rprogress 99%\n", "progress 10%\\x0dprogress 99%\n"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
    ],
)
def test_escaped(raw: str, shown: str) -> None:
    assert logview.escaped(raw) == shown


def test_headers_and_labels_start_their_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    writer = logview.LogWriter(escape=False)
    writer.header("stdout", "/x/out")
    writer.write("stdout", "no final newline")
    writer.header("stderr", "/x/err")
    writer.write("stderr", "err line\n")
    writer.prefix = True
    writer.write("stdout", "half")
    writer.write("stdout", " done\nnext\n")
    writer.write("stderr", "partial")
    writer.write("stdout", "more\n")
    assert capsys.readouterr().out == (
        "==> stdout: /x/out <==\nno final newline\n==> stderr: /x/err <==\nerr line\n"
        "[stdout] half done\n[stdout] next\n[stderr] partial\n[stdout] more\n"
    )


def test_a_terminal_sees_escapes_and_raw_or_a_pipe_sees_the_bytes(
    capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    start_cli("noisy", r"printf '\033[2Jcleared\033]0;title\007 \033[32mgreen\033[0m'; exec sleep 60")
    wait_for(lambda: "green" in read(bgr_home / "noisy-out.txt"), what="the output")
    shown = on_a_terminal(["noisy", "--logs", "--log-stdout"])
    assert "\\x1b[2Jcleared\\x1b]0;title\\x07 \x1b[32mgreen\x1b[0m\n" in shown
    raw = on_a_terminal(["noisy", "--logs", "--log-stdout", "--raw"])
    assert "\x1b[2Jcleared\x1b]0;title\x07" in raw
    code, out, _ = main(capsys, "noisy", "--logs", "--log-stdout")  # not a terminal: as written
    assert code == 0 and "\x1b[2Jcleared" in out
