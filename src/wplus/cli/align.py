"""``wplus align`` (FFHQ alignment of the faces in photos) and ``wplus paste`` (put a face back)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from wplus.align.ffhq import DEFAULT_FACE, DEFAULT_MIN_FACE_RATIO, FACE_CHOICES
from wplus.cli.common import INPUT_FILE, FiniteFloatRange, echo_json, err, explicit_options, one_line_errors
from wplus.cli.help import WplusCommand
from wplus.datasets.inputs import expand_inputs, face_name
from wplus.errors import ConfigError, WplusError
from wplus.io.images import MAX_PIXELS, save_image
from wplus.text import plural

F = TypeVar("F", bound=Callable[..., Any])


def face_options(fn: F) -> F:
    """``--face`` and ``--min-face-ratio`` (``align``, ``project --align``); the defaults are the library's."""
    fn = click.option(
        "--min-face-ratio",
        type=FiniteFloatRange(0, 1),
        default=DEFAULT_MIN_FACE_RATIO,
        show_default=True,
        help="With --face all: skip faces smaller than this share of the largest (size: the side of the FFHQ crop), "
        "such as a badge or a print on a shirt; 0 keeps every face.",
    )(fn)
    return click.option(
        "--face",
        type=click.Choice(FACE_CHOICES),
        default=DEFAULT_FACE,
        show_default=True,
        help="Faces to align per photo: the largest, or all (but those under --min-face-ratio).",
    )(fn)


def check_face_options(ctx: click.Context, face: str, *, needs: str | None = None) -> None:
    """Refuse face options that would do nothing: ``--min-face-ratio`` without ``--face all``, and either of them
    without ``needs`` (the flag that turns alignment on: ``--align`` on ``project``)."""
    given = explicit_options(ctx)
    if needs is not None:
        for name in sorted({"face", "min_face_ratio"} & given):
            raise click.UsageError(f"--{name.replace('_', '-')} needs {needs} (it chooses the faces to align)")
    if "min_face_ratio" in given and face != "all":
        raise click.UsageError("--min-face-ratio applies to --face all (with --face largest one face is aligned)")


@click.command("align", cls=WplusCommand)
@click.argument("images", nargs=-1, required=True)
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--size", type=click.IntRange(1), default=None, help="Output side [default: --model's, else 1024].")
@click.option(
    "--model",
    type=str,
    default=None,
    help="Generator whose resolution sets --size: a file, a registered name, a URL or cartoon-faces-64 (shipped).",
)
@click.option("--transform-size", type=click.IntRange(1), default=4096, help="Side of the intermediate QUAD warp.")
@click.option("--no-padding", is_flag=True, help="Fill outside the photo with black, not blurred reflection.")
@click.option("--no-rotate", is_flag=True, help="Keep the crop axis-aligned (do not level the eyes).")
@face_options
@click.option("--detect-max-side", type=click.IntRange(0), default=1024, help="Downscale for detection (0: never).")
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=MAX_PIXELS,
    help="Refuse photos with more pixels than this (read from the file header, before decoding).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.pass_context
@one_line_errors
def align_cmd(
    ctx: click.Context,
    images: tuple[str, ...],
    outdir: Path,
    size: int | None,
    model: str | None,
    transform_size: int,
    no_padding: bool,
    no_rotate: bool,
    face: str,
    min_face_ratio: float,
    detect_max_side: int,
    max_pixels: int,
    as_json: bool,
) -> None:
    """Align the faces in IMAGES the way FFHQ was made (dlib 68 landmarks, oriented quad, padded, Lanczos).

    For photo.jpg, OUTDIR gets photo_01.png (the largest face) and beside it photo_01.json with the quad and source
    size, which `wplus paste` uses to put an edited face back. With --face all, also photo_02.png, ... (largest
    first), leaving out faces smaller than --min-face-ratio of the largest (badges, prints on clothes).
    docs/alignment.md has the details.

    IMAGES are files, folders (every image below them, searched recursively as `wplus project` does, the layout
    kept in OUTDIR: photos/a/x.jpg -> OUTDIR/a/x_01.png), globs ('photos/**/*.jpg') or @list.txt (one a line).
    Names starting with '.' or '_' are skipped. A missing file or a folder without images stops the run before it
    starts; a photo without a face, one that cannot be read or is larger than --max-pixels is reported and the
    batch goes on.

    \b
    Examples:
      wplus align photo.jpg --outdir aligned/
      wplus align group.jpg --outdir aligned/ --face all
      wplus align photos/ --outdir aligned/ --model ffhq.safetensors
    """
    from wplus.align import LandmarkDetector, align_faces

    check_face_options(ctx, face)
    try:
        inputs = expand_inputs(images)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="IMAGES") from None
    if size is None:
        size = 1024
        if model is not None:
            from wplus.loading import load_generator

            size = load_generator(model).img_resolution
    detector = LandmarkDetector(detect_max_side=detect_max_side)
    results: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for item in inputs:
        path = item.path
        parent, stem = os.path.split(item.name)
        try:
            faces = align_faces(
                path,
                detector=detector,
                face=face,  # type: ignore[arg-type]
                min_face_ratio=min_face_ratio,
                output_size=size,
                transform_size=max(transform_size, size),
                enable_padding=not no_padding,
                rotate=not no_rotate,
                max_pixels=max_pixels,
                notice=err,
            )
            for f in faces:
                name = os.path.join(parent, face_name(stem, f.transform.face_index))
                image_path = save_image(f.image, outdir / f"{name}.png")
                json_path = f.transform.save(outdir / f"{name}.json")
                results.append({"image": str(path), "aligned": str(image_path), "transform": str(json_path)})
            if not as_json:
                err(f"{path}: {plural(len(faces), 'face')} -> {outdir / parent if parent else outdir}")
        except (WplusError, OSError) as e:
            failed.append({"image": str(path), "error": str(e)})
            err(f"skipped: {e}")
    if as_json:
        echo_json({"results": results, "failed": failed})
    if failed:
        raise click.ClickException(
            f"{len(inputs) - len(failed)} of {plural(len(inputs), 'input')} aligned; {len(failed)} failed "
            f"(first: {failed[0]['error']})"
        )


@click.command("paste", cls=WplusCommand)
@click.argument("original", type=INPUT_FILE)
@click.argument("edited", type=INPUT_FILE)
@click.option(
    "--transform",
    "transform_path",
    required=True,
    type=INPUT_FILE,
    help="The .json `wplus align` wrote beside the aligned image.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output image file.")
@click.option("--feather", type=FiniteFloatRange(0, 0.5), default=0.1, help="Soft edge, fraction of the face side.")
@one_line_errors
def paste_cmd(original: Path, edited: Path, transform_path: Path, out: Path, feather: float) -> None:
    """Warp EDITED (an aligned face, its projection or an edit, any square size) back into ORIGINAL.

    \b
    Example:
      wplus align photo.jpg --outdir aligned/
      wplus paste photo.jpg out/photo_01/projection.png \\
          --transform aligned/photo_01.json --out photo_edited.png
    """
    from wplus.align import paste_back

    save_image(paste_back(original, edited, transform_path, feather=feather), out)
    err(f"wrote {out}")
