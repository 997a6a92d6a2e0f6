"""The command lines the docs show are ones convscope takes.

Every ``convscope COMMAND ...`` in README.md, SECURITY.md and docs/ (code blocks and inline code)
names a command that exists and only options that command has; one in a code block parses as
a whole, with its placeholders (``RUN``, ``DIR``, ``PORT`` ...) filled in and ``[optional]``
parts taken.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from convscope.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^ *```.*?^ *```", re.S | re.M)
#: what a placeholder stands for where the option wants a number or a choice
NUMBERS = {"N": "10", "PORT": "22222", "FMT": "csv"}


def _commands() -> list[tuple[str, str, bool]]:
    """``(page, command line, whether it is in a code block)`` for every convscope command shown."""
    found = []
    for page in PAGES:
        text = page.read_text()
        name = str(page.relative_to(ROOT))
        for block in FENCE.findall(text):
            for line in block.splitlines()[1:-1]:
                line = re.sub(r"^\$\s+|^xvfb-run -a\s+|.*&&\s+(?=convscope )", "", line.strip())
                if line.startswith("convscope ") and not line.startswith("convscope/"):
                    found.append((name, line, True))
        for code in re.findall(r"`(convscope [a-z][^`]*)`", FENCE.sub("", text)):
            found.append((name, code, False))
    return found


COMMANDS = _commands()


def _words(line: str) -> list[str]:
    """The words of a shown command: no comment, description, ``&`` or ``&& next``; ``a|b`` as ``a``."""
    line = re.sub(r"\s+&$", "", re.split(r"\s+#\s|\s{2,}|\s+&&\s", line)[0])
    words = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
    return [w.split("|")[0] if "|" in w and not w.startswith("http") else w for w in words if w not in ("...", "…")]


def _subparser(words: list[str]) -> tuple[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert words and words[0] in sub.choices, f"no command {words[:1]}; the commands are {', '.join(sub.choices)}"
    parser = sub.choices[words[0]]
    if words[0] == "zoo" and words[1:2] == ["train"]:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    return words[0], parser


def test_the_docs_show_commands() -> None:
    shown = {line.split()[1] for _, line, _ in COMMANDS}
    assert {"demo", "serve", "runs", "open", "export", "paraview", "summary", "zoo", "data"} <= shown


@pytest.mark.parametrize(("page", "line", "block"), COMMANDS, ids=[f"{p}:{line}" for p, line, _ in COMMANDS])
def test_a_command_in_the_docs_exists_with_its_options(page: str, line: str, block: bool) -> None:
    words = _words(line)
    _, parser = _subparser(words)
    options = {s for action in parser._actions for s in action.option_strings}
    unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in options]
    assert not unknown, f"{page}: `{line}` uses {unknown}, which `convscope {words[0]}` does not have"
    if block:  # (a whole command line to paste: it must parse)
        filled = [NUMBERS.get(w, w) for w in words]
        try:
            _parser().parse_args(filled)
        except SystemExit as exc:
            pytest.fail(f"{page}: `{line}` does not parse as `convscope {' '.join(filled)}` (exit {exc.code})")
