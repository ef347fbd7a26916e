"""``wplus align`` (FFHQ alignment of every face in a photo) and ``wplus paste`` (put a face back)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from wplus.cli.common import FiniteFloatRange, echo_json, err, one_line_errors
from wplus.cli.help import WplusCommand
from wplus.cli.naming import face_name, unique_dirs
from wplus.errors import WplusError
from wplus.io.images import IMAGE_SUFFIXES, MAX_PIXELS, save_image


@dataclass
class Inputs:
    """What the IMAGES arguments name: image files, folders without images (errors), and what was skipped."""

    files: list[Path] = field(default_factory=list)
    empty_folders: list[tuple[Path, str]] = field(default_factory=list)  # (folder, one-line reason)
    notes: list[str] = field(default_factory=list)  # one line per folder that had entries other than images


def expand_inputs(paths: tuple[Path, ...] | list[Path]) -> Inputs:
    """Files as given; a folder becomes its image files (sorted, not recursive).

    Names starting with '.' or '_', files of other types and sub-folders are skipped, and each folder that had some
    gets a note saying how many; a folder with no image at all is reported, never dropped silently.
    """
    out = Inputs()
    for p in paths:
        if not p.is_dir():
            out.files.append(p)
            continue
        entries = sorted(p.iterdir())
        images = [f for f in entries if _is_image(f)]
        skipped = [f.name + ("/" if f.is_dir() else "") for f in entries if not _is_image(f)]
        out.files.extend(images)
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        if not images:
            holds = f"it holds {len(skipped)} other entries ({shown})" if skipped else "it is empty"
            out.empty_folders.append(
                (p, f"{p}: no image files in this folder ({holds}); expected {', '.join(sorted(IMAGE_SUFFIXES))}")
            )
        elif skipped:
            out.notes.append(f"{p}: {len(images)} images; skipped {len(skipped)} other entries ({shown})")
    return out


def _is_image(f: Path) -> bool:
    return f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith((".", "_"))


@click.command("align", cls=WplusCommand)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
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
@click.option("--face", type=click.Choice(["all", "largest"]), default="all", help="Faces to align per photo.")
@click.option("--detect-max-side", type=click.IntRange(0), default=1024, help="Downscale for detection (0: never).")
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=MAX_PIXELS,
    help="Refuse photos with more pixels than this (read from the file header, before decoding).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@one_line_errors
def align_cmd(
    images: tuple[Path, ...],
    outdir: Path,
    size: int | None,
    model: str | None,
    transform_size: int,
    no_padding: bool,
    no_rotate: bool,
    face: str,
    detect_max_side: int,
    max_pixels: int,
    as_json: bool,
) -> None:
    """Align every face in IMAGES the way FFHQ was made (dlib 68 landmarks, oriented quad, padded, Lanczos).

    For photo.jpg, OUTDIR gets photo_01.png, photo_02.png, ... (largest face first) and beside each a
    photo_01.json with the quad and source size, which `wplus paste` uses to put an edited face back.
    A folder argument means its image files (not recursive; names starting with '.' or '_' and other files are
    skipped, and counted). A photo without a face, one that cannot be read or is larger than --max-pixels, and a
    folder without images are reported and the batch goes on.

    \b
    Examples:
      wplus align photo.jpg --outdir aligned/
      wplus align photos/ --outdir aligned/ --face largest --model G.safetensors
    """
    from wplus.align import LandmarkDetector, align_faces

    if size is None:
        size = 1024
        if model is not None:
            from wplus.loading import load_generator

            size = load_generator(model).img_resolution
    inputs = expand_inputs(images)
    for note in inputs.notes:
        err(note)
    files = inputs.files
    if not files:
        raise click.UsageError("; ".join(reason for _, reason in inputs.empty_folders))
    detector = LandmarkDetector(detect_max_side=detect_max_side)
    results: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for folder, reason in inputs.empty_folders:
        failed.append({"image": str(folder), "error": reason})
        err(f"skipped: {reason}")
    for path, stem_dir in zip(files, unique_dirs(files, outdir), strict=True):
        try:
            faces = align_faces(
                path,
                detector=detector,
                face=face,  # type: ignore[arg-type]
                output_size=size,
                transform_size=max(transform_size, size),
                enable_padding=not no_padding,
                rotate=not no_rotate,
                max_pixels=max_pixels,
            )
            for f in faces:
                name = face_name(stem_dir.name, f.transform.face_index)
                image_path = save_image(f.image, outdir / f"{name}.png")
                json_path = f.transform.save(outdir / f"{name}.json")
                results.append({"image": str(path), "aligned": str(image_path), "transform": str(json_path)})
            if not as_json:
                err(f"{path.name}: {len(faces)} face(s) -> {outdir}")
        except (WplusError, OSError) as e:
            failed.append({"image": str(path), "error": str(e)})
            err(f"skipped: {e}")
    if as_json:
        echo_json({"results": results, "failed": failed})
    if failed:
        total = len(files) + len(inputs.empty_folders)
        raise click.ClickException(
            f"{total - len(failed)} of {total} inputs aligned; {len(failed)} failed (first: {failed[0]['error']})"
        )


@click.command("paste", cls=WplusCommand)
@click.argument("original", type=click.Path(path_type=Path))
@click.argument("edited", type=click.Path(path_type=Path))
@click.option(
    "--transform",
    "transform_path",
    required=True,
    type=click.Path(path_type=Path),
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
