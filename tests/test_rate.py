"""Rate control: --quality, --max-size and --ratio pick the latent step that meets them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentpack.cli import cli
from latentpack.codec.rate import RateTarget, bisect_steps, step_grid

# A small decoder and many latents, so that the latents are a large part of the file (HDF5 allocates
# space in blocks of about 2 KiB: a few hundred bytes of latents would not move the file size).
ARGS = ["--arch", "mlp", "--filters", "8", "-y", "64", "--epochs", "10", "--batch-size", "16", "--seed", "3",
        "--objective", "mse", "--weights", "float32"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_grid_is_coarsest_first_in_quarter_octaves() -> None:
    grid = step_grid(2.0)
    assert grid[0] == 2.0 and grid[4] == pytest.approx(1.0) and grid[-1] == pytest.approx(2.0 / 4096)
    assert all(a > b for a, b in zip(grid, grid[1:]))
    assert step_grid(0.0)[0] == 1.0  # degenerate latents still give a usable grid
    # no step so fine that the largest latent would be clipped to the coder's alphabet
    from latentpack.codec.entropy.latent_coding import MAX_SYMBOLS

    clipped = step_grid(2.0, latent_max=40.0)
    assert min(clipped) >= 40.0 / (MAX_SYMBOLS // 2 - 1) and len(clipped) < len(grid)
    assert clipped == grid[: len(clipped)]


@pytest.mark.parametrize("threshold", [0, 3, 7, 12])
def test_bisection_finds_the_edge(threshold: int) -> None:
    grid = list(range(13))
    calls = []

    def fine_enough(i):
        calls.append(i)
        return i >= threshold

    assert bisect_steps(grid, fine_enough, want_coarsest=True) == threshold
    assert len(calls) <= 6  # log2(13) + the end check, not a scan
    assert bisect_steps(grid, lambda i: i <= threshold, want_coarsest=False) == threshold
    assert bisect_steps(grid, lambda i: False, want_coarsest=True) is None
    assert bisect_steps(grid, lambda i: False, want_coarsest=False) is None


def test_one_target_at_a_time() -> None:
    with pytest.raises(ValueError, match="one rate target"):
        RateTarget(psnr=30.0, max_bytes=1000)
    with pytest.raises(ValueError, match="quality"):
        RateTarget(psnr=float("nan"))
    assert RateTarget(ratio=8).byte_budget(8000) == 1000
    assert RateTarget(max_bytes=5).byte_budget(8000) == 5
    assert RateTarget(psnr=30.0).byte_budget(8000) is None


@pytest.fixture(scope="module")
def trained_sizes(tmp_path_factory):
    """400 smooth ramps, and the summary of their default archive."""
    from conftest import ramp_folder

    root = tmp_path_factory.mktemp("rate")
    folder = ramp_folder(root / "images", 400, seed=1)
    base = root / "base.lpk"
    assert invoke("compress", folder, "-o", base, *ARGS).exit_code == 0
    summary = json.loads(invoke("inspect", base, "--json").output)
    assert summary["bytes"]["breakdown"]["latents"] > 0.25 * summary["bytes"]["archive"]
    return folder, summary


def test_max_size_is_met_and_recorded(trained_sizes, tmp_path: Path) -> None:
    folder, base = trained_sizes
    # a third of the latents' bytes less than the default: only a coarser step fits
    budget = base["bytes"]["archive"] - base["bytes"]["breakdown"]["latents"] // 3
    out = tmp_path / "small.lpk"
    result = invoke("compress", folder, "-o", out, *ARGS, "--max-size", budget)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size <= budget
    summary = json.loads(invoke("inspect", out, "--json").output)
    rc = summary["rate_control"]
    assert rc["target"] == "bytes" and rc["value"] == budget and rc["reached"] is True
    assert summary["quality"]["mean_psnr"] <= base["quality"]["mean_psnr"] + 1e-9


def test_a_roomy_size_keeps_the_quality(trained_sizes, tmp_path: Path) -> None:
    # more room than the default archive needs: the finest usable step, never a worse one
    folder, base = trained_sizes
    out = tmp_path / "roomy.lpk"
    assert invoke("compress", folder, "-o", out, *ARGS, "--max-size", base["bytes"]["archive"] + 20_000).exit_code == 0
    summary = json.loads(invoke("inspect", out, "--json").output)
    assert summary["quality"]["mean_psnr"] >= base["quality"]["mean_psnr"] - 0.1


def test_a_size_target_plans_a_smaller_latent(trained_sizes, tmp_path: Path) -> None:
    # without -y, a budget that the default y cannot meet buys fewer latents per image
    folder, base = trained_sizes
    args = [a for a in ARGS]
    del args[args.index("-y"): args.index("-y") + 2]
    budget = base["bytes"]["archive"] - base["bytes"]["breakdown"]["latents"] + 400 * 2
    out = tmp_path / "planned.lpk"
    result = invoke("compress", folder, "-o", out, *args, "--max-size", budget)
    assert result.exit_code == 0, result.output
    summary = json.loads(invoke("inspect", out, "--json").output)
    assert out.stat().st_size <= budget
    assert 2 <= summary["formula"]["y"] < 16  # 16x16 greyscale: the default y is 16


def test_a_size_target_stores_float16_weights_unless_told(trained_sizes, tmp_path: Path) -> None:
    folder, base = trained_sizes
    args = ARGS[: ARGS.index("--weights")]
    out = tmp_path / "half.lpk"
    assert invoke("compress", folder, "-o", out, *args, "--max-size", base["bytes"]["archive"]).exit_code == 0
    summary = json.loads(invoke("inspect", out, "--json").output)
    assert summary["formula"]["weight_dtype"] == "float16" and summary["format_version"] == "1.4"
    # the same decoder costs half: the file shrinks by about the decoder's float32 bytes / 2
    assert summary["bytes"]["breakdown"]["decoder"] < 0.6 * base["bytes"]["breakdown"]["decoder"]
    # a quality target keeps float32 (nothing to fit)
    out32 = tmp_path / "q32.lpk"
    target = base["quality"]["mean_psnr"] - 3.0
    assert invoke("compress", folder, "-o", out32, *args, "--quality", target).exit_code == 0
    assert json.loads(invoke("inspect", out32, "--json").output)["formula"]["weight_dtype"] == "float32"


def test_ratio_is_a_size_target(trained_sizes, tmp_path: Path) -> None:
    folder, base = trained_sizes
    ratio = base["bytes"]["raw"] / (base["bytes"]["archive"] - base["bytes"]["breakdown"]["latents"] // 3)
    out = tmp_path / "ratio.lpk"
    assert invoke("compress", folder, "-o", out, *ARGS, "--ratio", ratio).exit_code == 0
    assert out.stat().st_size <= int(base["bytes"]["raw"] // ratio)


def test_impossible_size_is_an_error_and_writes_nothing(trained_sizes, tmp_path: Path) -> None:
    folder, _ = trained_sizes
    out = tmp_path / "tiny.lpk"
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(out), *ARGS, "--max-size", "1000"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "1,000 bytes" in result.output and "decoder" in result.output
    assert not out.exists()


def test_quality_target_takes_the_coarsest_step_that_reaches_it(trained_sizes, tmp_path: Path) -> None:
    folder, base = trained_sizes
    target = base["quality"]["mean_psnr"] - 3.0  # reachable: the default step is within 0.1 dB of float
    out = tmp_path / "q.lpk"
    assert invoke("compress", folder, "-o", out, *ARGS, "--quality", target).exit_code == 0
    summary = json.loads(invoke("inspect", out, "--json").output)
    rc = summary["rate_control"]
    assert rc["reached"] is True and summary["quality"]["mean_psnr"] >= target
    assert summary["bytes"]["archive"] < base["bytes"]["archive"]  # a lower target costs fewer bytes


def test_unreachable_quality_warns_but_writes(trained_sizes, tmp_path: Path) -> None:
    folder, _ = trained_sizes
    out = tmp_path / "hi.lpk"
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(out), *ARGS, "--quality", "90"])
    assert result.exit_code == 0
    assert "not reached" in result.stderr
    rc = json.loads(invoke("inspect", out, "--json").output)["rate_control"]
    assert rc["reached"] is False and rc["got"] < 90


def test_rate_targets_refuse_lossless(trained_sizes, tmp_path: Path) -> None:
    folder, _ = trained_sizes
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "x.lpk"), "--lossless",
                                      "--quality", "30"])
    assert result.exit_code == 1 and "rate target" in result.output
