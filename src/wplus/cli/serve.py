"""``wplus serve``: the web page (docs/web.md). The page is ``wplus.web.app``'s; this only reads the options."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import DEVICE_CHOICES, INPUT_FILE, MODEL_HELP, err, one_line_errors, resolve_device
from wplus.cli.help import WplusCommand
from wplus.io.images import MAX_PIXELS
from wplus.web.app import DEFAULT_HOST, DEFAULT_PORT, INSTALL_HINT, build_app, launch_app  # imports without Gradio
from wplus.web.service import DEFAULT_MAX_UPLOAD_MB


@click.command("serve", cls=WplusCommand)
@click.option("--model", type=str, default=None, help=MODEL_HELP)
@click.option("--encoder", "encoder_path", type=INPUT_FILE, default=None,
              help="Embeddings start from this encoder's code [default: the model's].")  # fmt: skip
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind; keep loopback and tunnel.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Projections run at once; later ones wait in the queue (1 suits a CPU; a big GPU takes a few).",
)
@click.option(
    "--max-upload-mb", type=click.FloatRange(0, min_open=True), default=DEFAULT_MAX_UPLOAD_MB, show_default=True
)
@click.option("--max-pixels", type=click.IntRange(1), default=MAX_PIXELS, show_default=True,
              help="Refuse images with more pixels (decompression bombs).")  # fmt: skip
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where projection folders are kept (default: a new temporary folder).")  # fmt: skip
@one_line_errors
def serve_cmd(
    model: str | None,
    encoder_path: Path | None,
    host: str,
    port: int,
    device: str,
    concurrency: int,
    max_upload_mb: float,
    max_pixels: int,
    workdir: Path | None,
) -> None:
    """Serve the web UI: embed, edit, morph, mix, expression transfer, masks (Gradio; the web extra).

    Every action is also an API endpoint for gradio_client (docs/web.md). The server binds to 127.0.0.1; on a GPU
    machine run it there and open it through an SSH tunnel: ssh -L 7860:127.0.0.1:7860 HOST.

    \b
    Examples:
      wplus serve
      wplus serve --model ffhq.safetensors --device cuda --concurrency 2
      wplus serve --model my.safetensors --encoder runs/enc/encoder.safetensors
    """
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise click.ClickException(INSTALL_HINT) from None
    app = build_app(model, device=resolve_device(device), max_upload_mb=max_upload_mb, max_pixels=max_pixels,
                    concurrency=concurrency, workdir=workdir, notice=err, encoder=encoder_path)  # fmt: skip
    err(f"serving on http://{host}:{port} (Ctrl+C stops)")
    launch_app(app, host=host, port=port, quiet=True)
