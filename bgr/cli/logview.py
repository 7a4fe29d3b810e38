"""``bgr NAME... --logs``: headers, labels and what a terminal is shown of a log's bytes.

Logs hold whatever a program wrote, including control sequences that would clear the screen, set
the window title, ring the bell or move the cursor over earlier lines: on a terminal those are
shown escaped (``\\x1b[2J``), except colour (SGR: ``ESC [ ... m``), which is harmless and what
most colourful loggers write. ``--raw``, or output that is not a terminal, passes every byte.
A header or a label always starts a line of its own, even after output without a final newline.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    import re

_CONTROL = r"\x1b\[[0-9;:]*m|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)"
_pattern: list[re.Pattern[str]] = []


def escaped(text: str) -> str:
    """``text`` with every control character but newline, tab, CRLF and colour made visible."""
    if not _pattern:
        import re

        _pattern.append(re.compile(_CONTROL))
    return _pattern[0].sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    found = match.group()
    if found.startswith("\x1b["):
        return found  # colour
    return f"\\x{ord(found):02x}"


class LogWriter:
    """Writes log text to stdout: ``prefix`` labels every line (``[web stderr] ...``; set it once
    the tails under their headers are shown and streams interleave), ``escape`` makes control
    characters visible (see the module docstring)."""

    def __init__(self, *, escape: bool, prefix: bool = False) -> None:
        self.prefix = prefix
        self._escape = escape
        self._at_line_start = True
        self._label: str | None = None

    def header(self, label: str, path: str) -> None:
        self._line_start()
        sys.stdout.write(f"==> {label}: {path} <==\n")
        self._label = label

    def write(self, label: str, text: str) -> None:
        if not text:
            return
        if self._escape:
            text = escaped(text)
        if label != self._label:
            self._line_start()
            self._label = label
        if self.prefix:
            lines = text.splitlines(keepends=True)
            start = 0 if self._at_line_start else 1  # the first piece continues a labelled line
            text = "".join(lines[:start]) + "".join(f"[{label}] {line}" for line in lines[start:])
        sys.stdout.write(text)
        self._at_line_start = text.endswith("\n")

    def finish(self) -> None:
        """End the last line, so that what comes next (a prompt) starts its own."""
        self._line_start()

    def _line_start(self) -> None:
        if not self._at_line_start:
            sys.stdout.write("\n")
            self._at_line_start = True


def terminal() -> bool:
    return sys.stdout.isatty()
