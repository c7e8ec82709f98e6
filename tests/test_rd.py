"""Rate-distortion training (the lossy default): lambda trades bits for error, targets steer it, the rate is honest."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from latentpack.cli import cli
from latentpack.codec import rd

ARGS = ["--arch", "mlp", "--filters", "64", "-y", "16", "--epochs", "20", "--batch-size", "16", "--seed", "2"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def summary(path: Path) -> dict:
    return json.loads(invoke("inspect", path, "--json").output)


def record(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        raw = f["training/config"][()]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


@pytest.fixture(scope="module")
def ramps(tmp_path_factory) -> Path:
    from conftest import ramp_folder

    return ramp_folder(tmp_path_factory.mktemp("rd") / "images", 300, seed=4)


@pytest.fixture(scope="module")
def by_lambda(ramps, tmp_path_factory) -> dict[float, Path]:
    out = {}
    for lmbda in (30.0, 3000.0):
        path = tmp_path_factory.mktemp("rd") / f"l{lmbda:g}.lpk"
        result = invoke("compress", ramps, "-o", path, *ARGS, "--lambda", lmbda, "--refine-steps", "0")
        assert result.exit_code == 0, result.output
        out[lmbda] = path
    return out


def test_lambda_trades_bits_for_quality(by_lambda) -> None:
    low, high = (summary(by_lambda[k]) for k in (30.0, 3000.0))
    assert high["bytes"]["breakdown"]["latents"] > 1.3 * low["bytes"]["breakdown"]["latents"]
    assert high["quality"]["mean_psnr"] > low["quality"]["mean_psnr"] + 0.3
    rec = record(by_lambda[3000.0])
    assert rec["objective"] == "rd" and rec["rate_distortion"]["lambda"] == pytest.approx(3000.0)
    assert rec["latent_step"] == 1.0 and rec["rate_distortion"]["target"] is None


def test_predicted_rate_matches_the_coded_latents(by_lambda) -> None:
    # the learned density's bits for the rounded latents against the range-coded stream itself
    for path in by_lambda.values():
        predicted = record(path)["rate_distortion"]["predicted_bits"]
        with h5py.File(path, "r") as f:
            coded = f["latents/stream"].size * 32
        assert abs(predicted - coded) <= 0.02 * coded + 64, (predicted, coded)  # 64: the stream's last words


def test_psnr_band_on_an_easy_folder(by_lambda) -> None:
    # smooth ramps are easy: a high lambda must reconstruct them well, a low one still recognisably
    assert summary(by_lambda[3000.0])["quality"]["mean_psnr"] >= 27.0
    assert 20.0 <= summary(by_lambda[30.0])["quality"]["mean_psnr"] < 40.0


@pytest.mark.parametrize("fraction", [0.6, 0.85])
def test_max_size_is_never_exceeded(ramps, by_lambda, tmp_path: Path, fraction: float) -> None:
    base = summary(by_lambda[3000.0])
    budget = int(base["bytes"]["archive"] * fraction)
    out = tmp_path / "sized.lpk"
    result = invoke("compress", ramps, "-o", out, *ARGS, "--max-size", budget)
    if result.exit_code != 0:  # a budget below what the decoder alone needs is refused, and nothing is written
        assert "cannot be made" in result.output and not out.exists()
        return
    assert out.stat().st_size <= budget
    rec = record(out)
    assert rec["rate_distortion"]["target"][0] == "bits_per_sample"
    assert rec["rate_control"]["target"] == "bytes" and rec["rate_control"]["reached"] is True


def test_quality_target_steers_lambda(ramps, tmp_path: Path) -> None:
    out = tmp_path / "q.lpk"
    result = invoke("compress", ramps, "-o", out, *ARGS, "--quality", 30)
    assert result.exit_code == 0, result.output
    rec = record(out)
    steps = rec["rate_distortion"]["lambda_steps"]
    assert rec["rate_distortion"]["target"] == ["psnr", 30 + rd.PSNR_MARGIN]
    assert steps[0] == pytest.approx(rd.lambda_for_psnr(30.0), rel=1e-3) and len(steps) > 2
    got = summary(out)["quality"]["mean_psnr"]
    assert got >= 30.0 or rec["rate_control"]["reached"] is False


def test_decoding_is_the_same_with_one_and_two_threads(by_lambda, tmp_path: Path) -> None:
    path = by_lambda[3000.0]
    outputs = []
    for threads in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                   PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        out = tmp_path / f"t{threads}"
        subprocess.run([sys.executable, "-m", "latentpack", "extract", str(path), "-o", str(out)], env=env,
                       check=True, capture_output=True)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.rglob("*.png"))})
    assert outputs[0] == outputs[1] and len(outputs[0]) == 300


def test_mse_objective_is_still_there(ramps, tmp_path: Path) -> None:
    out = tmp_path / "mse.lpk"
    assert invoke("compress", ramps, "-o", out, *ARGS, "--objective", "mse").exit_code == 0
    rec = record(out)
    assert "rate_distortion" not in rec and rec["latent_step"] != 1.0


@pytest.mark.parametrize("extra", [["--objective", "mse"], ["--lossless"], ["--codes", "index"]])
def test_lambda_needs_rate_distortion_training(ramps, tmp_path: Path, extra) -> None:
    result = CliRunner().invoke(cli, ["compress", str(ramps), "-o", str(tmp_path / "x.lpk"), "--lambda", "10",
                                      *ARGS, *extra])
    assert result.exit_code == 1 and "lmbda" in result.output and not (tmp_path / "x.lpk").exists()


def test_step_grid_surrounds_the_trained_step() -> None:
    grid = rd.rd_step_grid()
    assert grid[0] == 16.0 and grid[-1] == 0.25 and 1.0 in grid
    assert all(a > b for a, b in zip(grid, grid[1:]))
    assert min(rd.rd_step_grid(latent_max=4000.0)) >= 4000.0 / 2047


def test_steering_targets() -> None:
    assert rd.steering_target() is None
    assert rd.steering_target(psnr=30.0) == ("psnr", 30.0 + rd.PSNR_MARGIN)
    kind, value = rd.steering_target(latent_bytes=1000, samples=8000)
    assert kind == "bits_per_sample" and value == pytest.approx(rd.RATE_MARGIN * 1.0)
    assert rd.lambda_for_psnr(37.0) == pytest.approx(10 * rd.lambda_for_psnr(27.0))
    assert np.isfinite(rd.steering_target(latent_bytes=-5, samples=10)[1])


def test_latents_all_equal_are_coded() -> None:
    # a coarse step can round every latent to 0: a one-symbol table is padded to two, and decodes
    from latentpack.codec.entropy.latent_coding import decode_latents, encode_latents

    q = np.zeros(64 * 4, np.int32)
    offsets, shapes = np.arange(5, dtype=np.int64) * 64, np.tile([[1, 1, 64]], (4, 1)).astype(np.int32)
    coded = encode_latents(q, offsets, shapes, 16.0)
    assert coded.counts.shape[1] == 2 and np.array_equal(decode_latents(coded, offsets, shapes), q)
