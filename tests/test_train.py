"""The StyleGAN2 discriminator, the trainer (steps, R1, EMA, resumable checkpoints) and `wplus train`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from wplus.cli.main import cli
from wplus.errors import CheckpointError, ConfigError, ShapeError
from wplus.io.checkpoint import load_discriminator, load_native_generator, save_discriminator
from wplus.losses import DiscriminatorFeatures
from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig, minibatch_stddev
from wplus.train.trainer import (
    TrainConfig,
    _path_length_step,
    build_networks,
    cartoon_faces,
    load_checkpoint,
    save_checkpoint,
    train,
    train_step,
)

TINY = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, g_channel_base=128, g_channel_max=16,
            d_channel_base=128, d_channel_max=16, batch_size=4)  # fmt: skip


def tiny_d(res: int = 16) -> Discriminator:
    return Discriminator(DiscriminatorConfig(img_resolution=res, channel_base=128, channel_max=16))


def test_discriminator_shapes_features_and_errors():
    D = tiny_d()
    x = torch.randn(4, 3, 16, 16)
    assert D(x).shape == (4, 1)
    assert [f.shape[-1] for f in D.features(x)] == [16, 8, 4]
    with pytest.raises(ShapeError, match=r"expected \[B, 3, 16, 16\]"):
        D(torch.randn(2, 3, 32, 32))
    with pytest.raises(ConfigError):
        DiscriminatorConfig(img_resolution=12)


def test_minibatch_stddev_is_zero_for_identical_samples():
    x = torch.randn(1, 4, 2, 2).repeat(4, 1, 1, 1)
    y = minibatch_stddev(x, 4, 1)
    assert y.shape == (4, 5, 2, 2) and y[:, 4].abs().max() < 1e-3


def test_discriminator_round_trip(tmp_path):
    D = tiny_d()
    path = save_discriminator(D, tmp_path / "D.safetensors")
    D2 = load_discriminator(path)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(D(x), D2(x))
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_discriminator(tmp_path / "bad.safetensors")


def test_train_step_updates_everything_and_r1_is_lazy():
    state = build_networks(TrainConfig(**TINY, r1_interval=2))
    g0 = [p.clone() for p in state.G.parameters()]
    gen = torch.Generator().manual_seed(0)
    reals = torch.rand(4, 3, 16, 16) * 2 - 1
    steps = [train_step(state, reals, gen) for _ in range(3)]
    assert [s.r1 is not None for s in steps] == [True, False, True]
    assert all(torch.isfinite(torch.tensor([s.loss_G, s.loss_D])).all() for s in steps)
    assert any(not torch.equal(a, b) for a, b in zip(g0, state.G.parameters(), strict=True))
    assert state.G.w_avg.abs().sum() > 0 and state.nimg == 12
    # G_ema moved away from the initial weights (EMA updates run).
    assert any(not torch.equal(a, b) for a, b in zip(g0, state.G_ema.parameters(), strict=True))


def _path_lengths(G, z, y):
    ws = G.mapping(z)
    (grad,) = torch.autograd.grad((G.synthesis(ws, noise_mode="const") * y).sum(), ws)
    return grad.square().sum(2).mean(1).sqrt()


def test_path_length_regularisation_evens_out_the_lengths():
    # Only the PL step, repeated: the spread of |J^T y| over fixed samples must shrink, and pl_mean tracks the mean.
    state = build_networks(TrainConfig(**TINY, pl_interval=1, pl_decay=0.1, style_mixing_prob=0.0, lr=0.01))
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(64, 16, generator=gen)
    y = torch.randn(64, 3, 16, 16, generator=gen) / 16
    before = _path_lengths(state.G, z, y)
    penalties = [_path_length_step(state, 8, gen, torch.device("cpu")) for _ in range(150)]
    after = _path_lengths(state.G, z, y)
    cv = [float(x.std() / x.mean()) for x in (before, after)]
    assert cv[1] < 0.7 * cv[0], cv
    assert sum(penalties[-10:]) < 0.5 * sum(penalties[:10])
    assert abs(state.pl_mean - float(after.mean())) < 0.25 * float(after.mean())


def test_pl_is_lazy_and_rescales_g_adam():
    state = build_networks(TrainConfig(**TINY, pl_interval=2))
    assert state.opt_G.param_groups[0]["lr"] == pytest.approx(0.002 * 2 / 3)
    assert state.opt_G.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (2 / 3))
    gen = torch.Generator().manual_seed(0)
    reals = torch.rand(4, 3, 16, 16) * 2 - 1
    steps = [train_step(state, reals, gen) for _ in range(3)]
    assert [s.pl is not None for s in steps] == [True, False, True] and state.pl_mean > 0
    off = build_networks(TrainConfig(**TINY, pl_weight=0.0))
    assert off.opt_G.param_groups[0]["lr"] == 0.002 and train_step(off, reals, gen).pl is None
    # Configs stored before the option existed were trained without it.
    legacy = {k: v for k, v in TrainConfig(**TINY).to_dict().items() if not k.startswith("pl_")}
    assert TrainConfig.from_dict(legacy).pl_weight == 0.0


def test_resume_may_change_regularisation_not_shapes(tmp_path):
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    train(images, TrainConfig(**TINY, pl_weight=0.0), tmp_path, kimg=0.008, snapshot_minutes=1e6)
    state = train(images, TrainConfig(**TINY, pl_weight=1.0), tmp_path, kimg=0.016, snapshot_minutes=1e6)
    assert state.config.pl_weight == 1.0 and state.opt_G.param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5)
    assert load_checkpoint(tmp_path / "checkpoint.safetensors").config.pl_weight == 1.0
    with pytest.raises(ConfigError, match="network shapes"):
        train(images, TrainConfig(**{**TINY, "z_dim": 8}), tmp_path, kimg=0.024, snapshot_minutes=1e6)


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    cfg = TrainConfig(**TINY)
    torch.manual_seed(0)
    full = train(images, cfg, tmp_path / "a", kimg=0.016, snapshot_minutes=1e6, sample_minutes=1e6)
    torch.manual_seed(0)
    train(images, cfg, tmp_path / "b", kimg=0.008, snapshot_minutes=1e6, sample_minutes=1e6)
    resumed = train(images, cfg, tmp_path / "b", kimg=0.016, snapshot_minutes=1e6, sample_minutes=1e6)
    assert resumed.step == full.step == 4
    loaded = load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    for a, b in zip(loaded.G_ema.state_dict().values(), resumed.G_ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert loaded.opt_D.state_dict()["state"][0]["exp_avg"].shape == next(loaded.D.parameters()).shape
    G = load_native_generator(tmp_path / "b" / "G_ema.safetensors")
    assert G.img_resolution == 16
    assert (tmp_path / "b" / "samples" / "reals.png").is_file()
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert "loss_G" in json.loads(lines[0])


def test_save_checkpoint_is_pickle_free(tmp_path):
    state = build_networks(TrainConfig(**TINY))
    path = save_checkpoint(state, tmp_path / "c.safetensors")
    assert path.read_bytes()[:8] != b"\x80\x04\x95"[:8]
    with pytest.raises(
        CheckpointError,
        match="got arch .stylegan2_discriminator., expected a training checkpoint written by `wplus train`",
    ):
        save_discriminator(tiny_d(), tmp_path / "d.safetensors")
        load_checkpoint(tmp_path / "d.safetensors")


def test_train_rejects_wrong_images(tmp_path):
    with pytest.raises(ConfigError, match="uint8"):
        train(torch.rand(4, 3, 16, 16), TrainConfig(**TINY), tmp_path, kimg=0.01)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=1)


def test_discriminator_features_loss_mirrors_perceptual_loss():
    loss = DiscriminatorFeatures(tiny_d())
    target = loss.prepare_target(torch.zeros(1, 3, 16, 16))
    terms = loss(torch.zeros(3, 3, 16, 16, requires_grad=True), target)
    assert set(terms) == {"d0", "d1", "d2", "perceptual", "mse", "total"}
    assert terms["total"].shape == (3,) and float(terms["total"].detach().abs().max()) == 0
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    single = loss(x[:1], target)["total"]
    torch.testing.assert_close(loss(x, target)["total"][:1], single)  # per-sample, no batch coupling
    with pytest.raises(ConfigError, match="indices"):
        DiscriminatorFeatures(tiny_d(), layers=(7,))
    with pytest.raises(ShapeError):
        loss(torch.zeros(2, 3, 16, 16), loss.prepare_target(torch.zeros(3, 3, 16, 16)))


def test_cli_train_cartoon_faces_and_resume(tmp_path):
    out = tmp_path / "run"
    args = ["train", "cartoon-faces", "--outdir", str(out), "--resolution", "16", "--num-images", "16", "--batch",
            "4", "--z-dim", "16", "--mapping-layers", "2", "--g-channel-base", "128", "--g-channel-max", "16",
            "--d-channel-base", "128", "--d-channel-max", "16", "--threads", "1", "--json"]  # fmt: skip
    r = CliRunner().invoke(cli, [*args, "--kimg", "0.008"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{") :])["steps"] == 2
    r = CliRunner().invoke(cli, [*args, "--kimg", "0.016"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{") :])["steps"] == 4
    assert load_checkpoint(out / "checkpoint.safetensors").config.pl_weight == 2.0  # the default, kept on resume
    r = CliRunner().invoke(cli, [*args, "--kimg", "0.02", "--pl-weight", "0"])  # given on a resume: replaces it
    assert r.exit_code == 0, r.output
    assert load_checkpoint(out / "checkpoint.safetensors").config.pl_weight == 0.0
    assert (out / "G_ema.safetensors").is_file() and (out / "D.safetensors").is_file()
    assert cartoon_faces(16, 16, cache_dir=out).shape == (16, 3, 16, 16)
    r = CliRunner().invoke(cli, ["train", str(tmp_path / "nope"), "--outdir", str(out), "--no-resume"])
    assert r.exit_code != 0 and "nope" in r.output
