"""The style space S on the shipped model (docs/stylespace.md): round trips, disentanglement, localisation, transfer.

Sections (``--sections``, default all):
- ``roundtrip``: max |render_styles(to_styles(w)) - G(w)| on the shipped model and on tiny v1/v3 generators (target
  1e-5), and seconds of ``to_styles`` for 1,000 codes.
- ``dci``: DCI (Eastwood & Williams; StyleSpace's DCI.py: scikit-learn gradient-boosted trees) of W, W+ and S
  against attributes read by the shipped attribute probe on generator samples, binarised at their median (glasses:
  its probability > 0.5). W and S(W): ``--dci-samples`` untruncated samples; W+ and S(W+): the same number of
  style-mixed samples (two codes crossed over at a random row, so the rows of a code differ). 75 % train, 25 % test.
- ``nvidia`` (with ``--nvidia PATH``, a stylegan2-ada-pytorch checkout fetched outside this repository): NVIDIA's
  own ``training/networks.py`` Generator built with the same weights as a pickle our writer makes in NVIDIA's
  layout; every ``affine``'s output captured during NVIDIA's forward pass (ToRGB times its weight_gain, as NVIDIA's
  ToRGBLayer multiplies) against ``to_styles`` of the loaded pickle (target 1e-5), skip and resnet architectures.

Localisation (seconds for ``locate`` over every channel, held-out shares inside the boxes, finite differences
against the Jacobian, ``find``) is measured by ``benchmarks/stylespace_locate.py``; part transfer (PSNR outside the
part, movement towards the reference) by ``benchmarks/stylespace_transfer.py``.

Usage: python benchmarks/stylespace.py [--quick] [--sections roundtrip,dci] [--dci-samples 2000] [--nvidia PATH]
       [--json-out F.json] [--figures docs/]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wplus
from wplus.stylespace import render_styles, style_layers, to_styles

FACTORS = ("smile", "jaw", "eye_size", "eye_spacing", "brow_tilt", "mouth_width", "head_width", "head_height",
           "shift_x", "shift_y", "roll", "glasses")  # fmt: skip


def roundtrip(G: torch.nn.Module) -> dict[str, Any]:
    from wplus.models import stylegan1, stylegan3

    out: dict[str, Any] = {}
    tiny = {
        "v1": stylegan1.random_generator(
            stylegan1.StyleGAN1Config(img_resolution=32, fmap_base=128, fmap_max=32, z_dim=16, w_dim=16,
                                      mapping_layers=2, mapping_fmaps=32), seed=1, noise_strength=0.2),
        "v3": stylegan3.random_generator(
            stylegan3.StyleGAN3Config(img_resolution=32, channel_base=512, channel_max=16, z_dim=8, w_dim=8,
                                      margin_size=4), seed=1, w_avg_samples=100),
    }  # fmt: skip
    for name, g in [("cartoon-faces-64 (v2)", G), *tiny.items()]:
        ws = g.mapping(torch.randn(8, g.z_dim, generator=torch.Generator().manual_seed(0)))
        ws = ws + 0.3 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            d = (render_styles(g, to_styles(g, ws)) - g.synthesis(ws)).abs().max().item()
        out[name] = {"max_abs_diff": d}
    ws = G.mapping(torch.randn(1000, G.z_dim))
    t = time.perf_counter()
    with torch.no_grad():
        to_styles(G, ws)
    out["to_styles_1000_codes_s"] = time.perf_counter() - t
    return out


def against_nvidia(nvidia: Path) -> dict[str, Any]:
    """to_styles against the affine outputs of NVIDIA's own code on the same weights (see the module docstring)."""
    import tempfile

    from wplus.formats._testing import write_nvidia_pickle
    from wplus.models.stylegan2 import StyleGAN2Config, random_generator

    sys.path.insert(0, str(nvidia))
    from training.networks import Generator as NvidiaGenerator  # NVIDIA's code, outside this repository

    out: dict[str, Any] = {}
    for res, arch in [(64, "skip"), (32, "resnet")]:
        cfg = StyleGAN2Config(img_resolution=res, channel_base=1024, channel_max=64, mapping_layers=2, z_dim=32,
                              w_dim=32, architecture=arch)  # fmt: skip
        G0 = random_generator(cfg, seed=3, noise_strength=0.1)
        with tempfile.TemporaryDirectory() as tmp:
            G = wplus.load_generator(write_nvidia_pickle(G0, Path(tmp) / "net.pkl"))
        Gn = NvidiaGenerator(z_dim=32, c_dim=0, w_dim=32, img_resolution=res, img_channels=3,
                             mapping_kwargs={"num_layers": 2},
                             synthesis_kwargs={"channel_base": 1024, "channel_max": 64, "architecture": arch,
                                               "num_fp16_res": 0, "conv_clamp": None}).eval()  # fmt: skip
        Gn.load_state_dict(G0.state_dict())
        seen: dict[str, torch.Tensor] = {}
        for name, m in Gn.synthesis.named_modules():
            if name.endswith(".affine"):
                key = "synthesis." + name[: -len(".affine")]
                m.register_forward_hook(lambda _m, _i, o, key=key, seen=seen: seen.__setitem__(key, o.detach()))
        ws = G.mapping(torch.randn(4, G.z_dim)) + 0.2 * torch.randn(4, G.num_ws, G.w_dim)
        with torch.no_grad():
            img_n = Gn.synthesis(ws, noise_mode="const", force_fp32=True)
            s = to_styles(G, ws)
            img = render_styles(G, s)
        worst = max((s[x.name] - seen[x.name] * x.gain).abs().max().item() for x in style_layers(G))
        out[f"{res} px {arch}"] = {
            "layers": len(style_layers(G)),
            "max_abs_diff_styles": worst,
            "max_abs_diff_render_styles_vs_nvidia_render": (img - img_n).abs().max().item(),
        }
    return out


def _labels(G: torch.nn.Module, ws: torch.Tensor, probe: Any) -> np.ndarray:
    cols = []
    with torch.no_grad():
        imgs = torch.cat([G.synthesis(chunk) for chunk in ws.split(256)])
        pred = probe.predict(imgs)
    for name in FACTORS:
        v = pred[name].float().numpy()
        cols.append(v > 0.5 if name == "glasses" else v > np.median(v))
    return np.stack(cols, 1)


def disentanglement(G: torch.nn.Module, samples: int, seed: int = 0, n_estimators: int = 50) -> dict[str, Any]:
    from wplus.disentanglement import dci
    from wplus.models.attribute_probe import load_probe

    probe = load_probe()
    rng = np.random.RandomState(seed)
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(rng.randn(samples, G.z_dim).astype(np.float32)))
        other = G.mapping(torch.from_numpy(rng.randn(samples, G.z_dim).astype(np.float32)))
    cut = torch.from_numpy(rng.randint(1, G.num_ws, size=samples))
    rows = torch.arange(G.num_ws)[None, :, None]
    mixed = torch.where(rows < cut[:, None, None], w, other)  # style mixing at a random crossover row
    spaces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    lab_w, lab_mix = _labels(G, w, probe), _labels(G, mixed, probe)
    conv = [x.name for x in style_layers(G) if x.modulates]
    with torch.no_grad():
        s_w, s_mix = to_styles(G, w), to_styles(G, mixed)
    spaces["W"] = (w[:, 0].numpy(), lab_w)
    # control: W tiled num_ws times has W's information in W+'s dimension count; what D gains here is an artefact
    # of more dimensions (fewer trees' splits per dimension), not disentanglement
    spaces["W tiled (control)"] = (w.flatten(1).numpy(), lab_w)
    spaces["S (of W samples)"] = (s_w.flat().numpy(), lab_w)
    spaces["S conv only (of W samples)"] = (torch.cat([s_w[k] for k in conv], 1).numpy(), lab_w)
    spaces["W+ (style-mixed)"] = (mixed.flatten(1).numpy(), lab_mix)
    spaces["S (of style-mixed)"] = (s_mix.flat().numpy(), lab_mix)
    split = int(samples * 0.75)
    out: dict[str, Any] = {"samples": samples, "factors": list(FACTORS), "n_estimators": n_estimators}
    for name, (codes, labels) in spaces.items():
        t = time.perf_counter()
        r = dci(codes[:split], labels[:split], codes[split:], labels[split:], n_estimators=n_estimators, seed=seed)
        out[name] = {"D": r.disentanglement, "C": r.completeness, "I": r.informativeness,
                     "accuracy": dict(zip(FACTORS, r.accuracy, strict=True)), "dims": codes.shape[1],
                     "seconds": time.perf_counter() - t}  # fmt: skip
        print(f"  {name:<28} D {r.disentanglement:.3f}  C {r.completeness:.3f}  I {r.informativeness:.3f}"
              f"  ({codes.shape[1]} dims, {time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Few samples (a smoke run).")
    ap.add_argument("--sections", default="roundtrip,dci")
    ap.add_argument("--dci-samples", type=int, default=2000)
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--nvidia", type=Path, default=None, help="A stylegan2-ada-pytorch checkout (outside this repo).")
    ap.add_argument("--figures", type=Path, default=None, help="Write the figures into this folder (matplotlib).")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    G = wplus.load_generator("cartoon-faces-64")
    results: dict[str, Any] = {}
    if "roundtrip" in sections:
        print("round trip W+ -> S -> image", flush=True)
        results["roundtrip"] = roundtrip(G)
        for k, v in results["roundtrip"].items():
            print(f"  {k}: {v}", flush=True)
    if args.nvidia is not None:
        print("to_styles against NVIDIA's own affine outputs", flush=True)
        results["nvidia"] = against_nvidia(args.nvidia)
        for k, v in results["nvidia"].items():
            print(f"  {k}: {v}", flush=True)
    if "dci" in sections:
        n = 600 if args.quick else args.dci_samples
        print(f"DCI on {n} samples ({len(FACTORS)} probe attributes)", flush=True)
        results["dci"] = disentanglement(G, n, n_estimators=20 if args.quick else 50)
    if args.figures is not None and "dci" in results:
        _dci_figure(results["dci"], args.figures / "stylespace_dci.png")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2))
    return 0


def _dci_figure(r: dict[str, Any], path: Path) -> None:
    from wplus.io.plot import pyplot

    plt = pyplot("the benchmark's figures")

    names = [k for k in r if isinstance(r[k], dict) and "D" in r[k]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for i, (m, label) in enumerate([("D", "disentanglement"), ("C", "completeness"), ("I", "informativeness")]):
        bars = ax.bar(x + (i - 1) * 0.26, [r[n][m] for n in names], 0.26, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [f"{n}\n{r[n]['dims']} dims" for n in names], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8, ncols=3, loc="upper left")
    ax.set_title(f"DCI of the shipped model's spaces ({r['samples']} samples, {len(r['factors'])} probe attributes)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
