"""What both programs (``bgr``, ``bgr-guard``) do around their work: the one error funnel.

:func:`run_program` gives closed standard streams /dev/null, makes a non-UTF-8 stdout print
escapes instead of raising, runs the program, and maps a ``BgrError`` to one stderr line (plus its
details) and its exit code, a reader that went away (``bgr | head``) to 0, and Ctrl-C to 130.
:func:`leave` is how the one-shot ``bgr`` exits.
"""

from __future__ import annotations

import os
import sys

from bgr import jsontext
from bgr.errors import BgrError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn


def run_program(program: str, body: Callable[[list[str]], int], argv: Sequence[str] | None) -> int:
    """Run ``body(argv)`` (default: ``sys.argv[1:]``) and return the exit status to use."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    reopen_closed()
    _tolerant_stdout()
    try:
        code = body(arguments)
        # Flush now, not at interpreter exit, so a reader that left (`bgr --json | head -c 10`)
        # is handled below instead of "Exception ignored ... BrokenPipeError" and exit 120.
        sys.stdout.flush()
        return code
    except BgrError as exc:
        sys.stderr.write(f"{program}: {exc}\n")
        if exc.details:
            sys.stderr.write(exc.details.rstrip("\n") + "\n")
        return exc.exit_code
    except BrokenPipeError:
        # The reader left. Point stdout at /dev/null so the exit flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


def reopen_closed() -> None:
    """Give a closed stdin, stdout or stderr /dev/null (cron, some daemons: ``bgr ... >&-``).

    Python leaves ``sys.stdout``/``sys.stderr`` None then, so printing or logging would raise; and
    the registry, a lock or a log file opened later would get fd 1 or 2, where a stray write would
    corrupt it. Does nothing when all three are open.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            # open() takes the lowest free descriptor: this one, since the lower ones are open now.
            os.open(os.devnull, os.O_RDWR)
    if sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (lives until exit)
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (lives until exit)


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # JSON's own \uXXXX escapes (surrogate pairs beyond the BMP): the JSON output stays valid and
    # lossless, and the table stays readable. Non-ASCII text only ever occurs inside JSON strings.
    text = error.object[error.start : error.end]
    return "".join(jsontext.dumps(char)[1:-1] for char in text), error.end


def _tolerant_stdout() -> None:
    """On a non-UTF-8 stdout (PYTHONIOENCODING=ascii, a latin-1 locale) print escapes, not a traceback."""
    import io

    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if encoding != "utf8" and isinstance(sys.stdout, io.TextIOWrapper):
        import codecs

        codecs.register_error("bgr-json-escape", _json_escape)
        sys.stdout.reconfigure(errors="bgr-json-escape")


def leave(code: int) -> NoReturn:
    """Exit with ``code`` without Python's finalisation, when nothing can depend on it.

    Finalisation frees every module and object one by one, a sixth of a ``bgr --json`` (see
    bench/). A one-shot bgr needs none of it: the registry and every file it opened are closed by
    then, and the processes it started live in sessions of their own. Output is flushed here. It
    still runs when an ``atexit`` handler is registered or another thread is alive, since then
    finalisation is where their work ends.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that left (run_program handles stdout's), a closed stream
            pass
    import atexit

    threading = sys.modules.get("threading")
    if atexit._ncallbacks() == 0 and (threading is None or threading.active_count() == 1):
        os._exit(code)
    sys.exit(code)
