"""Every `latentmed` command in README.md exists, with every option it is shown with.

The README is the user guide; a renamed command or option must fail here, not on a user's machine.
Commands are checked against the typer app itself (no training is run): the command path must
resolve to a leaf command, each `--option` must be one of its parameters, and the number of
positional arguments must fit the command's arguments.
"""

import re
import shlex
from pathlib import Path

import pytest
import typer

from latentmed.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def _bash_lines(text: str) -> list[str]:
    """The lines of ```bash blocks, with backslash continuations joined and comments dropped."""
    lines, block, pending = [], False, ""
    for raw in text.splitlines():
        if raw.startswith("```"):
            block = raw.strip() == "```bash"
            continue
        if not block:
            continue
        line = pending + raw.split(" #")[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _readme_commands() -> list[str]:
    return [line for line in _bash_lines((ROOT / "README.md").read_text()) if line.startswith("latentmed")]


def _resolve(argv: list[str]):
    """(leaf click command, remaining argv) for ``latentmed ARGV``."""
    cmd = typer.main.get_command(app)
    rest = list(argv)
    while getattr(cmd, "commands", None) and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    return cmd, rest


def _check(line: str) -> None:
    words = shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", line))[1:]  # "[--stochastic]" shows an option too
    cmd, rest = _resolve(words)
    assert not getattr(cmd, "commands", None), f"{line!r}: {' '.join(words[:2])} is a group, not a command"
    options = {}
    for p in cmd.params:
        for name in (*p.opts, *p.secondary_opts):
            options[name] = p
    positionals, i = [], 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("--"):
            name = word.split("=")[0]
            assert name in options, f"{line!r}: {name} is not an option of this command"
            takes_value = not getattr(options[name], "is_flag", False) and "=" not in word
            i += 2 if takes_value else 1
        else:
            positionals.append(word)
            i += 1
    arguments = [p for p in cmd.params if p.param_type_name == "argument"]
    variadic = any(a.nargs == -1 for a in arguments)
    assert variadic or len(positionals) <= len(arguments), f"{line!r}: too many arguments {positionals}"
    required = sum(1 for a in arguments if a.required)
    assert len(positionals) >= required, f"{line!r}: {required} arguments needed, got {positionals}"


def test_readme_shows_commands():
    assert len(_readme_commands()) >= 15


@pytest.mark.parametrize("line", _readme_commands())
def test_readme_command_exists_with_its_options(line):
    _check(line)


@pytest.mark.parametrize("line", ["latentmed dae trian --data x --out y", "latentmed dae train --dta x --out y",
                                  "latentmed dae", "latentmed info a b c"])
def test_the_check_can_fail(line):
    with pytest.raises(AssertionError):
        _check(line)
