"""Edit discovery in the library: SeFa, PCA, samples, InterFaceGAN fitting, and applying what they find."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wplus import directions as D
from wplus.errors import ConfigError, ShapeError
from wplus.formats import _testing as W
from wplus.loading import load_generator
from wplus.models import stylegan1, stylegan3
from wplus.seeds import z_from_seed


def _orthonormal(rows: torch.Tensor) -> bool:
    rows = rows.double()
    return torch.allclose(rows @ rows.T, torch.eye(len(rows), dtype=torch.float64), atol=1e-5)


def _abs_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return ((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).abs()


# --------------------------------------------------------------------------------------------------------------------
# SeFa


@pytest.mark.parametrize("variant", ["genforce", "rosinality"])
def test_sefa_directions_are_orthonormal_and_sorted(tiny_generator, variant):
    r = D.sefa(tiny_generator, variant=variant)
    assert r.directions.shape == (tiny_generator.w_dim, tiny_generator.w_dim)
    assert _orthonormal(r.directions)
    assert torch.all(r.eigenvalues[:-1] >= r.eigenvalues[1:]) and r.eigenvalues[-1] >= 0
    # each direction is an eigenvector of the factorised Gram matrix with its eigenvalue
    A = torch.cat([a.weight.double() for a in D.style_affines(tiny_generator) if a.name in r.layer_names])
    if variant == "genforce":
        A = A / A.norm(dim=1, keepdim=True)
    gram = A.T @ A
    d = r.directions.double()
    assert torch.allclose(d @ gram, r.eigenvalues[:, None] * d, atol=1e-4 * float(r.eigenvalues[0]))


def test_sefa_layer_selection_follows_each_tool(tiny_generator):
    G = tiny_generator  # 16 px: rows 0-5; b4.conv1 reads 0, b8.conv0/conv1 1-2, b16.conv0/conv1 3-4, last ToRGB 5
    g = D.sefa(G)
    assert g.layers == list(range(G.num_ws))
    assert g.layer_names == ["synthesis.b4.conv1", "synthesis.b8.conv0", "synthesis.b8.conv1", "synthesis.b16.conv0",
                             "synthesis.b16.conv1", "synthesis.b16.torgb"]  # fmt: skip
    r = D.sefa(G, variant="rosinality")  # the convs and to_rgb1; no later ToRGB, so the last row is not read
    assert r.layers == list(range(G.num_ws - 1))
    assert "synthesis.b4.torgb" in r.layer_names and "synthesis.b8.torgb" not in r.layer_names
    sub = D.sefa(G, layers=[2, 3], num=5)
    assert sub.layers == [2, 3] and sub.layer_names == ["synthesis.b8.conv1", "synthesis.b16.conv0"]
    assert sub.directions.shape == (5, G.w_dim)
    with pytest.raises(ConfigError, match=r"rows \[5\]"):
        D.sefa(G, variant="rosinality", layers=[4, 5])
    with pytest.raises(ConfigError, match="num 99"):
        D.sefa(G, num=99)


def test_sefa_genforce_equals_a_direct_eigendecomposition(tiny_generator):
    """genforce's factorize_weight as EDITING.md describes it: affines transposed, columns unit, eig of W Wᵀ."""
    blocks = tiny_generator.synthesis.blocks()
    convs = [getattr(b, n) for b in blocks for n in ("conv0", "conv1") if hasattr(b, n)]
    weight = np.concatenate([c.affine.weight.numpy().T for c in convs] + [blocks[-1].torgb.affine.weight.numpy().T], 1)
    weight = weight / np.linalg.norm(weight, axis=0, keepdims=True)
    values, vectors = np.linalg.eig(weight @ weight.T)
    order = np.argsort(-values.real)[:10]
    ref = torch.from_numpy(vectors.real.T[order].copy())
    r = D.sefa(tiny_generator, num=10)
    assert torch.all(_abs_cos(r.directions, ref) >= 0.9999)
    assert np.allclose(r.eigenvalues.numpy(), values.real[order], rtol=1e-4)


def test_sefa_rosinality_variant_equals_the_scripts_svd_on_a_rosinality_file(tiny_generator, tmp_path):
    path = W.write_rosinality(tiny_generator, tmp_path / "ckpt.pt", with_args=False)  # no argparse.Namespace
    # closed_form_factorization.py, from EDITING.md: modulation weights of g_ema but not to_rgbs, stacked, SVD's V.
    g_ema = torch.load(path, map_location="cpu", weights_only=True)["g_ema"]
    modulate = [v for k, v in g_ema.items() if "modulation" in k and "to_rgbs" not in k and "weight" in k]
    eigvec = torch.svd(torch.cat(modulate, 0)).V  # [w_dim, w_dim], columns
    singular = torch.svd(torch.cat(modulate, 0)).S
    r = D.sefa(load_generator(path), variant="rosinality")
    assert torch.all(_abs_cos(r.directions[:10], eigvec[:, :10].T) >= 0.9999)
    assert torch.allclose(r.eigenvalues.float(), singular.square(), rtol=1e-4)
    # the file rosinality's apply_factor.py reads: {"ckpt", "eigvec" [w_dim, K]} with directions as columns
    out = D.save_rosinality_factor(tmp_path / "factor.pt", r, ckpt=str(path))
    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert set(saved) == {"ckpt", "eigvec"} and saved["ckpt"] == str(path)
    assert torch.equal(saved["eigvec"], r.directions.T)
    d = D.load_direction(out, tiny_generator, component=3)
    assert d.kind == "rosinality-sefa" and d.layers is None and torch.equal(d.vector[0], r.directions[3])


def test_sefa_reads_stylegan1_and_stylegan3():
    g1 = stylegan1.random_generator(
        stylegan1.StyleGAN1Config(img_resolution=16, fmap_base=64, fmap_max=16, z_dim=16, w_dim=16, mapping_layers=2,
                                  mapping_fmaps=24), w_avg_samples=10)  # fmt: skip
    r1 = D.sefa(g1)
    assert r1.layers == list(range(g1.num_ws)) and _orthonormal(r1.directions)
    assert r1.layer_names[:2] == ["synthesis.b4.layer0", "synthesis.b4.layer1"]
    g3 = stylegan3.random_generator(
        stylegan3.StyleGAN3Config(img_resolution=16, channel_base=256, channel_max=16, z_dim=8, w_dim=8),
        w_avg_samples=10,
    )
    r3 = D.sefa(g3)
    assert r3.layers == list(range(1, g3.num_ws)) and _orthonormal(r3.directions)  # row 0: the input transform
    assert r3.layer_names[-1].startswith("synthesis.L") and len(r3.layer_names) == g3.num_ws - 1
    with pytest.raises(ConfigError, match=r"rows \[0\]"):
        D.sefa(g3, layers=[0, 1])


def test_sefa_file_edits_only_the_rows_its_layers_read(tiny_generator, tmp_path):
    G = tiny_generator
    r = D.sefa(G, layers=[2, 3], num=4)
    path = D.save_sefa(tmp_path / "sefa.npz", r, metadata={"model_sha256": "x" * 64})
    d = D.load_direction(path, G, component=1)
    assert d.kind == "sefa" and d.layers == [2, 3] and d.metadata["variant"] == "genforce"
    ws = torch.randn(1, G.num_ws, G.w_dim)
    out = D.apply_direction(ws, d, [-3.0, 3.0])
    changed = (out - ws).abs().amax(dim=-1) > 0  # [S, num_ws]
    assert changed[:, [2, 3]].all() and not changed[:, [0, 1, 4, 5]].any()
    assert torch.allclose(out[1, 2] - ws[0, 2], 3 * r.directions[1], atol=1e-6)
    with pytest.raises(ConfigError, match="--component 0..3"):
        D.load_direction(path, G)


def test_direction_of_another_w_dim_names_the_file(tiny_generator, tmp_path):
    path = D.save_direction(tmp_path / "wide.npz", torch.randn(1, tiny_generator.w_dim + 1))
    with pytest.raises(ShapeError, match=r"wide\.npz: ours direction has shape \[1, 33\].*w_dim=32"):
        D.load_direction(path, tiny_generator)


# --------------------------------------------------------------------------------------------------------------------
# PCA


@pytest.fixture(scope="module")
def pca_result(tiny_generator):
    return D.pca(tiny_generator, num_samples=4000, num_components=8, std_samples=2000, seed=3)


def test_pca_components_orthonormal_and_std_is_the_spread_of_fresh_samples(tiny_generator, pca_result):
    r = pca_result
    assert r.components.shape == (8, tiny_generator.w_dim) and _orthonormal(r.components)
    assert torch.all(r.variance_ratio[:-1] >= r.variance_ratio[1:]) and float(r.variance_ratio.sum()) < 1
    with torch.no_grad():
        fresh = tiny_generator.mapping(
            torch.randn(4000, tiny_generator.z_dim, generator=torch.Generator().manual_seed(9))
        )
    spread = ((fresh[:, 0] - r.mean) @ r.components.T).std(dim=0)
    assert torch.allclose(r.std, spread, rtol=0.1)
    assert torch.all(r.std[:-1] >= 0.8 * r.std[1:])  # sorted by variance (up to the sampling noise)


def test_pca_files_load_in_their_community_layouts(tiny_generator, pca_result, tmp_path):
    r = pca_result
    pt = D.save_ganspace(tmp_path / "pca.pt", r)
    obj = torch.load(pt, map_location="cpu", weights_only=True)
    assert set(obj) == {"mean", "comp", "std"}
    assert obj["mean"].shape == (1, 32) and obj["comp"].shape == (8, 1, 32) and obj["std"].shape == (8,)
    npz = D.save_pca(tmp_path / "pca.npz", r)
    with np.load(npz, allow_pickle=False) as f:
        assert set(f.files) == {"components", "mean", "std", "variance_ratio", "metadata"}
        assert np.allclose(f["variance_ratio"], r.variance_ratio.numpy())
    for path in (pt, npz):
        d = D.load_direction(path, tiny_generator, component=2)
        assert d.scale == pytest.approx(float(r.std[2]))
        assert torch.allclose(d.vector[0], r.components[2] * r.std[2], atol=1e-6)
        assert torch.allclose(d.mean[0], r.mean, atol=1e-6)


def test_set_moves_each_edited_row_to_the_coordinate(tiny_generator, pca_result, tmp_path):
    r = pca_result
    d = D.load_direction(D.save_ganspace(tmp_path / "pca.pt", r), tiny_generator, component=1)
    ws = torch.randn(1, tiny_generator.num_ws, tiny_generator.w_dim)  # W+: every row at its own coordinate
    out = D.move_to_coordinate(ws, d, [-2.0, 1.5], layers=[1, 4])
    coord = (out - r.mean) @ r.components[1]  # [S, num_ws]
    assert torch.allclose(coord[:, [1, 4]], torch.tensor([[-2.0], [1.5]]) * r.std[1], atol=1e-4)
    assert torch.equal(out[:, [0, 2, 3, 5]], ws.expand(2, -1, -1)[:, [0, 2, 3, 5]])
    # only the component's coordinate moves: the rest of each edited row stays
    rest = (out - ws)[:, [1, 4]] - ((out - ws)[:, [1, 4]] @ r.components[1])[..., None] * r.components[1]
    assert rest.abs().max() < 1e-5
    with pytest.raises(ConfigError, match="use a strength"):
        D.move_to_coordinate(ws, D.Direction(torch.randn(1, 32), "sefa"), 1.0)


# --------------------------------------------------------------------------------------------------------------------
# Samples and InterFaceGAN


def test_sample_codes_follow_nvidias_seeds(tiny_generator):
    c = D.sample_codes(tiny_generator, [7, 3], truncation_psi=0.5)
    assert torch.equal(c.z[1:], z_from_seed(3, tiny_generator.z_dim))
    with torch.no_grad():
        w = tiny_generator.mapping(c.z, truncation_psi=0.5)
    assert torch.allclose(c.w, w[:, 0]) and c.seeds.tolist() == [7, 3]


@pytest.fixture(scope="module")
def sampled(tiny_generator):
    return D.sample_codes(tiny_generator, list(range(2000))).w.double().numpy()


def test_fit_recovers_a_planted_boundary(sampled):
    w = sampled
    n = np.random.RandomState(0).randn(w.shape[1])
    n /= np.linalg.norm(n)
    proj = w @ n
    scores = proj + 0.05 * proj.std() * np.random.RandomState(1).randn(len(w))
    b = D.fit_boundary(w, scores, ratio=0.2)
    assert b.normal.shape == (1, w.shape[1]) and np.isclose(np.linalg.norm(b.normal), 1)
    assert float((b.normal @ n)[0]) >= 0.95
    assert b.num_positive == b.num_negative == 400 and b.num_train == 560 and b.num_val == 240
    assert b.val_accuracy >= 0.95 and b.remaining_accuracy is not None


def test_conditional_boundary_is_orthogonal_to_its_conditions(sampled):
    rng = np.random.RandomState(2)
    c1, c2 = rng.randn(1, 32), rng.randn(1, 32)
    c1 /= np.linalg.norm(c1)
    scores = sampled @ (c1[0] + rng.randn(32) * 0.5)
    b = D.fit_boundary(sampled, scores, ratio=0.2, conditions=[c1])
    assert abs(float((b.normal @ c1.T)[0, 0])) < 1e-9 and np.isclose(np.linalg.norm(b.normal), 1)
    two = D.project_out(b.normal, [c1, c2])
    assert np.abs(two @ np.concatenate([c1, c2]).T).max() < 1e-9
    # one unit condition: InterFaceGAN's n - (n·c)c, renormalised
    n = np.random.RandomState(5).randn(1, 32)
    expected = n - (n @ c1.T) * c1
    assert np.allclose(D.project_out(n, [c1]), expected / np.linalg.norm(expected))
    with pytest.raises(ConfigError, match="span"):
        D.project_out(c1, [c1, c2])


def test_fit_refuses_bad_scores(sampled):
    scores = sampled[:, 0].copy()
    scores[5] = np.nan
    with pytest.raises(ConfigError, match="scores holds 1 NaN"):
        D.fit_boundary(sampled, scores)
    with pytest.raises(ShapeError, match="1999 scores for 2000 codes"):
        D.fit_boundary(sampled, sampled[1:, 0])
    with pytest.raises(ConfigError, match="all 2000 scores are 1"):
        D.fit_boundary(sampled, np.ones(2000))
    with pytest.raises(ConfigError, match="takes 0 per side"):
        D.fit_boundary(sampled[:20], sampled[:20, 0], ratio=0.02)
