"""Fitting named directions with a scorer (wplus.edits.attribute_fit) and the script that ships them
(benchmarks/fit_shipped_directions.py), with a stand-in scorer: the attribute probe is not in this branch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import fake_named_assets
from wplus import shipped
from wplus.edits.attribute_fit import fit_attribute_directions, score_samples
from wplus.edits.directions import load_direction
from wplus.errors import ConfigError, ShapeError

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "fit_shipped_directions.py"


def stand_in(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """For tests only: colour and layout statistics of the image stand in for the probe's attributes."""
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    half = images.shape[-2] // 2
    return {
        "smile": images.mean((1, 2, 3)),
        "glasses": (r - (g + b) / 2).mean((1, 2)),
        "jaw": images[:, :, :half].mean((1, 2, 3)) - images[:, :, half:].mean((1, 2, 3)),
        "hair_style": torch.stack([r.mean((1, 2)), g.mean((1, 2)), b.mean((1, 2)), -r.mean((1, 2))], 1),
    }


@pytest.fixture(scope="module")
def samples(tiny_generator):
    return score_samples(tiny_generator, stand_in, range(300), batch_size=128)


def _script():
    spec = importlib.util.spec_from_file_location("fit_shipped_directions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_score_samples_renders_seeded_codes_and_splits_class_scores(tiny_generator, samples):
    assert samples.w.shape == (300, tiny_generator.w_dim) and list(samples.seeds[:3]) == [0, 1, 2]
    assert set(samples.scores) == {"smile", "glasses", "jaw", "hair_style-bald", "hair_style-short",
                                   "hair_style-long", "hair_style-fringe"}  # fmt: skip
    again = score_samples(tiny_generator, stand_in, [0, 1, 2])
    np.testing.assert_allclose(again.scores["smile"], samples.scores["smile"][:3], rtol=1e-5)
    with pytest.raises(ShapeError, match="'smile' has shape"):
        score_samples(tiny_generator, lambda x: {"smile": torch.zeros(len(x), 2, 2)}, [0])


def test_fitted_directions_separate_and_move_their_attribute(tiny_generator, samples):
    fitted = fit_attribute_directions(tiny_generator, stand_in, samples, attributes=["smile", "glasses", "jaw"],
                                      ratio=0.2, eval_seeds=range(5000, 5032))  # fmt: skip
    assert [f.name for f in fitted] == ["smile", "glasses", "jaw"]
    for f in fitted:
        assert f.boundary.val_accuracy > 0.7, (f.name, f.boundary.val_accuracy)
        assert np.linalg.norm(f.boundary.normal) == pytest.approx(1.0) and f.sigma > 0
        kept = "conditioned" if f.conditions else "plain"
        assert f.evaluation["plain"]["effects"][f.name] > 0  # one sigma along it raises the attribute's score
        if "conditioned" in f.evaluation:
            ev = f.evaluation
            better = ev["conditioned"]["selectivity"] >= 1.1 * ev["plain"]["selectivity"]
            assert kept == ("conditioned" if better else "plain") and kept in f.choice


def test_conditioning_all_and_none(tiny_generator, samples):
    kw = dict(attributes=["glasses"], ratio=0.2, eval_seeds=range(5000, 5016))
    (cond,) = fit_attribute_directions(tiny_generator, stand_in, samples, condition="all", **kw)
    others = [k for k in samples.scores if k != "glasses"]
    assert cond.conditions == others and cond.boundary.num_conditions == len(others)
    plain = fit_attribute_directions(tiny_generator, stand_in, samples, condition="none", attributes=others, ratio=0.2)
    for p in plain:  # the conditioned boundary is orthogonal to every other plain boundary
        assert p.conditions == [] and abs(float(cond.boundary.normal.ravel() @ p.boundary.normal.ravel())) < 1e-6
    with pytest.raises(ConfigError, match="were not scored; the scorer gives"):
        fit_attribute_directions(tiny_generator, stand_in, samples, attributes=["beard"])
    with pytest.raises(ConfigError, match="among the samples"):
        fit_attribute_directions(tiny_generator, stand_in, samples, attributes=["smile"], eval_seeds=[5])


def test_script_writes_named_assets_and_keeps_other_methods(tiny_generator, tmp_path, monkeypatch):
    model = fake_named_assets(tmp_path, tiny_generator, monkeypatch, names=("smile",))  # made otherwise
    script = _script()
    kw = dict(num=200, ratio=0.2, condition="auto", model_sha256="abc", scorer_name="stand-in scorer",
              eval_seeds=range(5000, 5016), attributes=["smile", "glasses"])  # fmt: skip
    entries = script.fit_and_write(tiny_generator, stand_in, tmp_path, **kw)
    assert [e.name for e in entries] == ["smile", "smile-fit", "glasses"]
    listed = shipped.named_directions()
    assert [d.name for d in listed] == ["smile", "smile-fit", "glasses"] and listed[0].method == "test"
    glasses = load_direction("cartoon-faces-64:glasses", tiny_generator, model_sha256=shipped.SHIPPED_SHA256)
    meta = glasses.metadata
    assert meta["made_by"] == script.MADE_BY and meta["scorer"] == "stand-in scorer" and meta["num_samples"] == 200
    assert 0 <= meta["val_accuracy"] <= 1 and meta["num_positive"] == 40 and "plain" in meta["evaluation"]
    low, high = listed[2].strength
    assert low == -high and high == pytest.approx(3 * meta["sigma"], abs=0.01)
    assert "val acc" in listed[2].method and "stand-in scorer" in listed[2].method
    # Run again: this script's entries are replaced, not added twice.
    script.fit_and_write(tiny_generator, stand_in, tmp_path, **{**kw, "condition": "none", "num": 100})
    index = json.loads((tmp_path / "cartoon-faces-64-directions.json").read_text())
    assert [d["name"] for d in index["directions"]] == ["smile", "smile-fit", "glasses"]
    assert model.is_file()


def test_the_probe_scores_what_the_script_fits(tiny_generator):
    script = _script()
    scores = script.probe_scorer(torch.device("cpu"))(torch.zeros(2, 3, 64, 64))
    assert set(scores) == set(script.PROBE_ATTRIBUTES) and "brow_tilt" not in scores  # the brows are not learnt
    assert scores["smile"].shape == (2,) and scores["hair_style"].shape == (2, 4)  # one fit per hair style
