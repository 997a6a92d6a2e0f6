"""Help texts agree with each other and with the parser: every command's examples parse, each
option that means the same thing is spelt the same way, and defaults are shown."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys

import pytest

from convscope.cli import _parser


def _commands(parser: argparse.ArgumentParser | None = None, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub-)command with its parser: ``("export",)``, ``("zoo", "train")`` ..."""
    parser = parser or _parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [((*prefix, name), sub), *_commands(sub, (*prefix, name))]
    return found


COMMANDS = _commands()
IDS = [" ".join(name) for name, _ in COMMANDS]


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=IDS)
def test_every_command_shows_examples_that_parse(name: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    # (`convscope zoo train --help` had no example, and no help for its arguments)
    examples = [line.strip() for line in (parser.epilog or "").splitlines() if line.strip().startswith(f"convscope {name[0]}")]
    assert examples, f"`convscope {' '.join(name)} --help` shows no example"
    for line in examples:
        words = shlex.split(re.sub(r"\s+&$", "", re.split(r"\s+#\s|\s{2,}|\s+&&\s", line)[0]))[1:]
        try:
            _parser().parse_args(words)
        except SystemExit:
            pytest.fail(f"the example `{line}` of `convscope {' '.join(name)} --help` does not parse")


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=IDS)
def test_options_are_named_alike_and_say_their_defaults(name: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    # (--logdir showed LOGDIR in some commands and DIR in others; zoo train's --epochs showed no default)
    metavars = {"--logdir": "DIR", "--port": "PORT", "--steps": {"N", "A:B"}, "--every": "N", "--epochs": "N", "--out": {"DIR", "FILE"}}
    for action in parser._actions:
        option = next((s for s in action.option_strings if s.startswith("--")), None)
        if option is None or action.help == argparse.SUPPRESS:
            continue
        assert action.help, f"`convscope {' '.join(name)} {option}` has no help"
        if option in metavars:
            shown = action.metavar or action.dest.upper()
            assert shown in metavars[option], f"`convscope {' '.join(name)} {option}` shows {shown}, not {metavars[option]}"
        if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
            assert "default" in action.help, f"`convscope {' '.join(name)} {option}` does not say its default ({action.default!r})"
    for action in parser._actions:  # positional arguments say what they are too
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"`convscope {' '.join(name)}`'s {action.dest} has no help"


def test_python_dash_m_convscope_is_the_command() -> None:
    # (where the scripts folder is not on PATH: a notebook's kernel, a job script)
    done = subprocess.run([sys.executable, "-m", "convscope", "data"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mnist-5k" in done.stdout
    done = subprocess.run([sys.executable, "-m", "convscope", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: convscope ")
