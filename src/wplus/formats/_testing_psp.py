"""Writers of pSp, e4e and ReStyle checkpoints in their released layout, with random weights (tests, benchmarks).

A file is what the three repositories' ``training/coach.py`` saves: ``{'state_dict': {'encoder.*', 'decoder.*'},
'opts': vars(opts), 'latent_avg': [n_styles, w_dim]}``, the decoder in rosinality's names (with its ``noises``
buffers and blur kernels). Every tensor is drawn from a seeded generator (BatchNorm statistics, PReLU slopes and
biases included), scaled so that the codes stay of order one through the 24 units.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from wplus.formats._testing import rosinality_g_state
from wplus.models.psp_encoders import EncoderArch, build_encoder
from wplus.models.stylegan2 import Generator

__all__ = ["random_encoder_state", "released_opts", "write_psp_checkpoint", "FLAVOURS"]

# flavour -> (encoder_type, input_nc, the opts key of the output size)
FLAVOURS = {
    "psp": ("GradualStyleEncoder", 3, "output_size"),
    "psp-w": ("BackboneEncoderUsingLastLayerIntoW", 3, "output_size"),
    "e4e": ("Encoder4Editing", 3, "stylegan_size"),
    "restyle-psp": ("BackboneEncoder", 6, "output_size"),
    "restyle-e4e": ("ProgressiveBackboneEncoder", 6, "output_size"),
    "restyle-fpn": ("GradualStyleEncoder", 6, "output_size"),  # ReStyle over pSp's FPN encoder (fpn_encoders.py)
}


def random_encoder_state(arch: EncoderArch, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """The encoder's state dict (module names) with every tensor drawn from ``seed``."""
    net = build_encoder(arch)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, t in net.state_dict().items():
        shape = t.shape

        def rnd(scale: float = 1.0, shape: torch.Size = shape) -> torch.Tensor:
            return torch.randn(shape, generator=gen) * scale

        if name.endswith("num_batches_tracked"):
            v = torch.tensor(int(torch.randint(1, 10**6, (), generator=gen)), dtype=t.dtype)
        elif name.endswith("running_var"):
            v = 0.5 + torch.rand(shape, generator=gen)
        elif name.endswith("running_mean"):
            v = rnd(0.1)
        elif ".linear." in name or name.startswith("linear."):
            v = rnd(1.0) if name.endswith("weight") else rnd(0.1)  # EqualLinear scales at run time
        elif t.ndim == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            v = rnd(math.sqrt(2.0 / fan_in))
        elif name.endswith("bias"):
            v = rnd(0.05)
        elif t.ndim == 1 and name.endswith("weight"):  # BatchNorm scale or PReLU slope
            is_prelu = name.startswith("input_layer.2") or ".res_layer.2." in name
            v = 0.25 + rnd(0.05) if is_prelu else 0.6 + rnd(0.1)
        else:
            raise AssertionError(f"no rule for {name} {list(shape)}")
        out[name] = v.to(t.dtype)
    return out


def released_opts(flavour: str, resolution: int, *, iterations: int = 5, **extra: Any) -> dict[str, Any]:
    """``vars(opts)`` as the released files hold it (a plain dict; the entries the loaders read plus a few more)."""
    etype, input_nc, size_key = FLAVOURS[flavour]
    opts: dict[str, Any] = {
        "exp_dir": "experiment",
        "dataset_type": "ffhq_encode",
        "encoder_type": etype,
        "batch_size": 8,
        "learning_rate": 0.0001,
        "optim_name": "ranger",
        "lpips_lambda": 0.8,
        "id_lambda": 0.1,
        "l2_lambda": 1.0,
        "stylegan_weights": "pretrained_models/stylegan2-ffhq-config-f.pt",
        "checkpoint_path": None,
        "max_steps": 500000,
        "start_from_latent_avg": True,
        "device": "cuda:0",
        size_key: resolution,
    }
    if flavour != "e4e":
        opts["input_nc"] = input_nc
    if flavour in ("psp", "psp-w"):
        opts.update(label_nc=0, learn_in_w=flavour == "psp-w", n_styles=2 * int(math.log2(resolution)) - 2)
    if flavour == "e4e":
        opts.update(progressive_start=20000, progressive_step_every=2000, w_discriminator_lambda=0.1, delta_norm=2)
    if flavour.startswith("restyle"):
        opts.update(n_iters_per_batch=iterations, start_from_latent_avg=False, w_norm_lambda=0.0)
    opts.update(extra)
    return opts


def write_psp_checkpoint(
    path: str | Path,
    G: Generator,
    flavour: str = "psp",
    *,
    width: int = 64,
    seed: int = 0,
    iterations: int = 5,
    opts: dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
    training: bool = False,
) -> Path:
    """Write a ``flavour`` checkpoint (:data:`FLAVOURS`) whose decoder is ``G`` and whose encoder is random.

    Args:
        width: the backbone's stem width (64 released; smaller for fast tests). The style width is ``G.w_dim``.
        opts: replaces the released-style options (:func:`released_opts`) entirely.
        state: the whole ``state_dict`` to write instead (to write broken files).
        training: add what e4e's training files carry beside (global_step, optimizer, best_val_loss).
    """
    etype, input_nc, _ = FLAVOURS[flavour]
    n_styles = G.num_ws
    arch = EncoderArch(etype, input_nc, n_styles, width, G.w_dim)
    if state is None:
        state = {f"encoder.{k}": v for k, v in random_encoder_state(arch, seed=seed).items()}
        state.update({f"decoder.{k}": v for k, v in rosinality_g_state(G).items()})
    ckpt: dict[str, Any] = {
        "state_dict": state,
        "opts": opts if opts is not None else released_opts(flavour, G.img_resolution, iterations=iterations),
        "latent_avg": G.w_avg.detach().float().cpu()[None].repeat(n_styles, 1),  # rosinality's, one per row
    }
    if training:
        ckpt.update(global_step=250000, best_val_loss=0.25, optimizer={"state": {}, "param_groups": [{"lr": 1e-4}]})
    torch.save(ckpt, path)
    return Path(path)
