"""How ``--help`` reads: options under headings, the rarely changed ones behind ``--help-all``, commands by kind,
and one-line pointers for the option names of other projectors.

Everything here is declared once:

- :data:`SECTIONS` maps a click parameter name (the Python name, e.g. ``proj_num_steps`` for ``--steps``) to its
  heading. The shared option families already carry a prefix (``proj_``, ``tune_``, ``ds_``), so one name means one
  thing in every command. A parameter that is not listed goes under the command's own ``Options`` heading, first.
  A short list (:data:`_FLAT_UP_TO` options or fewer) needs no headings and gets none.
- A command that lists a section in ``collapsed`` explains only the section's ``brief`` options in ``--help`` and
  names the others on a line of flags; ``--help-all`` explains them all. Every option is accepted either way.
- :data:`COMMAND_SECTIONS` groups the subcommands in ``wplus --help``; unlisted ones go under ``Commands``.
- :data:`FOREIGN_OPTIONS` answers an unknown option that another projector uses with one line naming ours.

Commands get all of this by being built with ``cls=WplusCommand`` (or :class:`ImageInputCommand`); a
:class:`WplusGroup` gives it to the commands made with its ``.command`` decorator.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

__all__ = [
    "COMMAND_SECTIONS",
    "FOREIGN_OPTIONS",
    "IMAGE_INPUTS",
    "ImageInputCommand",
    "SECTIONS",
    "Section",
    "WplusCommand",
    "WplusGroup",
]

DEFAULT_SECTION = "Options"
_HELP_ALL = "wplus.help_all"  # ctx.meta key: --help-all was asked for
_FLAT_UP_TO = 9  # a command with this many options (help included) or fewer lists them without headings
_COL_MAX = 24  # widest option column before its help moves to the next line (click: 30; 24 measured 5 lines shorter)


@dataclass(frozen=True)
class Section:
    """A heading and the parameter names under it; ``brief`` are those shown when a command collapses it."""

    title: str
    names: tuple[str, ...]
    brief: tuple[str, ...] = ()


_PROJECTION = Section(
    "Projection",
    ("proj_preset", "proj_space", "proj_num_steps", "proj_init", "proj_lr", "proj_seed", "proj_optimizer",
     "proj_w_avg_samples", "proj_patience", "proj_stop_psnr"),
    brief=("proj_preset", "proj_space", "proj_num_steps"),
)  # fmt: skip
_LOSS = Section(
    "Loss",
    ("proj_loss", "proj_perceptual_weight", "proj_mse_weight", "proj_l1_weight", "proj_lpips_weight",
     "proj_dfeat_weight", "proj_layers", "proj_taps", "proj_loss_resize", "proj_vgg_weights", "proj_lpips_weights"),
    brief=("proj_loss", "proj_vgg_weights"),
)  # fmt: skip
_NOISE = Section(
    "Noise maps",
    ("proj_optimize_noise", "proj_noise_init", "proj_noise_reg_weight", "proj_noise_renormalize", "proj_noise_steps",
     "proj_noise_lr"),
)  # fmt: skip
_SCHEDULES = Section(
    "Schedules & optimiser",
    ("proj_lr_rampup", "proj_lr_rampdown", "proj_betas", "proj_eps", "proj_w_noise", "proj_w_noise_ramp",
     "proj_latent_reg_weight", "proj_coarse_resolution", "proj_coarse_fraction", "proj_precision"),
)  # fmt: skip

SECTIONS: tuple[Section, ...] = (
    Section("Input & output", ("outdir", "out", "init_latent", "encoder_path", "batch_size", "as_json", "workdir")),
    Section("Model & device", ("model", "tuning_path", "device", "threads")),
    _PROJECTION,
    _LOSS,
    _NOISE,
    _SCHEDULES,
    Section(
        "Masks & preprocessing",
        ("mask_path", "mask_from_alpha", "align", "face", "min_face_ratio", "crop", "paste_back", "max_pixels"),
    ),
    Section(
        "Tuning",
        (
            "tune",
            "tune_steps",
            "tune_rank",
            "tune_lr",
            "tune_locality",
            "tune_radius",
            "tune_locality_samples",
            "tune_pixel_weight",
            "tune_biases",
            "tune_stop_psnr",
        ),
        brief=("tune",),
    ),  # fmt: skip
    Section(
        "Dataset runs",
        (
            "ds_overwrite",
            "ds_shard",
            "ds_engine",
            "ds_workers",
            "ds_gpus_per_worker",
            "ds_cpus_per_worker",
            "ds_ray_address",
        ),
        brief=("ds_overwrite", "ds_shard", "ds_engine"),
    ),  # fmt: skip
    Section("Output extras", ("save_video", "plot", "save_styles", "scale")),
)
_SECTION_OF = {name: s for s in SECTIONS for name in s.names}  # a test checks that no name is listed twice

# What the commands that take images as well as latents (edit, morph, mix, expression, direction) collapse: their
# projection options matter only for an image input.
IMAGE_INPUTS: tuple[str, ...] = (_PROJECTION.title, _LOSS.title, _NOISE.title, _SCHEDULES.title)

COMMAND_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Embed", ("project", "encode", "tune", "demo", "study")),
    ("Edit", ("edit", "morph", "mix", "expression", "direction", "style", "render")),
    ("Models & weights", ("weights", "generate", "sample", "train", "probe", "encoder")),
    ("Datasets", ("align", "paste", "manifest")),
    ("Tools", ("env", "serve")),
)

# Options of NVIDIA's stylegan2-ada-pytorch projector.py and rosinality's projector.py that are spelled differently
# here: their name -> (whose, what to do). Names that are the same here (--outdir, --seed, --save-video, --lr) need
# no entry; an underscore spelling of one of our options (--lr_rampup) is answered without one.
_NVIDIA, _ROSINALITY = "NVIDIA projector.py", "rosinality projector.py"
FOREIGN_OPTIONS: dict[str, tuple[str, str]] = {
    "--network": (_NVIDIA, "use --model"),
    "--target": (_NVIDIA, "give the image as an argument, without a flag"),
    "--num-steps": (_NVIDIA, "use --steps"),
    "--ckpt": (_ROSINALITY, "use --model"),
    "--step": (_ROSINALITY, "use --steps"),
    "--size": (_ROSINALITY, "leave it out: the resolution is read from the model"),
    "--w_plus": (_ROSINALITY, "leave it out: W+ is the default (--space w+)"),
    "--noise": (_ROSINALITY, "use --w-noise"),
    "--noise_ramp": (_ROSINALITY, "use --w-noise-ramp"),
    "--noise_regularize": (_ROSINALITY, "use --noise-reg"),
    "--mse": (_ROSINALITY, "use --mse-weight"),
}


def _foreign_hint(name: str, known: set[str]) -> str | None:
    """What to write instead of ``name`` here, or None (a pointer to a flag this command lacks is no help)."""
    if name in FOREIGN_OPTIONS:
        whose, todo = FOREIGN_OPTIONS[name]
        flag = todo.split()[1] if todo.startswith("use ") else None
        return f"{name} is {whose}'s name: {todo}" if flag is None or flag in known else None
    dashed = name.replace("_", "-")
    return f"{name}: use {dashed} (hyphens, not underscores)" if dashed != name and dashed in known else None


class WplusCommand(click.Command):
    """A click command whose help has headings (:data:`SECTIONS`), a ``--help-all`` when it collapses sections,
    and one-line pointers for other projectors' option names (:data:`FOREIGN_OPTIONS`).

    Args:
        collapsed: titles of the sections whose options beyond their ``brief`` are listed by name only;
            ``--help-all`` explains them.
        note: a sentence closing the help (what the collapsed options are for).
    """

    def __init__(self, *args: Any, collapsed: Sequence[str] = (), note: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unknown = set(collapsed) - {s.title for s in SECTIONS}
        if unknown:
            raise ValueError(f"collapsed names unknown sections {sorted(unknown)}")
        self.collapsed = tuple(collapsed)
        self.note = note

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        if self.collapsed and not ctx.resilient_parsing:
            params.append(_help_all_option())
        return params

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes ``args``
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption:
            known = {opt for p in self.get_params(ctx) for opt in (*p.opts, *p.secondary_opts)}
            flags = dict.fromkeys(a.split("=", 1)[0] for a in given if a.startswith("--"))
            hints = [hint for name in flags if (hint := _foreign_hint(name, known)) is not None]
            if not hints:
                raise
            raise click.UsageError("; ".join(hints), ctx) from None

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_options(self, ctx, formatter, self.collapsed)
        closing = [self.note] if self.note else []
        if self.collapsed and not ctx.meta.get(_HELP_ALL):
            closing.append("--help-all explains the options listed by name only.")
        for line in closing:
            formatter.write_paragraph()
            formatter.write_text(line)


class ImageInputCommand(WplusCommand):
    """A command whose inputs may be latents or images (edit, morph, mix, expression, direction from-*): the
    projection options, which matter only for images, are listed by name except a few."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("collapsed", IMAGE_INPUTS)
        kwargs.setdefault("note", "Image inputs are projected first, with the projection options.")
        super().__init__(*args, **kwargs)


def _format_options(
    command: click.Command,
    ctx: click.Context,
    formatter: click.HelpFormatter,
    collapsed: Sequence[str],
    *,
    headings: bool = True,
) -> None:
    """The options of ``command`` under their headings (help options last in the first); the options of a
    ``collapsed`` section beyond its ``brief`` by name only, unless ``--help-all`` asked for everything. Without
    ``headings``, or with few options, all are under 'Options'."""
    show_all = bool(ctx.meta.get(_HELP_ALL))
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    headings = headings and (bool(collapsed) or len(options) > _FLAT_UP_TO)
    rows: dict[str, list[tuple[str, str]]] = {}
    by_name: dict[str, list[str]] = {}  # collapsed section -> flags listed by name only
    help_rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record is None:
            continue
        if param is command.get_help_option(ctx) or param.name == "help_all":
            help_rows.append(_short_metavar(record))
            continue
        section = _SECTION_OF.get(param.name or "") if headings else None
        title = section.title if section is not None else DEFAULT_SECTION
        if section is not None and title in collapsed and not show_all and param.name not in section.brief:
            by_name.setdefault(title, []).append(param.opts[0])
            continue
        rows.setdefault(title, []).append(_short_metavar(record))
    order = [DEFAULT_SECTION] + [s.title for s in SECTIONS]
    sections = [(t, rows.get(t, []), by_name.get(t, [])) for t in order if t in rows or t in by_name]
    if sections and sections[0][0] == DEFAULT_SECTION:
        sections[0][1].extend(help_rows)
    elif help_rows:
        sections.append((DEFAULT_SECTION, help_rows, []))
    _write_sections(formatter, sections)


def _help_all_option() -> click.Option:
    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        ctx.meta[_HELP_ALL] = True
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()

    return click.Option(
        ["--help-all"], is_flag=True, is_eager=True, expose_value=False, callback=show, help="Explain every option."
    )


def _short_metavar(record: tuple[str, str]) -> tuple[str, str]:
    """'--steps INTEGER RANGE' -> '--steps INTEGER': the range is printed with the help already."""
    return re.sub(r"\b(INTEGER|FLOAT) RANGE\b", r"\1", record[0]), record[1]


def _write_sections(
    formatter: click.HelpFormatter, sections: Sequence[tuple[str, list[tuple[str, str]], list[str]]]
) -> None:
    """click's definition lists, with one first-column width for all sections (so they line up) and text wrapped at
    spaces only: never inside '$SLURM_ARRAY_TASK_ID' or after the hyphen of 'no-tune-biases'. A long choice list
    wraps at its '|'; a section's ``names`` (flags without their help) follow its rows on wrapped lines."""
    firsts = [len(first) for _, rows, _ in sections for first, _ in rows]
    col = min(max(firsts, default=0), _COL_MAX)
    for title, rows, names in sections:
        with formatter.section(title):
            indent = " " * formatter.current_indent
            hang = " " * (formatter.current_indent + col + 2)
            width = max(formatter.width - len(hang), 20)
            for first, second in rows:
                lines = textwrap.wrap(second, width, break_long_words=False, break_on_hyphens=False)
                if len(first) > col or not lines:
                    for part in _wrap_choices(first, formatter.width - len(indent)):
                        formatter.write(f"{indent}{part}\n")
                else:
                    formatter.write(f"{indent}{first:<{col}}  {lines.pop(0)}\n")
                for line in lines:
                    formatter.write(f"{hang}{line}\n")
            if names:
                lead = "also: " if rows else ""
                text = textwrap.fill(
                    lead + " ".join(names),
                    formatter.width,
                    initial_indent=indent,
                    subsequent_indent=indent + " " * len(lead),
                    break_on_hyphens=False,
                )
                formatter.write(text + "\n")


def _wrap_choices(first: str, width: int) -> list[str]:
    """'--loss [a|b|...]' on lines of at most ``width``, broken after a '|', continued 4 spaces in."""
    if len(first) <= width:
        return [first]
    lines = textwrap.wrap(first.replace("|", "| "), width - 4, break_long_words=False, break_on_hyphens=False)
    return [lines[0].replace("| ", "|")] + ["    " + line.replace("| ", "|") for line in lines[1:]]


class WplusGroup(click.Group):
    """A click group whose subcommands are :class:`WplusCommand` and whose command list has headings
    (:data:`COMMAND_SECTIONS`)."""

    command_class = WplusCommand
    group_class = type  # subgroups are WplusGroup too

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_options(self, ctx, formatter, (), headings=False)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = [(n, c) for n in self.list_commands(ctx) if (c := self.get_command(ctx, n)) and not c.hidden]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        titled: dict[str, list[tuple[str, str]]] = {}
        title_of = {name: title for title, names in COMMAND_SECTIONS for name in names}
        for name, cmd in commands:
            titled.setdefault(title_of.get(name, "Commands"), []).append((name, cmd.get_short_help_str(limit)))
        order = [title for title, _ in COMMAND_SECTIONS] + ["Commands"]
        _write_sections(formatter, [(title, titled[title], []) for title in order if title in titled])
