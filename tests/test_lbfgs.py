"""BatchLBFGS: one L-BFGS per image of a batch (own curvature pairs, own step length), one evaluation per step."""

from __future__ import annotations

import pytest
import torch

from wplus.projection import project
from wplus.projection.lbfgs import BatchLBFGS


def _quadratics(batch: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SPD matrices A [B, n, n] with condition numbers from 10 to 1000, and minimisers b [B, n]."""
    g = torch.Generator().manual_seed(seed)
    A, b = [], []
    for i in range(batch):
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        eig = torch.logspace(0, 1 + i % 3, n, dtype=torch.float64)
        A.append(q @ torch.diag(eig) @ q.T)
        b.append(torch.randn(n, generator=g, dtype=torch.float64))
    return torch.stack(A), torch.stack(b)


def _run(A: torch.Tensor, b: torch.Tensor, steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = torch.zeros_like(b).reshape(b.shape[0], 2, -1).requires_grad_(True)  # batch-first, not flat: reshaped inside
    opt = BatchLBFGS([x], history_size=8)
    losses = []

    def closure() -> torch.Tensor:
        d = x.reshape(b.shape) - b
        f = 0.5 * torch.einsum("bi,bij,bj->b", d, A, d)
        f.sum().backward()
        return f.detach()

    for _ in range(steps):
        losses.append(opt.step(closure))
    return x.detach().reshape(b.shape), losses


def test_every_image_of_a_batch_converges_to_its_own_minimiser():
    A, b = _quadratics(4, 12)
    x, losses = _run(A, b, 200)  # torch.optim.LBFGS (strong Wolfe) is at 2.4e-5 after 120 evaluations on image 2
    assert torch.allclose(x, b, atol=1e-4), (x - b).abs().max()
    stacked = torch.stack(losses)
    assert (stacked[1:] <= stacked[:-1] + 1e-12).all(), "the accepted loss of an image never rises"


def test_an_image_follows_the_same_steps_as_it_would_alone():
    A, b = _quadratics(3, 10, seed=1)
    together, _ = _run(A, b, 15)
    for i in range(3):
        alone, _ = _run(A[i : i + 1], b[i : i + 1], 15)
        assert torch.allclose(together[i], alone[0], atol=1e-10)


def test_beats_torch_lbfgs_on_the_batch_as_one_vector_in_the_same_evaluations():
    A, b = _quadratics(4, 12, seed=2)
    ours, _ = _run(A, b, 30)
    x = torch.zeros_like(b).requires_grad_(True)
    ref = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=8)

    def closure() -> torch.Tensor:
        ref.zero_grad()
        d = x - b
        f = 0.5 * torch.einsum("bi,bij,bj->b", d, A, d).sum()
        f.backward()
        return f

    for _ in range(30):
        ref.step(closure)
    assert (ours - b).norm() < 0.5 * (x.detach() - b).norm()  # measured: 0.30 against 0.84


def test_a_trial_that_is_not_finite_is_rejected_and_the_image_stays_put():
    x = torch.tensor([[3.0], [3.0]], dtype=torch.float64, requires_grad=True)
    opt = BatchLBFGS([x])
    calls = {"n": 0}

    def closure() -> torch.Tensor:
        calls["n"] += 1
        f = (x - 1).square().sum(1)
        f.sum().backward()
        if calls["n"] == 2:  # the first trial: image 1 blows up
            f = torch.stack([f[0], torch.tensor(float("nan"), dtype=f.dtype)])
        return f.detach()

    opt.step(closure)  # evaluates the start
    start = x.detach().clone()
    opt.step(closure)
    assert opt.accepted.tolist() == [True, False]
    assert x[1].item() == start[1].item() and x[0].item() != start[0].item()
    for _ in range(20):
        opt.step(closure)
    assert torch.allclose(x.detach(), torch.ones(2, 1, dtype=torch.float64), atol=1e-8)


def test_rosenbrock_in_a_batch_of_starts():
    x = torch.tensor([[-1.2, 1.0], [2.0, -1.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    opt = BatchLBFGS([x], history_size=10)

    def closure() -> torch.Tensor:
        f = 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2
        f.sum().backward()
        return f.detach()

    for _ in range(400):
        opt.step(closure)
    assert torch.allclose(x.detach(), torch.ones_like(x), atol=1e-4)


def test_bad_parameters_and_closures_are_refused():
    with pytest.raises(ValueError, match="same batch size"):
        BatchLBFGS([torch.zeros(2, 3, requires_grad=True), torch.zeros(3, 3, requires_grad=True)])
    x = torch.zeros(2, 3, requires_grad=True)
    opt = BatchLBFGS([x])
    with pytest.raises(ValueError, match="per-image losses"):
        opt.step(lambda: (x.square().sum().backward(), x.square().sum().detach())[1])


# ---------------------------------------------------------------- in projection


def _in_range_target(G, seed: int, batch: int = 3) -> torch.Tensor:
    z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.synthesis(G.mapping(z, None), noise_mode="const")


def test_projection_with_lbfgs_beats_adam_in_the_same_steps_and_never_records_a_worse_step(tiny_generator, mse_loss):
    target = _in_range_target(tiny_generator, 5)
    lbfgs = project(tiny_generator, target, loss=mse_loss, optimizer="lbfgs", lr=1.0, num_steps=60)
    adam = project(tiny_generator, target, loss=mse_loss, lr=0.05, lr_rampdown=1.0, num_steps=60)
    ours, theirs = [m["psnr"] for m in lbfgs.metrics], [m["psnr"] for m in adam.metrics]
    assert all(a > b + 1.0 for a, b in zip(ours, theirs, strict=True)), (ours, theirs)
    total = lbfgs.history["total"]  # [steps, B]: each image's accepted loss
    assert (total[1:] <= total[:-1]).all()
    # The final image is rendered from the best point found: its PSNR is the last recorded one.
    assert torch.allclose(lbfgs.history["psnr"][-1], torch.tensor(ours), atol=1e-4)


def test_lbfgs_starts_afresh_when_coarse_to_fine_switches_to_the_full_render(tiny_generator_32, mse_loss):
    target = _in_range_target(tiny_generator_32, 6, batch=2)
    r = project(
        tiny_generator_32, target, loss=mse_loss, optimizer="lbfgs", lr=1.0, num_steps=40, coarse_resolution=16,
        coarse_fraction=0.5,
    )  # fmt: skip
    full = r.history["total"][20:]
    assert (full[1:] <= full[:-1]).all() and full[-1].max() < full[0].min()
    assert all(m["psnr"] > 20 for m in r.metrics)
