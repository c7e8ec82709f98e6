"""Training on several workers (TF_CONFIG, MultiWorkerMirroredStrategy): the role each worker reads, and two
real workers on loopback ports that train one archive together."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentpack.cli import cli
from latentpack.codec.cluster import ClusterRole, cluster_role
from latentpack.errors import OptionError

ROOT = Path(__file__).resolve().parents[1]
#: Seconds one worker may take (TensorFlow's start-up on a busy 2-core machine is most of it); then both are killed.
WORKER_TIMEOUT = 240


def _config(workers: list[str], task: str = "worker", index: int = 0, chief: str | None = None) -> str:
    cluster = {"worker": workers, **({"chief": [chief]} if chief else {})}
    return json.dumps({"cluster": cluster, "task": {"type": task, "index": index}})


def test_cluster_role_reads_tf_config() -> None:
    two = ["127.0.0.1:1111", "127.0.0.1:2222"]
    assert cluster_role({}) is None and cluster_role({"TF_CONFIG": "  "}) is None
    assert cluster_role({"TF_CONFIG": _config(two, index=1)}) == ClusterRole(2, 1, "worker", 1, tuple(two))
    chief = cluster_role({"TF_CONFIG": _config(two, "chief", 0, chief="127.0.0.1:3333")})
    assert chief.is_chief and chief.workers == 3 and chief.describe() == "worker 0 of 3"
    assert cluster_role({"TF_CONFIG": _config(two, "worker", 0, chief="127.0.0.1:3333")}).rank == 1


@pytest.mark.parametrize("text, says", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', '"cluster" must be'),
    (_config(["127.0.0.1:1111"], index=1), '"task"."index" is 1'),
    (_config(["127.0.0.1:1111"], task="ps"), '"task"."type" is \'ps\''),
    (json.dumps({"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}),
     "job 'ps' is not supported"),
    (_config(["no-port"]), "not a \"host:port\" string"),
    (_config(["h:1", "h:1"]), "appears twice"),
    (json.dumps({"cluster": {"worker": ["h:1"]}}), '"task" must be an object'),
])
def test_malformed_tf_config_is_named(text: str, says: str) -> None:
    with pytest.raises(OptionError, match="TF_CONFIG") as caught:
        cluster_role({"TF_CONFIG": text})
    assert says in str(caught.value)


def test_compress_refuses_a_malformed_tf_config_before_any_work(tmp_path: Path) -> None:
    folder = _digits(tmp_path / "f", 4)
    result = CliRunner(env={"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"index": 3}}'}).invoke(
        cli, ["compress", str(folder), "-o", str(tmp_path / "a.lpk")])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: TF_CONFIG: "), result.output
    assert not (tmp_path / "a.lpk").exists()


def test_resume_is_refused_on_a_cluster(tmp_path: Path) -> None:
    folder = _digits(tmp_path / "f", 4)
    env = {"TF_CONFIG": _config(["127.0.0.1:1", "127.0.0.1:2"])}
    result = CliRunner(env=env).invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "a.lpk"), "--resume"])
    assert result.exit_code == 2 and "cannot be used with a TF_CONFIG cluster of 2 workers" in result.output


def _digits(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` 8x8 greyscale images: a bright square at a random place on a dark ground."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        a = np.full((8, 8), 30, np.uint8)
        r, c = rng.integers(0, 5, 2)
        a[r : r + 3, c : c + 3] = 220
        Image.fromarray(a, "L").save(folder / f"d{i:02d}.png")
    return folder


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _two_workers(tmp_path: Path, folders: list[Path], archive: Path, *extra: str) -> list[tuple[int, str, str]]:
    """Run worker 0 and worker 1 (same command but the folder) on loopback; (exit code, stdout, stderr) of each.

    Each is bounded by `WORKER_TIMEOUT`; if either fails to finish, both are killed.
    """
    addresses = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs, logs = [], []
    try:
        for k, folder in enumerate(folders):
            env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CONFIG": _config(addresses, index=k)}
            logs.append((open(tmp_path / f"worker{k}.out", "w+"), open(tmp_path / f"worker{k}.err", "w+")))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "latentpack", "compress", str(folder), "-o", str(archive), *extra],
                env=env, stdout=logs[-1][0], stderr=logs[-1][1], stdin=subprocess.DEVNULL))
        for proc in procs:
            proc.wait(timeout=WORKER_TIMEOUT)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = []
    for proc, files in zip(procs, logs):
        texts = []
        for f in files:
            f.seek(0)
            texts.append(f.read())
            f.close()
        out.append((proc.returncode, *texts))
    return out


def test_two_workers_train_one_archive_that_the_chief_writes(tmp_path: Path) -> None:
    folder = _digits(tmp_path / "digits", 24)
    out = tmp_path / "out"
    out.mkdir()
    archive = out / "a.lpk"
    (rc0, out0, log0), (rc1, out1, log1) = _two_workers(
        tmp_path, [folder, folder], archive, "-y", "4", "--epochs", "2", "--batch-size", "8", "--refine-steps", "0",
        "--json")
    assert rc0 == 0, log0
    assert rc1 == 0, log1
    assert "Worker 1 of 2 (TF_CONFIG): trained its shard of the folder, wrote nothing" in log1
    assert json.loads(out1) == {"written": False, "archive": str(archive), "worker": 1, "workers": 2, "trained": True}
    assert "worker 0 of 2 (TF_CONFIG)" in log0
    assert sorted(p.name for p in out.iterdir()) == ["a.lpk"]  # worker 1 wrote nothing, no temporary file is left
    training = json.loads(out0)["training"]
    assert training["replicas"] == 2 and training["strategy"] == "MultiWorkerMirroredStrategy", training
    result = CliRunner().invoke(cli, ["verify", str(archive), str(folder), "--json"])
    assert result.exit_code == 0, result.output


def test_workers_with_different_folders_stop_with_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "a.lpk"
    folders = [_digits(tmp_path / "one", 12, seed=0), _digits(tmp_path / "two", 12, seed=1)]
    results = _two_workers(tmp_path, folders, archive, "-y", "4", "--epochs", "1")
    for rc, _, log in results:
        assert rc == 1, log
        assert "Error: worker 1's folder differs from the chief's" in log, log
        assert "Traceback" not in log
    assert not archive.exists()
