"""bgr.stack.dotenv: the .env format as honcho, foreman and Compose read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgr.errors import StackError
from bgr.stack import dotenv


def test_plain_quoted_exported_and_commented_lines() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "A=1",
            "export B = two words  ",
            "C='single # kept $HOME'",
            'D="line\\nbreak \\"quoted\\" # kept"  # dropped',
            "E=value # dropped comment",
            "F=",
            "G=a=b",
        ]
    )
    assert dotenv.parse(text, ".env") == {
        "A": "1",
        "B": "two words",
        "C": "single # kept $HOME",
        "D": 'line\nbreak "quoted" # kept',
        "E": "value",
        "F": "",
        "G": "a=b",
    }


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("just words", "expected KEY=VALUE"),
        ("1BAD=x", "expected KEY=VALUE"),
        ("A='open", "' quote is not closed"),
        ('A="open', '" quote is not closed'),
        ("A='x' y", "unexpected 'y'"),
    ],
)
def test_a_bad_line_is_an_error_naming_file_and_line(line: str, why: str) -> None:
    with pytest.raises(StackError) as caught:
        dotenv.parse(f"OK=1\n{line}\n", "/srv/.env")
    assert str(caught.value).startswith("/srv/.env, line 2: ")
    assert why in str(caught.value)


def test_load_reads_utf8_with_a_bom_and_names_a_missing_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes("\ufeffNAME=zoë\n".encode())
    assert dotenv.load(str(env)) == {"NAME": "zoë"}
    with pytest.raises(StackError, match=r"env file .*missing\.env not found"):
        dotenv.load(str(tmp_path / "missing.env"))
    env.write_bytes(b"A=\xff\n")
    with pytest.raises(StackError, match="not valid UTF-8"):
        dotenv.load(str(env))
    with pytest.raises(StackError, match="cannot read env file"):
        dotenv.load(str(tmp_path))
