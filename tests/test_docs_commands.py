"""Every ``wplus ...`` command line in README.md, docs/*.md and --help examples names a real subcommand and options.

The lines are parsed with click's own parser on the live command tree (``wplus.cli.main.cli``), so a renamed
option, a removed subcommand, an option without its value or a stray argument fails here, while values are not
converted and files not checked (the docs use placeholders such as ``photo.jpg`` and ``N``). Fenced lines must also
give every required argument and option unless they say ``...``; inline spans are fragments, so only their names
and option arity are checked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from wplus.cli.main import cli

ROOT = Path(__file__).parents[1]
PLACEHOLDERS = {"...", "…"}
SHELL_STOP = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")


@dataclass(frozen=True)
class CommandLine:
    """One command line found in a document: where it is, the text, and whether it came from a fenced block."""

    where: str
    text: str
    fenced: bool


def _command_start(text: str) -> str | None:
    """The text from ``wplus`` on, after an optional ``$`` prompt, ``VAR=x`` prefixes and ``python -m``; else None."""
    words = text.strip().split()
    if words[:1] == ["$"]:
        words = words[1:]
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if len(words) >= 3 and re.fullmatch(r"python[0-9.]*", words[0]) and words[1:3] == ["-m", "wplus"]:
        words = words[2:]
    if len(words) < 2 or words[0] != "wplus":
        return None  # not a command line (a bare `wplus` names the program)
    return " ".join(words)


def extract(markdown: str, name: str) -> list[CommandLine]:
    """The ``wplus`` command lines of a markdown text: fenced lines (with ``\\`` continuations) and inline spans."""
    found: list[CommandLine] = []
    prose: list[str] = []  # the text outside fences, line for line (fenced lines blanked), for the inline spans
    lines = markdown.splitlines()
    in_fence, i = False, 0
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            in_fence = not in_fence
            prose.append("")
            i += 1
            continue
        if not in_fence:
            prose.append(line)
            i += 1
            continue
        start, joined = i, line
        while joined.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            joined = joined.rstrip()[:-1] + " " + lines[i]
            prose.append("")
        prose.append("")
        i += 1
        command = _command_start(joined)
        if command is not None:
            found.append(CommandLine(f"{name}:{start + 1}", command, fenced=True))
    text = "\n".join(prose)
    for m in INLINE.finditer(text):
        command = _command_start(m.group(1).replace("\n", " "))
        if command is not None:
            found.append(CommandLine(f"{name}:{text.count(chr(10), 0, m.start()) + 1}", command, fenced=False))
    return found


def _words(command: str) -> list[str]:
    """Shell words of a command, without the comment and without what follows a pipe, a redirection or ``&&``."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word in SHELL_STOP:
            break
        words.append(word)
    return words


def _param_given(param: click.Parameter, opts: dict, unset: dict, env: set[str]) -> bool:
    """Whether the line gives ``param``: a parsed value other than the one of an empty command line, or its envvar."""
    if param.name in opts and opts[param.name] != unset.get(param.name, object()):
        return True
    envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    return any(v in env for v in envvars)


def check(line: CommandLine) -> str | None:
    """None if the line parses on the live command tree, else what is wrong with it."""
    words = _words(line.text)
    env = {w.split("=", 1)[0] for w in line.text.split() if ENV_ASSIGNMENT.match(w)}
    loose = any(w in PLACEHOLDERS for w in words)  # "wplus edit ... --direction x": the elided part may be anything
    words = [w for w in words if w not in PLACEHOLDERS]
    cmd: click.Command = cli
    # The commands' own context settings (help option names): click caches a command's help option on first use,
    # so a bare Context here would leave `wplus project --help` listing "--help" without "-h" for later tests.
    ctx = click.Context(cli, info_name="wplus", **cli.context_settings)
    args = words[1:]
    path = ["wplus"]
    while True:
        try:
            opts, rest, _ = cmd.make_parser(ctx).parse_args(list(args))
        except click.UsageError as e:
            if not line.fenced and isinstance(e, click.BadOptionUsage) and args and e.option_name == args[-1]:
                return None  # prose names an option without its value: "what `wplus mix --layers` reads"
            return f"{' '.join(path)}: {e.format_message()}"
        if opts.get("help") or opts.get("version"):
            return None  # --help / --version end the command line
        if not isinstance(cmd, click.Group):
            break
        if not rest:
            return None  # "wplus weights": the group on its own (prose names a command this way)
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            known = ", ".join(cmd.list_commands(ctx))
            return f"{' '.join(path)}: no subcommand {rest[0]!r} (known: {known})"
        path.append(rest[0])
        ctx = click.Context(sub, info_name=rest[0], parent=ctx, **sub.context_settings)
        cmd, args = sub, rest[1:]
    if rest and not loose and not ctx.allow_extra_args:
        return f"{' '.join(path)}: unexpected extra argument(s) {rest}"
    if line.fenced and not loose:
        unset = cmd.make_parser(ctx).parse_args([])[0]  # what click's parser reports for a parameter not given
        missing = [p for p in cmd.params if p.required and not _param_given(p, opts, unset, env)]
        if missing:
            names = ", ".join(p.name.upper() if isinstance(p, click.Argument) else p.opts[0] for p in missing)
            return f"{' '.join(path)}: missing {names}"
    return None


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_documented_command_line_parses():
    lines = [c for doc in documents() for c in extract(doc.read_text(encoding="utf-8"), doc.relative_to(ROOT).name)]
    assert len(lines) > 50  # the README alone has dozens: an extractor that finds nothing must not pass
    bad = [f"{c.where}: {c.text}\n    -> {problem}" for c in lines if (problem := check(c)) is not None]
    assert not bad, "command lines in the docs that wplus would refuse:\n" + "\n".join(bad)


def _commands(cmd: click.Command, path: str):
    """Every command of the live tree with its path: the group, its subcommands, their subcommands."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(click.Context(cmd)):
            yield from _commands(cmd.get_command(click.Context(cmd), name), f"{path} {name}")


def test_every_help_example_parses():
    # The `Examples:` of each --help are command lines too; they change with the options they show.
    lines = [
        CommandLine(f"{path} --help:{i + 1}", command, fenced=True)
        for path, cmd in _commands(cli, "wplus")
        for i, text in enumerate(re.sub(r"\\\n\s*", " ", cmd.help or "").splitlines())  # join `\` continuations
        if (command := _command_start(text)) is not None
    ]
    assert len(lines) > 20
    bad = [f"{c.where}: {c.text}\n    -> {problem}" for c in lines if (problem := check(c)) is not None]
    assert not bad, "examples in --help that wplus would refuse:\n" + "\n".join(bad)


SAMPLE = """\
Run `wplus project --crop center|none` or `wplus weights`; not `wplus.project(...)` nor `wplus[web]`.

```bash
$ wplus project photo.jpg --model m.safetensors --outdir out/   # a comment --bogus
WPLUS_OFFLINE=1 wplus weights download \\
    stylegan2-ffhq-1024
python -m wplus -v edit ... --direction smile.npz
wplus manifest out/ --json | jq .done
echo wplus is not at the start
```
A span across lines: `wplus generate
--seeds 0-3`.
"""


def test_extraction_finds_fenced_continued_and_inline_lines():
    got = [(c.where, c.text, c.fenced) for c in extract(SAMPLE, "x.md")]
    assert got == [
        ("x.md:4", "wplus project photo.jpg --model m.safetensors --outdir out/ # a comment --bogus", True),
        ("x.md:5", "wplus weights download stylegan2-ffhq-1024", True),
        ("x.md:7", "wplus -v edit ... --direction smile.npz", True),
        ("x.md:8", "wplus manifest out/ --json | jq .done", True),
        ("x.md:1", "wplus project --crop center|none", False),
        ("x.md:1", "wplus weights", False),
        ("x.md:11", "wplus generate --seeds 0-3", False),
    ]
    assert all(check(c) is None for c in extract(SAMPLE, "x.md"))


@pytest.mark.parametrize(
    ("text", "fenced", "problem"),
    [
        ("wplus projet photo.jpg", True, "no subcommand 'projet'"),
        ("wplus weights downlaod x", True, "no subcommand 'downlaod'"),
        ("wplus project photo.jpg --model m --outdir o --no-such-option", True, "No such option '--no-such-option'"),
        ("wplus project photo.jpg --model m --outdir o --steps", True, "'--steps' requires an argument"),
        ("wplus --threads", True, "'--threads' requires an argument"),
        ("wplus project --no-such", False, "No such option '--no-such'"),
        ("wplus env extra", False, "unexpected extra argument"),
        ("wplus weights download", True, "missing NAMES"),
    ],
)
def test_bad_command_lines_are_reported(text, fenced, problem):
    found = check(CommandLine("x.md:1", text, fenced))
    assert found is not None and problem in found, found
