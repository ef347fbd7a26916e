"""The page of ``wplus serve`` (Gradio): tabs for Embed, Edit, Morph, Style mixing, Style channels, Expression and
Masks.

Each action is also a named API endpoint (``project``, ``project_masked``, ``edit``, ``paste``, ``morph``, ``mix``,
``style_channels``, ``style_render``, ``style_transfer``, ``expression``; docs/web.md lists their inputs and
outputs) that ``gradio_client`` scripts. The work is :class:`wplus.web.service.WebService`'s; this module wires it
to components and turns every failure into a one-line message in the page (``gradio.Error``), never a traceback,
so the server keeps serving.

When the model has an encoder (shipped, or ``wplus serve --encoder FILE``), an embedding starts from the encoder's
code: its reconstruction and PSNR are the first preview, before any optimisation step, and the steps refine it
(*Start from*: the encoder, the encoder only, or the average latent as before).

Projections share one queue slot per model (``concurrency``, default 1: a CPU runs one well, not two), stream a
preview every few steps, and stop at the next step when cancelled (the Cancel button, a closed page, or
``Job.cancel()`` of ``gradio_client``); so does the first search for style channels of a model (minutes on a CPU).
Gradio is imported inside :func:`build_app` only (the ``web`` extra).
"""

import functools
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import torch

from wplus.errors import WplusError
from wplus.io.images import IMAGE_SUFFIXES, MAX_PIXELS, center_crop_resize, tensor_to_pil
from wplus.loading import LoadedGenerator, ModelLike
from wplus.projection.settings import LOSS_KINDS, PRESETS
from wplus.text import plural
from wplus.web.service import (
    DEFAULT_MAX_UPLOAD_MB,
    MAX_EFFECT_SAMPLES,
    MAX_WEB_STEPS,
    START_ENCODER,
    START_ENCODER_ONLY,
    START_MEAN,
    STYLE_TOP,
    Cancelled,
    EmbedRequest,
    EmbedResult,
    WebService,
    mask_from_editor,
)

log = logging.getLogger(__name__)

__all__ = ["build_app", "launch_app", "DEFAULT_HOST", "DEFAULT_PORT", "INSTALL_HINT", "ENDPOINTS"]

DEFAULT_HOST = "127.0.0.1"  # loopback: reach it from elsewhere through an SSH tunnel (docs/web.md), not a share link
DEFAULT_PORT = 7860  # Gradio's usual port
INSTALL_HINT = "the web UI needs Gradio: pip install 'wplus[web]'"
ENDPOINTS = ("project", "project_masked", "edit", "paste", "morph", "mix", "style_channels", "style_render",
             "style_transfer", "expression")  # fmt: skip
PRESET_DEFAULT = "default"  # the dropdown entry for the library defaults (no preset)
LOSS_OF_PRESET = "preset's"  # the dropdown entry that keeps the preset's loss
LATENT_TYPES = [".npz", ".npy", ".pt", ".pth"]  # what load_code and load_direction read
PREVIEWS = 20  # live previews per projection
MASK_SKIP = "skip the painted areas (occluders)"
MASK_SCRIBBLE = "follow them (scribbles are part of the target)"
_HEARTBEAT_S = 0.5  # a projection's handler yields at least this often, so a cancel gets in between steps
STYLE_BOX = "box (x0,y0,x1,y1)"  # the region dropdowns' entry for the box typed (or clicked) below them
STYLE_RANGE = 20.0  # the channel sliders' range in σ (StyleSpace moves channels by up to ±20 σ)
STYLE_SHOWN = 256  # the Style channels tab enlarges smaller images to about this side (room to click corners)
# The Embed tab's "Start from" choices: (label, the value the API takes).
START_CHOICES = [("encoder, then refine", START_ENCODER), ("encoder only (0 steps)", START_ENCODER_ONLY),
                 ("average latent", START_MEAN)]  # fmt: skip


def _device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _message(e: BaseException) -> str:
    text = (str(e).splitlines() or [""])[0]
    return text or type(e).__name__


def _align_available() -> str | None:
    import importlib.util

    if importlib.util.find_spec("dlib") is None:
        return "needs the align extra: pip install 'wplus[align]'"
    return None


def build_app(
    model: ModelLike | None = None,
    *,
    device: str | torch.device = "auto",
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = MAX_PIXELS,
    concurrency: int = 1,
    workdir: str | Path | None = None,
    notice: Callable[[str], None] | None = None,
    encoder: Any = None,
) -> "Any":
    """Build the page (a ``gradio.Blocks`` with its queue set up); :func:`launch_app` serves it.

    Args:
        model: a generator file or name as ``--model`` takes it (None: the default model, offline the shipped one),
            a :class:`~wplus.loading.ModelFile`, or one already loaded (a ``LoadedGenerator`` is used as it is).
        device: 'auto', 'cpu', 'cuda', 'mps' or a torch device.
        max_upload_mb: uploads larger than this are refused.
        max_pixels: images with more pixels are refused before decoding.
        concurrency: projections run at once (one queue for all projection endpoints); other users wait in line.
        workdir: where projection folders are written (default: a new temporary folder).
        notice: receives one-line notices (the model fallback, the offline loss fallback).
        encoder: the encoder file (or module) embeddings start from; None: the model's shipped one, if any.

    Returns:
        The ``gradio.Blocks``; ``blocks.wplus_service`` is its :class:`WebService`.

    Raises:
        ImportError: Gradio is not installed (:data:`INSTALL_HINT` says what to install).
        WplusError: the encoder is missing, unreadable or trained for another generator.
    """
    # Gradio reports usage to its servers and checks for new versions unless told not to: a local tool sends nothing.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    if concurrency < 1:
        raise ValueError(f"got concurrency {concurrency}, expected at least 1")
    dev = _device(device)
    if not isinstance(model, LoadedGenerator):
        from wplus.loading import load_generator_info

        model = load_generator_info(model, device=dev, notice=notice)
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="wplus-web-"))
    service = WebService(model, device=dev, workdir=work, max_upload_bytes=int(max_upload_mb * 2**20),
                         max_pixels=max_pixels, encoder=encoder)  # fmt: skip
    stops: dict[str, threading.Event] = {}  # session -> the running projection's stop flag (the Cancel button)
    named = service.named_directions()  # one slider each on the Edit tab
    align_problem = _align_available()

    def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Every failure becomes one line in the page; the traceback of an unexpected one goes to the log."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except WplusError as e:
                raise gr.Error(_message(e), print_exception=False) from None
            except Exception as e:
                log.exception("%s failed", fn.__name__)
                raise gr.Error(f"{type(e).__name__}: {_message(e)} (details in the server log)") from None

        return wrapper

    progress_tracker = gr.Progress()  # Gradio swaps in a tracker per call for a parameter with this default

    def run_projection(req: EmbedRequest, session: str, progress: Any) -> Iterator[tuple]:
        """Project in a worker thread; yield (target, preview, status, latent, pngs, zip) as it goes."""
        stop = threading.Event()
        stops[session] = stop
        events: queue.Queue = queue.Queue()
        every = max(1, req.steps // PREVIEWS)
        box: dict[str, Any] = {}
        refine = service.settings_for(req).num_steps > 0  # 'encoder only' writes the encoder's code as it is

        def on_step(st: Any) -> None:
            if st.step % every == 0 or st.step == st.num_steps:
                events.put(("step", st.step, st.num_steps, tensor_to_pil(st.images[0]), float(st.psnr[0])))

        def work() -> None:
            try:
                box["result"] = service.embed(
                    req,
                    on_step=on_step,
                    should_stop=stop.is_set,
                    on_target=lambda t: events.put(("target", t)),
                    on_start=lambda s: events.put(("start", tensor_to_pil(s.image[0]), s.psnr, s.seconds)),
                )
            except BaseException as e:  # handed to the handler, which reports it in one line
                box["error"] = e
            finally:
                events.put(("done",))

        worker = threading.Thread(target=work, name="wplus-projection", daemon=True)
        worker.start()
        skip = tuple(gr.skip() for _ in range(6))
        started = ""  # what the step lines say about the start
        try:
            while True:
                try:
                    event = events.get(timeout=_HEARTBEAT_S)
                except queue.Empty:
                    yield skip
                    continue
                if event[0] == "done":
                    break
                if event[0] == "target":
                    yield (event[1], *skip[1:2], "projecting...", *skip[3:])
                elif event[0] == "start":  # the encoder's reconstruction, before the first step
                    _, image, psnr, seconds = event
                    started = f" (encoder start: {psnr:.2f} dB)"
                    then = "refining…" if refine else "writing the result…"
                    yield (skip[0], image, f"encoder: {psnr:.2f} dB in {seconds * 1000:.0f} ms; {then}", *skip[3:])
                else:
                    _, step, total, image, psnr = event
                    progress((step, total), desc="projecting", unit="steps")
                    status = f"step {step}/{total}: PSNR {psnr:.2f} dB{started}"
                    yield (skip[0], image, status, *skip[3:])
        finally:
            stop.set()  # the page went away or the run was cancelled: the worker stops at its next step
            if stops.get(session) is stop:
                del stops[session]
        if "error" in box:
            e = box["error"]
            if isinstance(e, Cancelled):
                raise gr.Error("projection cancelled", print_exception=False)
            if isinstance(e, WplusError):
                raise gr.Error(_message(e), print_exception=False)
            log.error("projection failed", exc_info=e)
            raise gr.Error(f"{type(e).__name__}: {_message(e)} (details in the server log)")
        result: EmbedResult = box["result"]
        yield (
            result.target,
            result.projection,
            _summary(result),
            str(result.latent),
            [str(p) for p in result.pngs],
            str(result.zip),
        )

    def project_fn(
        image: str | None,
        align: bool,
        preset: str,
        space: str,
        steps: float,
        loss: str,
        tune: bool,
        tune_steps: float,
        start: str,
        request: gr.Request,
        progress: gr.Progress = progress_tracker,
    ) -> Iterator[tuple]:
        try:
            req = EmbedRequest(
                image=service.check_upload(image),
                preset=None if preset in (None, PRESET_DEFAULT) else preset,
                space=space,
                steps=int(steps),
                loss=None if loss in (None, LOSS_OF_PRESET) else loss,
                align=bool(align),
                tune=bool(tune),
                tune_steps=int(tune_steps),
                start=start or None,
            )
            service.settings_for(req)  # a bad setting is reported before the queue slot is spent
        except WplusError as e:
            raise gr.Error(_message(e), print_exception=False) from None
        yield from run_projection(req, _session(request), progress)

    def project_masked_fn(
        editor: dict | None,
        mode: str,
        latent_reg: float,
        steps: float,
        loss: str,
        request: gr.Request,
        progress: gr.Progress = progress_tracker,
    ) -> Iterator[tuple]:
        try:
            background = (editor or {}).get("background")
            if background is None:
                raise WplusError("no photo in the editor; upload one, then paint on it")
            if background.width * background.height > max_pixels:
                raise WplusError(
                    f"the photo has {background.width}x{background.height} pixels, expected at most {max_pixels:,}"
                )
            layers = [layer for layer in editor.get("layers") or [] if layer is not None]
            res = service.resolution
            if mode == MASK_SKIP:
                target = center_crop_resize(background.convert("RGB"), res)
                mask = mask_from_editor(background, layers, res)
            else:
                target = center_crop_resize(editor["composite"].convert("RGB"), res)
                mask = None
            req = EmbedRequest(
                image=Path("drawn.png"),
                steps=int(steps),
                loss=None if loss in (None, LOSS_OF_PRESET) else loss,
                latent_reg=float(latent_reg),
                target=target,
                mask=mask,
                start=START_MEAN,  # the encoder would see the occluder (or the strokes): start from w_avg as before
            )
            service.settings_for(req)
        except WplusError as e:
            raise gr.Error(_message(e), print_exception=False) from None
        yield from run_projection(req, _session(request), progress)

    def cancel_fn(request: gr.Request) -> str:
        stop = stops.get(_session(request))
        if stop is not None:
            stop.set()
        return "cancelled"

    @friendly
    def edit_fn(latent: str | None, *values: Any) -> Any:
        """Inputs: the latent, one strength per named direction (a single idle slider when there are none), then
        the uploaded direction, its strength and its GANSpace component."""
        if latent is None:
            return None  # nothing embedded yet: nothing to show (not an error while the page loads)
        *strengths, direction, strength, component = values
        amounts = {d.name: float(v or 0) for d, v in zip(named, strengths[: len(named)], strict=True)}  # idle: none
        comp = None if component is None or component < 0 else int(component)
        return service.edit(latent, named=amounts, direction_path=direction, strength=float(strength),
                            component=comp)  # fmt: skip

    @friendly
    def paste_fn(latent: str | None, edited: Any) -> Any:
        return service.paste(latent, edited)

    @friendly
    def morph_fn(a: str | None, b: str | None, frames: float) -> tuple[list, str]:
        images, gif = service.morph(a, b, frames=int(frames))
        return images, str(gif)

    @friendly
    def mix_fn(content: str | None, style: str | None, layers: str) -> Any:
        return service.mix(content, style, layers=layers)

    @friendly
    def expression_fn(w1: str | None, w2: str | None, w3: str | None, strength: float) -> Any:
        return service.expression(w1, w2, w3, strength=float(strength))

    def background(
        job: Callable[[Callable[[Any], None], Callable[[], bool]], Any],
        key: str,
        what: str,
        show: Callable[[Any], tuple],
    ) -> Generator[tuple, None, Any]:
        """Run ``job(report, should_stop)`` in a worker thread; yield ``show(event)`` for each reported event and
        ``show(None)`` at every heartbeat; return its result. The Cancel button (``stops[key]``), a closed page or a
        cancelled API job make ``should_stop`` true; a failure becomes one line."""
        stop = threading.Event()
        stops[key] = stop
        events: queue.Queue = queue.Queue()
        done = object()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = job(events.put, stop.is_set)
            except BaseException as e:  # handed to the handler, which reports it in one line
                box["error"] = e
            finally:
                events.put(done)

        threading.Thread(target=work, name="wplus-style", daemon=True).start()
        try:
            while True:
                try:
                    event = events.get(timeout=_HEARTBEAT_S)
                except queue.Empty:
                    event = None
                if event is done:
                    break
                yield show(event)
        finally:
            stop.set()
            if stops.get(key) is stop:
                del stops[key]
        if "error" in box:
            e = box["error"]
            if isinstance(e, Cancelled):
                raise gr.Error(f"{what} cancelled", print_exception=False)
            if isinstance(e, WplusError):
                raise gr.Error(_message(e), print_exception=False)
            log.error("%s failed", what, exc_info=e)
            raise gr.Error(f"{type(e).__name__}: {_message(e)} (details in the server log)")
        return box["result"]

    def style_channels_fn(
        latent: str | None,
        region: str,
        box: str,
        samples: float,
        request: gr.Request,
        progress: gr.Progress = progress_tracker,
    ) -> Iterator[tuple]:
        """Outputs: one update per channel slider, the channel names (joined by commas), the status line."""
        text = box if region == STYLE_BOX else region
        try:
            service.style_latent(latent)
            reg = service.style_region(text)
            n = int(samples)
            if not 1 <= n <= MAX_EFFECT_SAMPLES:
                raise WplusError(f"got {n} sample images, expected 1 to {MAX_EFFECT_SAMPLES}")
        except WplusError as e:
            raise gr.Error(_message(e), print_exception=False) from None
        measured = not service.effects_ready(n)
        skip = tuple(gr.skip() for _ in range(STYLE_TOP + 1))
        t0 = time.perf_counter()

        def show(event: Any) -> tuple:
            if event is None:
                return (*skip, gr.skip())
            done, total = event
            progress((done, total), desc="channel effects", unit="channels")
            took = time.perf_counter() - t0
            return (*skip, f"measuring where each channel changes the image: {done}/{total} channels, {took:.0f} s "
                           "(once per model and sample count, then cached)")  # fmt: skip

        if measured:
            yield (*skip, f"measuring where each channel changes the image on {plural(n, 'sample image')} (once per "
                          "model and sample count: minutes on a CPU, then cached)...")  # fmt: skip

        def job(report: Callable[[Any], None], should_stop: Callable[[], bool]) -> list:
            return service.style_channels(latent, text, samples=n, on_progress=lambda d, t: report((d, t)),
                                          should_stop=should_stop)  # fmt: skip

        found = yield from background(job, f"{_session(request)}:style", "finding channels", show)
        updates = [gr.update(visible=False, value=0) for _ in range(STYLE_TOP)]
        for i, c in enumerate(found[:STYLE_TOP]):
            updates[i] = gr.update(visible=True, value=0, label=f"{c.name}: {100 * c.share:.0f} % of its change inside")
        how = f"measured in {time.perf_counter() - t0:.0f} s, now cached" if measured else "cached"
        lines = [f"**{reg.label}** ({100 * reg.area:.1f} % of the image): the {plural(len(found), 'channel')} whose "
                 f"change stays most inside it (effects over {plural(n, 'sample image')}, {how}). "
                 "Each slider moves its channel by value × σ."]  # fmt: skip
        lines.append("; ".join(f"`{c.name}` = {c.layer}:{c.channel}" for c in found))
        yield (*updates, ",".join(c.name for c in found), "  \n".join(lines))

    def style_cancel_fn(request: gr.Request) -> str:
        stop = stops.get(f"{_session(request)}:style")
        if stop is not None:
            stop.set()
        return "cancelled"

    @friendly
    def style_render_fn(latent: str | None, channels: str | None, *values: float) -> Any:
        if latent is None:
            return None  # nothing embedded yet: nothing to show
        return _enlarged(service.style_render(latent, channels or "", [float(v or 0) for v in values]))

    def style_corner_fn(pending: list[int] | None, evt: gr.SelectData) -> tuple:
        """A click on the image: the first corner of a box, then the opposite one (the box, both ends included,
        then fills both box fields and becomes the region channels are found for)."""
        r, f = service.resolution, _enlargement(service.resolution)
        x, y = (min(max(int(v) // f, 0), r - 1) for v in evt.index[:2])
        if not pending:
            return [x, y], gr.skip(), gr.skip(), gr.skip(), f"first corner {x},{y}: click the opposite corner"
        x0, y0 = pending
        box = f"{min(x0, x)},{min(y0, y)},{max(x0, x) + 1},{max(y0, y) + 1}"
        return None, box, box, STYLE_BOX, f"box {box}: press Find channels"

    def style_transfer_fn(
        latent: str | None,
        reference: str | None,
        part: str,
        box: str,
        strength: float,
        steps: float,
        request: gr.Request,
    ) -> Iterator[tuple]:
        """Outputs: the result image and a status line."""
        text = box if part == STYLE_BOX else part
        try:
            service.style_latent(latent)
            service.check_upload(reference, "reference (a latent, or a photo to embed)")
            if text not in service.style_parts():
                service.style_region(text)
        except WplusError as e:
            raise gr.Error(_message(e), print_exception=False) from None
        notes = []
        if not service.catalogue_ready():
            notes.append("building the model's part catalogue first (once per model: about a minute at 64 px on a "
                         "CPU, then cached)")  # fmt: skip
        if text not in service.style_parts():
            notes.append("a box measures each channel's share inside it over the catalogue's samples")
        t0 = time.perf_counter()

        def show(_event: Any) -> tuple:
            return gr.skip(), "; ".join([f"working: {time.perf_counter() - t0:.0f} s", *notes])

        def job(_report: Callable[[Any], None], should_stop: Callable[[], bool]) -> Any:
            return service.style_transfer(latent, reference, text, strength=float(strength),
                                          reference_steps=int(steps), should_stop=should_stop)  # fmt: skip

        result = yield from background(job, f"{_session(request)}:transfer", "transfer", show)
        taken = plural(result.selection.count, "channel")
        yield (
            _enlarged(result.image),
            f"**{result.label}**: {taken} moved {float(strength):g} of the way to the reference's",
        )

    presets = [PRESET_DEFAULT, *sorted(PRESETS)]
    losses = [LOSS_OF_PRESET, *LOSS_KINDS]
    last_layer = service.num_ws - 1
    title = f"wplus: embed and edit photos with {model.model_id} ({service.resolution} px, {dev})"
    with gr.Blocks(title="wplus", analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}\nEmbed a photo, then edit, morph, mix styles or transfer expressions.")
        with gr.Tabs():
            with gr.Tab("Embed", id="embed"), gr.Row():
                with gr.Column():
                    photo = gr.File(label="Photo", file_types=sorted(IMAGE_SUFFIXES), type="filepath")
                    align = gr.Checkbox(
                        label="Align face (FFHQ)",
                        info=align_problem or "the largest face, aligned as FFHQ's training images",
                        interactive=align_problem is None,
                    )
                    preset = gr.Dropdown(presets, value=PRESET_DEFAULT, label="Preset")
                    start = gr.Radio(
                        START_CHOICES,
                        value=START_ENCODER if service.encoder is not None else START_MEAN,
                        label="Start from",
                        info=f"{service.encoder_name}: its reconstruction at once, then the steps refine it; "
                        "encoder only: the encoder preset, no steps",
                        visible=service.encoder is not None,  # no encoder: the average latent, as always
                        elem_id="start-from",
                    )
                    space = gr.Radio(["w+", "w", "z"], value="w+", label="Latent space")
                    steps = gr.Slider(1, MAX_WEB_STEPS, value=200, step=1, label="Steps", elem_id="steps")
                    loss = gr.Dropdown(losses, value=LOSS_OF_PRESET, label="Loss")
                    with gr.Accordion("Pivotal tuning (PTI)", open=False):
                        tune = gr.Checkbox(label="Tune the generator around the code afterwards")
                        tune_steps = gr.Slider(1, 1000, value=100, step=1, label="Tuning steps")
                    with gr.Row():
                        embed_btn = gr.Button("Embed", variant="primary", elem_id="embed-button")
                        cancel_btn = gr.Button("Cancel", variant="stop")
                with gr.Column():
                    with gr.Row():
                        target_img = gr.Image(label="Target", type="pil", format="png", interactive=False)
                        result_img = gr.Image(
                            label="Reconstruction",
                            type="pil",
                            format="png",
                            interactive=False,
                            elem_id="reconstruction",
                        )
                    status = gr.Markdown(elem_id="embed-status")
                    latent_out = gr.File(label="latent.npz", interactive=False)
                    pngs_out = gr.File(label="PNGs", file_count="multiple", interactive=False)
                    zip_out = gr.File(label="Whole folder (zip)", interactive=False)
            with gr.Tab("Edit", id="edit"), gr.Row():
                with gr.Column():
                    edit_latent = gr.File(label="Latent (filled by Embed)", file_types=LATENT_TYPES)
                    sliders = _named_sliders(gr, named, model.model_id)
                    direction = gr.File(label="Direction file (.npz, .npy, .pt; as wplus edit)",
                                        file_types=LATENT_TYPES)  # fmt: skip
                    strength = gr.Slider(-10, 10, value=0, step=0.1, label="Strength of the uploaded direction")
                    component = gr.Number(value=-1, precision=0, label="GANSpace component (-1: not GANSpace)")
                with gr.Column():
                    edit_img = gr.Image(label="Edited", type="pil", format="png", interactive=False, elem_id="edited")
                    pasted_img = gr.Image(
                        label="In the photo (faces embedded with 'Align face')", type="pil", format="png",
                        interactive=False, elem_id="pasted",
                    )  # fmt: skip
            with gr.Tab("Morph", id="morph"), gr.Row():
                with gr.Column():
                    morph_a = gr.File(label="First latent", file_types=LATENT_TYPES)
                    morph_b = gr.File(label="Second latent", file_types=LATENT_TYPES)
                    frames = gr.Slider(2, 120, value=16, step=1, label="Frames")
                    morph_btn = gr.Button("Morph", variant="primary")
                with gr.Column():
                    morph_gallery = gr.Gallery(label="Frames", columns=8)
                    morph_gif = gr.File(label="GIF", interactive=False)
            with gr.Tab("Style mixing", id="mix"), gr.Row():
                with gr.Column():
                    mix_content = gr.File(label="Content latent", file_types=LATENT_TYPES, elem_id="mix-content")
                    mix_style = gr.File(label="Style latent", file_types=LATENT_TYPES, elem_id="mix-style")
                    layer_range = _layer_range(gr, service.num_ws, min(8, last_layer), last_layer)
                    mix_btn = gr.Button("Mix", variant="primary", elem_id="mix-button")
                mix_img = gr.Image(label="Mixed", type="pil", format="png", interactive=False, elem_id="mixed")
            with gr.Tab("Style channels", id="style"):
                res = service.resolution
                regions = [*service.style_regions(), STYLE_BOX]
                parts = [*service.style_parts(), STYLE_BOX]
                box_info = f"pixels of the {res}x{res} image, x1 and y1 excluded; or click two corners on the image"
                with gr.Row():
                    with gr.Column():
                        style_latent = gr.File(label="Latent (filled by Embed)", file_types=LATENT_TYPES,
                                               elem_id="style-latent")  # fmt: skip
                        style_region = gr.Dropdown(regions, value=regions[0], label="Region",
                                                   elem_id="style-region")  # fmt: skip
                        style_box = gr.Textbox(label="Box x0,y0,x1,y1", info=box_info, elem_id="style-box")
                        with gr.Accordion("Sample images", open=False):
                            style_samples = gr.Slider(
                                1, MAX_EFFECT_SAMPLES, value=8, step=1, label="Sample images for the channel effects",
                                info="the first search of a model moves every channel on this many generator samples: "
                                "minutes on a CPU (about 4 min for 8 at 64 px on 2 cores), then cached; fewer is "
                                "faster and noisier",
                            )  # fmt: skip
                        with gr.Row():
                            style_find = gr.Button("Find channels", variant="primary", elem_id="style-find")
                            style_cancel = gr.Button("Cancel", variant="stop")
                        style_status = gr.Markdown(elem_id="style-status")
                        style_names = gr.Textbox(visible=False, elem_id="style-names")
                        style_sliders = [
                            gr.Slider(-STYLE_RANGE, STYLE_RANGE, value=0, step=0.5, label=f"channel {i + 1}",
                                      visible=False, elem_id=f"style-slider-{i}")
                            for i in range(STYLE_TOP)
                        ]  # fmt: skip
                    with gr.Column():
                        style_img = gr.Image(label="Channels moved (click two corners for a box)", type="pil",
                                             format="png", interactive=False, elem_id="style-image")  # fmt: skip
                corner = gr.State(None)
                gr.Markdown("#### Transfer a part\nThe channels that act in a part (Editing in Style) move from a "
                            "reference face to the latent above; every other channel stays the latent's.")  # fmt: skip
                with gr.Row():
                    with gr.Column():
                        style_reference = gr.File(label="Reference: a latent, or a photo (embedded first)",
                                                  file_types=LATENT_TYPES + sorted(IMAGE_SUFFIXES),
                                                  elem_id="style-reference")  # fmt: skip
                        style_part = gr.Dropdown(parts, value=parts[0], label="Part", elem_id="style-part")
                        style_part_box = gr.Textbox(label="Box x0,y0,x1,y1", elem_id="style-part-box",
                                                    info=f"{box_info.split(';')[0]}; clicks on the image above fill "
                                                    "it too")  # fmt: skip
                        style_strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                        style_ref_steps = gr.Slider(1, MAX_WEB_STEPS, value=100, step=1,
                                                    label="Steps, when the reference is a photo")  # fmt: skip
                        style_transfer = gr.Button("Transfer", variant="primary", elem_id="style-transfer")
                    with gr.Column():
                        transfer_img = gr.Image(label="Result", type="pil", format="png", interactive=False,
                                                elem_id="style-transferred")  # fmt: skip
                        transfer_status = gr.Markdown(elem_id="style-transfer-status")
            with gr.Tab("Expression", id="expression"), gr.Row():
                with gr.Column():
                    w1 = gr.File(label="w1: the face to change", file_types=LATENT_TYPES)
                    w2 = gr.File(label="w2: neutral", file_types=LATENT_TYPES)
                    w3 = gr.File(label="w3: expressive", file_types=LATENT_TYPES)
                    lam = gr.Slider(-3, 3, value=1, step=0.05, label="λ in w1 + λ (w3 − w2)")
                    expr_btn = gr.Button("Transfer", variant="primary")
                expr_img = gr.Image(label="Result", type="pil", format="png", interactive=False)
            with gr.Tab("Masks / scribbles", id="masks"), gr.Row():
                with gr.Column():
                    editor = gr.ImageEditor(label="Photo: paint on it", type="pil", sources=["upload"])
                    mode = gr.Radio([MASK_SKIP, MASK_SCRIBBLE], value=MASK_SKIP, label="Painted strokes")
                    latent_reg = gr.Slider(0, 10, value=1, step=0.1, label="Latent regularisation ||w - w_avg||²")
                    mask_steps = gr.Slider(1, MAX_WEB_STEPS, value=200, step=1, label="Steps", elem_id="steps")
                    mask_loss = gr.Dropdown(losses, value=LOSS_OF_PRESET, label="Loss")
                    with gr.Row():
                        mask_btn = gr.Button("Embed with mask", variant="primary")
                        mask_cancel = gr.Button("Cancel", variant="stop")
                with gr.Column():
                    with gr.Row():
                        mask_target = gr.Image(label="Target", type="pil", format="png", interactive=False)
                        mask_result = gr.Image(label="Reconstruction", type="pil", format="png", interactive=False)
                    mask_status = gr.Markdown()
                    mask_latent = gr.File(label="latent.npz", interactive=False)
                    mask_pngs = gr.File(label="PNGs", file_count="multiple", interactive=False)
                    mask_zip = gr.File(label="Whole folder (zip)", interactive=False)

        slot = {"concurrency_limit": concurrency, "concurrency_id": "projection"}
        embed_ev = embed_btn.click(
            project_fn,
            [photo, align, preset, space, steps, loss, tune, tune_steps, start],
            [target_img, result_img, status, latent_out, pngs_out, zip_out],
            api_name="project",
            **slot,
        )
        mask_ev = mask_btn.click(
            project_masked_fn,
            [editor, mode, latent_reg, mask_steps, mask_loss],
            [mask_target, mask_result, mask_status, mask_latent, mask_pngs, mask_zip],
            api_name="project_masked",
            **slot,
        )
        private = {"api_visibility": "private", "queue": False}
        cancel_btn.click(cancel_fn, None, status, cancels=[embed_ev], **private)
        mask_cancel.click(cancel_fn, None, mask_status, cancels=[mask_ev], **private)
        # A finished embedding becomes the input of every edit tab (and the Edit tab renders it at once).
        edit_inputs = [edit_latent, mix_content, morph_a, w1, style_latent]
        embed_ev.success(lambda f: (f,) * len(edit_inputs), latent_out, edit_inputs, **private)
        mask_ev.success(lambda f: (f,) * len(edit_inputs), mask_latent, edit_inputs, **private)
        gr.on(
            [edit_latent.change, *(s.change for s in sliders), direction.change, strength.change, component.change],
            edit_fn,
            [edit_latent, *sliders, direction, strength, component],
            edit_img,
            api_name="edit",
            trigger_mode="always_last",
        ).then(paste_fn, [edit_latent, edit_img], pasted_img, api_name="paste")
        morph_btn.click(morph_fn, [morph_a, morph_b, frames], [morph_gallery, morph_gif], api_name="morph")
        mix_btn.click(mix_fn, [mix_content, mix_style, layer_range], mix_img, api_name="mix")
        expr_btn.click(expression_fn, [w1, w2, w3, lam], expr_img, api_name="expression")
        find_ev = style_find.click(
            style_channels_fn,
            [style_latent, style_region, style_box, style_samples],
            [*style_sliders, style_names, style_status],
            api_name="style_channels",
        )
        style_cancel.click(style_cancel_fn, None, style_status, cancels=[find_ev], **private)
        gr.on(
            [style_latent.change, style_names.change, *(s.change for s in style_sliders)],
            style_render_fn,
            [style_latent, style_names, *style_sliders],
            style_img,
            api_name="style_render",
            trigger_mode="always_last",
        )
        style_img.select(style_corner_fn, corner, [corner, style_box, style_part_box, style_region, style_status],
                         **private)  # fmt: skip
        style_transfer.click(
            style_transfer_fn,
            [style_latent, style_reference, style_part, style_part_box, style_strength, style_ref_steps],
            [transfer_img, transfer_status],
            api_name="style_transfer",
        )
    demo.queue(default_concurrency_limit=2)
    demo.wplus_service = service
    return demo


# A two-handled range slider (Gradio has none built in): two range inputs over one track, in a gr.HTML whose value
# is the range as parse_layers reads it ("8-9"). Events are caught on the component's element, which outlives the
# re-render that setting props.value causes.
_RANGE_HTML = """
<div class="wplus-range">
  <div class="wplus-range-label">Style layers from the style code:
    <b class="wplus-range-text">${value.replace('-', ' to ')}</b> (of 0 to ${max})</div>
  <div class="wplus-range-track">
    <input type="range" class="wplus-lo" aria-label="first style layer" min="0" max="${max}" step="1"
           value="${value.split('-')[0]}">
    <input type="range" class="wplus-hi" aria-label="last style layer" min="0" max="${max}" step="1"
           value="${value.split('-')[1]}">
  </div>
</div>
"""
_RANGE_CSS = """
.wplus-range { padding: var(--spacing-md) 0; }
.wplus-range-track { position: relative; height: 28px; }
.wplus-range-track input { position: absolute; left: 0; width: 100%; margin: 6px 0; pointer-events: none;
  background: none; -webkit-appearance: none; appearance: none; }
.wplus-range-track input::-webkit-slider-runnable-track { height: 6px; border-radius: 3px;
  background: var(--neutral-300); }
.wplus-range-track input.wplus-hi::-webkit-slider-runnable-track { background: none; }
.wplus-range-track input::-webkit-slider-thumb { pointer-events: auto; -webkit-appearance: none; width: 18px;
  height: 18px; margin-top: -6px; border-radius: 50%; background: var(--color-accent); cursor: pointer; }
.wplus-range-track input::-moz-range-thumb { pointer-events: auto; width: 18px; height: 18px; border-radius: 50%;
  background: var(--color-accent); cursor: pointer; }
"""
_RANGE_JS = """
const handles = () => [element.querySelector('.wplus-lo'), element.querySelector('.wplus-hi')];
const settle = (moved) => {  // a handle pushed past the other takes it along: first <= last always
  const [lo, hi] = handles();
  if (+lo.value > +hi.value) { if (moved === lo) hi.value = lo.value; else lo.value = hi.value; }
  element.querySelector('.wplus-range-text').textContent = lo.value + ' to ' + hi.value;
  return lo.value + '-' + hi.value;
};
element.addEventListener('input', (e) => settle(e.target));
element.addEventListener('change', (e) => {
  props.value = settle(e.target);
  trigger('change');
});
"""


def _layer_range(gr: Any, num_ws: int, first: int, last: int) -> Any:
    """The Style mixing tab's layer range: value ``"first-last"`` (rows taken from the style code)."""
    return gr.HTML(
        f"{first}-{last}",
        html_template=_RANGE_HTML,
        css_template=_RANGE_CSS,
        js_on_load=_RANGE_JS,
        max=num_ws - 1,
        elem_id="layer-range",
        apply_default_css=True,
    )


def _named_sliders(gr: Any, named: list[Any], model_id: str) -> list[Any]:
    """One slider per named direction of the model (``elem_id`` ``<name>-slider``, over its recommended strengths,
    0 included); a model without any gets one idle slider, so that the ``edit`` endpoint's inputs keep their shape."""
    if not named:
        from wplus.shipped import SHIPPED_MODEL

        return [gr.Slider(-1, 1, value=0, step=0.1, label="Named directions", elem_id="named-none",
                          info=f"{model_id} has none; {SHIPPED_MODEL} has (wplus direction list)",
                          interactive=False)]  # fmt: skip
    sliders = []
    for d in named:
        low, high = min(d.strength[0], 0.0), max(d.strength[1], 0.0)
        step = max(0.01, round((high - low) / 100, 2))
        sliders.append(gr.Slider(low, high, value=0, step=step, label=f"{d.name} ({d.spec})", info=d.description,
                                 elem_id=f"{d.name}-slider"))  # fmt: skip
    return sliders


def _enlargement(resolution: int) -> int:
    """The whole factor the Style channels tab enlarges images of this side by (1 from ``STYLE_SHOWN`` px on)."""
    return max(1, STYLE_SHOWN // max(1, resolution))


def _enlarged(image: Any) -> Any:
    """``image`` enlarged by :func:`_enlargement` with nearest-neighbour (every pixel a square of the same colour)."""
    from PIL import Image

    f = _enlargement(image.width)
    return image if f == 1 else image.resize((image.width * f, image.height * f), Image.Resampling.NEAREST)


def _session(request: Any) -> str:
    return getattr(request, "session_hash", None) or "api"


def _summary(result: EmbedResult) -> str:
    m = result.metrics
    projected = m.get("before_tuning", m)  # a tuned image keeps the projection's own figures in a block
    steps = plural(projected["steps"], "projection step") if "steps" in projected else "? projection steps"
    lines = [f"**PSNR {m['psnr']:.2f} dB**, SSIM {m['ssim']:.3f}, {steps}"]
    if result.start is not None:
        s = result.start
        lines.append(f"started from the encoder's code ({s.source}): PSNR {s.psnr:.2f} dB in {s.seconds * 1000:.0f} ms")
    if "before_tuning" in m:
        after = m["after_tuning"]
        lines.append(f"before pivotal tuning: PSNR {projected['psnr']:.2f} dB; {plural(after['steps'], 'tuning step')}")
    lines += [f"note: {n}" for n in result.notices]
    return "  \n".join(lines)


def launch_app(
    app: Any, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, block: bool = True, quiet: bool = False
) -> Any:
    """Serve ``app`` (from :func:`build_app`) on ``host:port``: no share link, uploads capped at the app's
    ``max_upload_mb``, the work folder readable for downloads. ``block=False`` returns at once (tests)."""
    service: WebService = app.wplus_service
    return app.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=service.max_upload_bytes,
        allowed_paths=[str(service.workdir)],
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=True,
    )
