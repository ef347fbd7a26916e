"""`--help` that can be read: headings, --help-all, the command list by kind, widths, and other projectors' names."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from wplus.cli.help import COMMAND_SECTIONS, SECTIONS, WplusCommand, WplusGroup
from wplus.cli.main import cli

WIDTH = 80  # CliRunner's terminal width (click.testing forces it)


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, cmd in group.commands.items():
        found.append(((*path, name), cmd))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, (*path, name))
    return found


COMMANDS = _commands()
IDS = [" ".join(path) for path, _ in COMMANDS]


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), prog_name="wplus")
    assert result.exit_code == 0, result.output
    return result.output


def _error(*args: str) -> list[str]:
    result = CliRunner().invoke(cli, list(args), prog_name="wplus")
    assert result.exit_code == 2, result.output
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_command_gets_the_help_layout(path, cmd):
    # a new command built with plain click.command would miss the headings and the pointers: build it with
    # cls=WplusCommand (or ImageInputCommand), or add it with @weights_group.command / @direction_group.command
    assert isinstance(cmd, WplusGroup if isinstance(cmd, click.Group) else WplusCommand), path


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_option_is_in_some_help_and_no_line_is_wider_than_the_terminal(path, cmd):
    text = _help(*path, "--help")
    if getattr(cmd, "collapsed", ()):
        text += _help(*path, "--help-all")
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert any(f"{param.opts[0]}{end}" in text for end in " ,\n"), f"{param.opts[0]} of {path}"  # ',': aliases
    wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not wide, wide


def test_project_help_has_headings_and_is_short():
    text = _help("project", "--help")
    for title in ("Input & output", "Model & device", "Projection", "Loss", "Noise maps", "Schedules & optimiser",
                  "Masks & preprocessing", "Tuning", "Dataset runs", "Output extras"):  # fmt: skip
        assert f"\n{title}:\n" in text, title
    # measured: 188 lines in one 'Options' list before the headings; 154 with them, the expert options by name only
    assert len(text.splitlines()) <= 165  # 154 measured, 161 with --face and --min-face-ratio (was 188)
    assert text.index("\nOptions:\n  -h, --help") > text.index("\nOutput extras:\n")  # help options close the page
    assert "--noise-reg " in text and "autocorrelation" not in text  # named here, explained by --help-all
    everything = _help("project", "--help-all")
    assert "autocorrelation" in everything and "listed by name only" not in everything


def test_image_input_commands_show_a_handful_of_projection_options():
    for path in (["edit"], ["morph"], ["mix"], ["expression"], ["direction", "from-images"]):
        text = _help(*path, "--help")
        assert "--steps INTEGER" in text and "--preset [" in text and "--vgg-weights FILE" in text
        assert "Optimiser steps" in text and "Adam betas" not in text, path
        assert "Image inputs are projected first" in text and "--help-all explains" in text
        assert "Adam betas" in _help(*path, "--help-all")


def test_options_of_a_collapsed_section_are_still_accepted(tmp_path):
    for name in ("x.npz", "d.npy"):
        (tmp_path / name).write_bytes(b"")  # the files exist: inputs are checked when parsed
    args = ["edit", tmp_path / "x.npz", "--direction", tmp_path / "d.npy", "--outdir", tmp_path, "--betas", "oops"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2 and "'--betas'" in result.output  # parsed (and checked), not unknown


def test_command_list_has_headings():
    text = _help("--help")
    for title, names in COMMAND_SECTIONS:
        if any(n in cli.commands for n in names):
            assert f"\n{title}:\n" in text, title
    assert "\nCommands:\n" not in text  # every command has its heading


def test_shard_help_keeps_the_slurm_variables_whole():
    text = _help("project", "--help-all")
    assert "$SLURM_ARRAY_TASK_ID" in text and "$SLURM_ARRAY_TASK_COUNT" in text


def test_examples_keep_their_line_breaks():
    text = _help("edit", "--help")
    assert "--strength -3,0,3 \\\n" in text  # a shell continuation, not words joined by a docstring backslash


def test_no_parameter_has_two_headings():
    names = [name for s in SECTIONS for name in s.names]
    assert len(names) == len(set(names))
    for s in SECTIONS:
        assert set(s.brief) <= set(s.names), s.title


@pytest.mark.parametrize(
    ("flag", "pointer"),
    [
        ("--network", "use --model"),
        ("--target", "give the image as an argument"),
        ("--num-steps", "use --steps"),
        ("--ckpt", "use --model"),
        ("--w_plus", "--space w+"),
        ("--size", "read from the model"),
        ("--lr_rampup", "use --lr-rampup"),
    ],
)
def test_other_projectors_names_get_one_line_pointing_to_ours(flag, pointer):
    lines = _error("project", "face.png", "--outdir", "out", flag, "1")
    assert len(lines) == 1 and flag in lines[0] and pointer in lines[0], lines


def test_nvidia_command_line_gets_every_pointer_in_one_line():
    args = ["project", "--network", "x.pkl", "--target", "a.png", "--num-steps", "500", "--outdir", "out"]
    (line,) = _error(*args)
    for flag in ("--network", "--target", "--num-steps"):
        assert flag in line
    assert "--outdir" not in line  # NVIDIA's --outdir is ours


def test_typos_keep_clicks_suggestion():
    (line,) = _error("project", "face.png", "--outdir", "out", "--stepz", "3")
    assert "Did you mean" in line and "--steps" in line


def test_a_pointer_to_an_option_the_command_lacks_is_not_given():
    (line,) = _error("env", "--num-steps", "3")
    assert "No such option" in line
