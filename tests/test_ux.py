"""What tar, zstd and cwebp users expect (issue 14): dry runs, quiet and verbose, progress in a log,
streams and patterns, the file format of extracted images, the device, the help pages."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentpack.cli import cli
from latentpack.progress import LineProgress

from conftest import gradient_image

FAST = ["-y", "4", "--epochs", "3", "--batch-size", "8", "--seed", "1", "--refine-steps", "0"]


def invoke(*args, env: dict | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """24 ramps in two subfolders, and 4 JPEG ramps."""
    root = tmp_path_factory.mktemp("ux") / "images"
    rng = np.random.default_rng(5)
    for i in range(24):
        sub = root / ("train" if i % 2 else "test")
        sub.mkdir(parents=True, exist_ok=True)
        gradient_image(rng).save(sub / f"{i:04d}.png")
    for i in range(4):
        gradient_image(rng).convert("RGB").save(root / f"photo{i}.jpg", quality=80)
    return root


@pytest.fixture(scope="module")
def archive(folder: Path, tmp_path_factory) -> tuple[Path, object]:
    """The folder compressed once, with -v and progress lines every step (stderr not a terminal)."""
    out = tmp_path_factory.mktemp("ux-archive") / "ux.lpk"
    result = invoke("compress", folder, "-o", out, *FAST, "-v", env={"LATENTPACK_PROGRESS_INTERVAL": "0"})
    assert result.exit_code == 0, result.output
    return out, result


# --- compress --dry-run and the plan line ---------------------------------------------------------

def test_dry_run_prints_the_plan_and_estimates_and_writes_nothing(folder: Path, tmp_path: Path) -> None:
    target = tmp_path / "never.lpk"
    result = invoke("compress", folder, "-o", target, *FAST, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Plan: ") and "y=4" in lines[0] and "3 epochs" in lines[0], lines
    assert any(line.startswith("Timed: ") and "ms per step" in line for line in lines), lines
    assert any(line.startswith("Estimate: training about") for line in lines), lines
    assert any(line.startswith("Estimate: archive about") for line in lines), lines
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_dry_run_json_has_the_design_and_the_estimates(folder: Path, tmp_path: Path) -> None:
    result = invoke("compress", folder, "-o", tmp_path / "a.lpk", *FAST, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["latent_dims"] == 4 and plan["epochs"] == 3 and plan["w"] == 28
    assert plan["steps"] == 3 * 4  # 28 images in batches of 8
    assert plan["seconds_per_step"] > 0 and plan["training_seconds"] > 0
    assert plan["estimated_bytes"] > plan["decoder_bytes"] > 0
    assert plan["device"].startswith("CPU")
    assert plan["after_seconds"] > 0 and plan["refine_seconds"] == 0  # encoding and measuring; no refinement
    parts = (plan["training_seconds"] + plan["after_seconds"] + plan["startup_seconds"]
             + 2 * plan["check_seconds"])
    assert plan["total_seconds"] == pytest.approx(parts)


def test_dry_run_plans_refinement_from_its_own_timed_steps(folder: Path, tmp_path: Path) -> None:
    options = [a for a in FAST if a not in ("--refine-steps", "0")] + ["--refine-steps", "5"]
    result = invoke("compress", folder, "-o", tmp_path / "a.lpk", *options, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["refine_steps"] == 8 and plan["refine_seconds"] > 0  # 5 asked: two whole passes of 4 steps run
    assert plan["total_seconds"] > plan["training_seconds"] + plan["refine_seconds"] + plan["after_seconds"]
    text = invoke("compress", folder, "-o", tmp_path / "a.lpk", *options, "--dry-run").stdout
    assert "for refinement, encoding and measuring" in text, text


def test_the_density_refit_is_timed_and_counted_in_the_plan(folder: Path, tmp_path: Path, monkeypatch) -> None:
    from latentpack.codec.keras import timing

    seen: list[tuple[int, float]] = []
    real = timing.time_density_refit

    def timed(design, vectors, seed=0):
        seen.append((vectors, real(design, vectors, seed=seed)))
        return seen[-1][1]

    monkeypatch.setattr(timing, "time_density_refit", timed)
    result = invoke("compress", folder, "-o", tmp_path / "a.lpk", *FAST, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    (vectors, seconds), = seen
    assert vectors == 28 and seconds > 0  # one latent vector per image
    assert json.loads(result.stdout)["after_seconds"] > seconds  # encoding and measuring, and the refit
    seen.clear()
    mse = invoke("compress", folder, "-o", tmp_path / "a.lpk", *FAST, "--objective", "mse", "--dry-run")
    assert mse.exit_code == 0 and seen == []  # no learned density to refit


def test_dry_run_lists_every_bad_file_before_importing_tensorflow(folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    gradient_image(np.random.default_rng(0)).save(bad / "good.png")
    (bad / "a.png").write_bytes(b"not an image")
    (bad / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    code = ("import sys; from latentpack.cli import cli\n"
            "try:\n    cli(['compress', sys.argv[1], '-o', sys.argv[2], '--dry-run'])\n"
            "except SystemExit as e:\n    print('tf' if 'tensorflow' in sys.modules else 'no-tf'); sys.exit(e.code)")
    run = subprocess.run([sys.executable, "-c", code, str(bad), str(tmp_path / "x.lpk")], capture_output=True,
                         text=True)
    assert run.returncode == 1, run.stderr
    assert "a.png" in run.stderr and "b.jpg" in run.stderr and "\nError: 2 file(s)" in run.stderr
    assert run.stdout.strip() == "no-tf"


def test_dry_run_times_patch_training_for_mixed_sizes(tmp_path: Path) -> None:
    from conftest import make_mixed_folder

    mixed = make_mixed_folder(tmp_path / "mixed")
    result = invoke("compress", mixed, "-o", tmp_path / "a.lpk", "--epochs", "2", "--batch-size", "4", "--dry-run",
                    "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["arch"] == "conv" and plan["batch"] == "4 patches" and plan["refine_steps"] == 0
    assert plan["seconds_per_step"] > 0 and plan["timed_steps"] >= 10
    assert plan["after_seconds"] > 0 and plan["refine_seconds"] == 0


def test_dry_run_plans_the_pixel_model_too(folder: Path, tmp_path: Path) -> None:
    result = invoke("compress", folder, "-o", tmp_path / "a.lpk", "--lossless", "--epochs", "1", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["coder"] == "pixel-model" and plan["latent_dims"] == 0 and plan["steps"] >= 1
    assert plan["estimated_bytes"] is None and plan["seconds_per_step"] > 0


def test_compress_prints_the_same_plan_line_before_training(folder: Path, archive, tmp_path: Path) -> None:
    dry = invoke("compress", folder, "-o", tmp_path / "a.lpk", *FAST, "--dry-run")
    plan_line = dry.stdout.splitlines()[0]
    stderr = archive[1].stderr.splitlines()
    assert plan_line in stderr
    assert stderr.index(plan_line) < min(i for i, line in enumerate(stderr) if line.startswith("Training: "))


# --- progress in a log, -q, -v ---------------------------------------------------------------------

def test_progress_without_a_terminal_is_lines_with_counts_and_eta(archive) -> None:
    stderr = archive[1].stderr.splitlines()
    training = [line for line in stderr if line.startswith("Training: ")]
    assert training[0] == "Training: 0/12" and training[-1].startswith("Training: 12/12 (100%)")
    assert any("ETA" in line for line in training), training
    assert any(line.startswith("Checking images: 28/28") for line in stderr)


def test_line_progress_writes_at_a_steady_interval() -> None:
    now = [0.0]
    lines: list[str] = []
    with LineProgress("Stage", 100, lines.append, interval=10, clock=lambda: now[0]) as bar:
        for _ in range(100):
            now[0] += 1
            bar.update(1)
    assert lines[0] == "Stage: 0/100"
    assert lines[1] == "Stage: 10/100 (10%), 0:10 elapsed, ETA 1:30"
    assert len(lines) == 1 + 10 + 1 and lines[-1] == "Stage: 100/100 (100%), 1:40 elapsed, done"


def test_verbose_adds_timings_and_the_device(archive) -> None:
    stderr = archive[1].stderr
    assert "Timings: read " in stderr and "Latent step: " in stderr
    assert "Training on CPU" in stderr and "Trained on: CPU" in stderr
    assert "\nDecoder: Flatten -> Dense(" in stderr and "\nData: 28 images, raw " in stderr


def test_quiet_silences_everything_but_errors(folder: Path, archive, tmp_path: Path) -> None:
    out = tmp_path / "q.lpk"
    result = invoke("compress", folder, "-o", out, *FAST, "-q")
    assert result.exit_code == 0 and result.output == "" and out.exists()
    result = invoke("extract", archive[0], "-o", tmp_path / "x", "-q")
    assert result.exit_code == 0 and result.output == "" and (tmp_path / "x" / "train" / "0001.png").exists()
    result = invoke("extract", archive[0], "-o", tmp_path / "y", "-q", "nope*.png")
    assert result.exit_code == 1 and result.output == "Error: not in the archive: nope*.png\n"
    result = invoke("verify", archive[0], "-q", "-v")
    assert result.exit_code == 2 and "cannot be combined" in result.output


@pytest.mark.parametrize("command", ["compress", "extract", "inspect", "list", "verify", "bench"])
def test_every_command_takes_quiet_and_verbose(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "-q, --quiet" in result.output and "-v, --verbose" in result.output


# --- streams, patterns, formats -------------------------------------------------------------------

def test_extract_to_stdout_writes_exactly_one_image(archive, tmp_path: Path) -> None:
    result = invoke("extract", archive[0], "-o", "-", "train/0001.png")
    assert result.exit_code == 0, result.output
    image = Image.open(io.BytesIO(result.stdout_bytes))
    assert image.format == "PNG" and image.size == (16, 16)
    assert not Path("-").exists()
    result = invoke("extract", archive[0], "-o", "-", "train/0001.png", "test/0000.png")
    assert result.exit_code == 2 and "exactly one" in result.output
    result = invoke("extract", archive[0], "-o", "-", "train/*")
    assert result.exit_code == 1 and "selects 12 images" in result.output


def test_extract_to_a_pipe_through_the_console_script(archive, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "latentpack", "extract", str(archive[0]), "-o", "-", "test/0000.png"],
                         capture_output=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(b"\x89PNG\r\n\x1a\n")


def test_names_are_patterns_or_folder_prefixes(archive, tmp_path: Path) -> None:
    result = invoke("extract", archive[0], "-o", tmp_path / "a", "train/000[13].png", "test")
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*.png"))
    assert written == ["test/" + f"{i:04d}.png" for i in range(0, 24, 2)] + ["train/0001.png", "train/0003.png"]
    result = invoke("extract", archive[0], "-o", tmp_path / "b", "train/*.png", "9*.png", "nothing/")
    assert result.exit_code == 1 and result.output == "Error: not in the archive: 9*.png, nothing/\n"
    assert not (tmp_path / "b").exists()


def test_jpeg_reconstructions_come_back_as_png_unless_original_is_asked(archive, tmp_path: Path) -> None:
    assert invoke("extract", archive[0], "-o", tmp_path / "auto", "photo*").exit_code == 0
    assert invoke("extract", archive[0], "-o", tmp_path / "orig", "--format", "original", "photo*").exit_code == 0
    assert invoke("extract", archive[0], "-o", tmp_path / "png", "--format", "png", "train/0001.png").exit_code == 0
    assert Image.open(tmp_path / "auto" / "photo0.jpg").format == "PNG"
    assert Image.open(tmp_path / "orig" / "photo0.jpg").format == "JPEG"
    assert Image.open(tmp_path / "png" / "train" / "0001.png").format == "PNG"
    import latentpack

    with latentpack.open(archive[0]) as a:  # PNG holds the reconstruction exactly; JPEG degrades it again
        assert np.array_equal(np.asarray(Image.open(tmp_path / "auto" / "photo0.jpg")), a["photo0.jpg"])
        assert not np.array_equal(np.asarray(Image.open(tmp_path / "orig" / "photo0.jpg")), a["photo0.jpg"])


# --- inspect of a lossless archive, the device in the record --------------------------------------

def test_lossless_inspect_says_exact_instead_of_a_worst_image(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "exact.lpk"
    result = invoke("compress", folder, "-o", out, "--lossless", "--epochs", "1", "-q")
    assert result.exit_code == 0, result.output
    result = invoke("inspect", out)
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("quality"))
    assert "worst" not in line and "exact: every image" in line
    with h5py.File(out) as f:
        record = json.loads(f["training/config"][()])
    assert record["device"].startswith("CPU (")


def test_the_training_record_names_the_cpu_device(archive) -> None:
    with h5py.File(archive[0]) as f:
        record = json.loads(f["training/config"][()])
    assert record["device"].startswith("CPU ("), record.get("device")


# --- the GPU extra, help pages, the man page, completion ------------------------------------------

def test_the_gpu_extra_installs_tensorflow_with_cuda_and_cpu_installs_are_unchanged() -> None:
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    gpu = [line.strip() for line in cfg["options.extras_require"]["gpu"].splitlines() if line.strip()]
    assert gpu == ['tensorflow[and-cuda]>=2.16; sys_platform == "linux"']
    base = cfg["options"]["install_requires"]
    assert 'tensorflow-cpu>=2.16; sys_platform == "linux" and platform_machine == "x86_64"' in base


def test_help_command_prints_each_commands_help() -> None:
    for command in ("compress", "extract", "list"):
        via_help, via_option = invoke("help", command), invoke(command, "--help")
        assert via_help.exit_code == 0 and via_option.exit_code == 0
        assert via_help.stdout.replace("latentpack help", "latentpack") == via_option.stdout
    assert "Commands:" in invoke("help").stdout
    result = invoke("help", "nope")
    assert result.exit_code == 2 and "no such command 'nope'" in result.output


def test_the_man_page_is_generated_from_the_commands_and_up_to_date() -> None:
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_man.py"
    run = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    page = (tool.parents[1] / "docs" / "latentpack.1").read_text()
    for text in (".SS compress", "\\-\\-dry\\-run", ".SS extract", "_LATENTPACK_COMPLETE=bash_source", ".SH EXIT STATUS"):
        assert text in page, text


def test_shell_completion_completes_commands_and_options() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "_LATENTPACK_COMPLETE": "bash_complete",
           "COMP_WORDS": "latentpack comp", "COMP_CWORD": "1"}
    run = subprocess.run([sys.executable, "-m", "latentpack"], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and "plain,compress" in run.stdout.splitlines(), run.stdout
    env.update(COMP_WORDS="latentpack extract --for", COMP_CWORD="2")
    run = subprocess.run([sys.executable, "-m", "latentpack"], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and "plain,--format" in run.stdout.splitlines(), run.stdout


# --- resumable training -----------------------------------------------------------------------------

def _interrupted_and_resumed(args: list[str], tmp_path: Path, checkpoints: int,
                             stopped_before: int = 200) -> tuple[Path, Path]:
    """``args`` run whole, then interrupted (SIGINT) once ``checkpoints`` trainings wrote one, then resumed."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": os.getcwd(), "LATENTPACK_CHECKPOINT_SECONDS": "0"}
    whole, cut, work = tmp_path / "whole.lpk", tmp_path / "cut.lpk", tmp_path / "work"
    assert subprocess.run(args + ["-o", str(whole), "-q"], env=env, timeout=300).returncode == 0
    # the default action for SIGINT in the child: a shell's background job starts with it ignored, and
    # latentpack rightly keeps a signal ignored that it was started ignoring
    run = subprocess.Popen(args + ["-o", str(cut), "--work-dir", str(work)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while len(list(work.glob("*/state.npz"))) < checkpoints:
        assert run.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.005)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and not cut.exists()
    assert b"the same command with --resume continues it" in stderr
    states = list(work.glob("*/state.npz"))
    with np.load(max(states, key=os.path.getmtime)) as saved:  # the training it stopped in
        assert 0 < int(saved["epoch" if "epoch" in saved else "done"]) < stopped_before  # stopped mid-way
    done = subprocess.run(args + ["-o", str(cut), "--work-dir", str(work), "--resume", "-q"], env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(work.iterdir()) == []  # the checkpoints are dropped once the archive is written
    return whole, cut


def _same_decoder_and_latents(whole: Path, cut: Path) -> tuple[dict, dict]:
    with h5py.File(whole) as a, h5py.File(cut) as b:
        names = []
        a.visit(names.append)
        datasets = [n for n in names if isinstance(a[n], h5py.Dataset) and n.startswith(("decoder", "latents"))]
        assert datasets
        for name in datasets:
            assert np.array_equal(a[name][()], b[name][()]), name
        return json.loads(a["training/config"][()]), json.loads(b["training/config"][()])


def test_resume_continues_an_interrupted_training_to_the_same_archive(folder: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "latentpack", "compress", str(folder), "-y", "4", "--epochs", "20", "--batch-size",
            "8", "--seed", "2"]
    ra, rb = _same_decoder_and_latents(*_interrupted_and_resumed(args, tmp_path, 1))
    assert ra["loss"] == rb["loss"] and len(ra["loss"]) == 20


def test_resume_continues_an_interrupted_refinement_to_the_same_archive(folder: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "latentpack", "compress", str(folder), "-y", "4", "--epochs", "2", "--batch-size",
            "8", "--seed", "2", "--refine-steps", "60"]  # 4 steps an epoch: 15 epochs of refinement
    ra, rb = _same_decoder_and_latents(*_interrupted_and_resumed(args, tmp_path, 2))
    assert ra["refine"]["kept"] == rb["refine"]["kept"] and ra["refine"]["mse_after"] == rb["refine"]["mse_after"]


def test_resume_continues_an_interrupted_pixel_model_training_to_the_same_archive(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for i in range(4):  # 256 samples: every step sees all of them; 3,200 passes = 100 steps
        Image.fromarray((np.arange(64).reshape(8, 8) * 4 + i).astype(np.uint8)).save(tiny / f"{i}.png")
    args = [sys.executable, "-m", "latentpack", "compress", str(tiny), "--lossless", "--epochs", "3200", "--seed", "2"]
    whole, cut = _interrupted_and_resumed(args, tmp_path, 1, stopped_before=100)
    with h5py.File(whole) as a, h5py.File(cut) as b:
        assert "pixels" in a
        for name in ("kernels", "biases", "stream"):
            assert np.array_equal(a["pixels"][name][()], b["pixels"][name][()]), name


def test_a_step_checkpoint_restores_the_variables_and_the_loop_position(tmp_path: Path) -> None:
    import keras

    from latentpack.codec.keras import checkpoint

    x = np.arange(12, dtype=np.float32)
    store = checkpoint.CheckpointStore(tmp_path, resume=True, save_seconds=0)
    v = keras.Variable(np.ones(3, np.float32))
    with checkpoint.activate(store):
        first = checkpoint.steps_for([x], {"steps": 5})
        assert first.restore([v]) is None  # nothing saved yet
        v.assign(np.array([1.0, 2.0, 3.0], np.float32))
        first.save([v], done=3, order=np.array([2, 0, 1]))
        v.assign(np.zeros(3, np.float32))
        again = checkpoint.steps_for([x], {"steps": 5})
        saved = again.restore([v])
        other = checkpoint.steps_for([x + 1], {"steps": 5})  # other data: another key, nothing to resume
        assert other.restore([v]) is None
    assert int(saved["done"]) == 3 and saved["order"].tolist() == [2, 0, 1]
    assert np.asarray(v).tolist() == [1.0, 2.0, 3.0]
    assert first.folder == again.folder != other.folder
