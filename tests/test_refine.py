"""Decoder refinement: the decoder fine-tuned on the quantised latents it will decode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from latentpack.cli import cli
from latentpack.formats.reader import read_archive
from latentpack.ops.inspect import _refine

ARGS = ["--arch", "mlp", "--filters", "8", "--epochs", "10", "--batch-size", "16", "--seed", "3", "--weights", "float32"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ramps(tmp_path_factory) -> Path:
    from conftest import ramp_folder

    return ramp_folder(tmp_path_factory.mktemp("refine") / "images", 300, seed=1)


@pytest.fixture(scope="module")
def pair(ramps, tmp_path_factory):
    """The same training with and without refinement."""
    out = tmp_path_factory.mktemp("pair")
    plain, refined = out / "plain.lpk", out / "refined.lpk"
    assert invoke("compress", ramps, "-o", plain, *ARGS, "--refine-steps", "0").exit_code == 0
    assert invoke("compress", ramps, "-o", refined, *ARGS).exit_code == 0
    return read_archive(plain), read_archive(refined), refined


def test_refinement_lowers_the_error_and_is_recorded(pair) -> None:
    plain, refined, _ = pair
    assert "refine" not in plain.training
    r = refined.training["refine"]
    assert r["kept"] is True and r["mse_after"] < r["mse_before"]
    # a tenth of the training steps by default
    assert r["steps"] == round(0.1 * refined.training["epochs"] * refined.training["steps_per_epoch"])
    # same training, same latents: only the decoder moved, and the measured quality rose with it
    np.testing.assert_array_equal(plain.latents.quantized.stream, refined.latents.quantized.stream)
    assert refined.training["latent_step"] == plain.training["latent_step"]
    assert refined.quality.mean_psnr > plain.quality.mean_psnr
    changed = [not np.array_equal(a, b) for (_, a), (_, b) in
               zip(sum(plain.decoder.weights.values(), []), sum(refined.decoder.weights.values(), []))]
    assert any(changed)


def test_refined_archive_extracts_to_its_recorded_quality(pair, tmp_path: Path, ramps) -> None:
    _, refined, path = pair
    result = invoke("verify", path, ramps, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mean_psnr"] == pytest.approx(refined.quality.mean_psnr, abs=0.02)


def test_inspect_shows_the_refinement(pair) -> None:
    _, _, path = pair
    text = invoke("inspect", path).output
    assert "decoder refined" in text and "kept" in text
    assert json.loads(invoke("inspect", path, "--json").output)["refine"]["kept"] is True


def test_size_target_stays_within_budget_after_refinement(ramps, pair, tmp_path: Path) -> None:
    plain, _, _ = pair
    out = tmp_path / "sized.lpk"
    budget = 44_000
    result = invoke("compress", ramps, "-o", out, *ARGS, "-y", "16", "--max-size", budget)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size <= budget
    contents = read_archive(out)
    assert contents.training["rate_control"]["reached"] is True
    assert "refine" in contents.training


def test_quality_target_records_what_the_refined_decoder_reached(ramps, pair, tmp_path: Path) -> None:
    plain, _, _ = pair
    out = tmp_path / "q.lpk"
    target = plain.quality.mean_psnr - 2.0
    assert invoke("compress", ramps, "-o", out, *ARGS, "--quality", target).exit_code == 0
    contents = read_archive(out)
    rc = contents.training["rate_control"]
    assert rc["reached"] is True and rc["got"] == pytest.approx(contents.quality.mean_psnr, abs=1e-3)


def test_generated_codes_are_not_refined(ramps, tmp_path: Path) -> None:
    out = tmp_path / "index.lpk"
    assert invoke("compress", ramps, "-o", out, *ARGS, "--codes", "index", "-y", "8").exit_code == 0
    assert "refine" not in read_archive(out).training


def test_refine_needs_one_latent_vector_per_image() -> None:
    from latentpack.codec.design import design_codec
    from latentpack.codec.keras.train import refine_decoder

    conv = design_codec([(28, 28), (30, 20)], "RGB")
    with pytest.raises(ValueError, match="mlp or dense"):
        refine_decoder(None, conv, None, np.zeros((2, 1, 1, 4), np.float32), steps=1, batch_size=1, seed=0)


@pytest.mark.parametrize("record", [None, "x", {"kept": "yes"}, {"kept": True, "steps": "1", "mse_before": 1.0,
                                                                  "mse_after": 0.5}])
def test_a_malformed_record_is_ignored(record) -> None:
    assert _refine({"refine": record}) is None
