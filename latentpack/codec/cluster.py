"""Which worker of a training cluster this process is: TensorFlow's ``TF_CONFIG`` convention, read without TensorFlow.

Every worker runs the same ``latentpack compress`` command; ``TF_CONFIG``
(JSON) tells each one the cluster and its own place in it::

    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 1}}

The chief is task 0 of the ``worker`` job, or the one task of a ``chief`` job
when the cluster has one (TensorFlow's convention; the chief is then rank 0
and worker ``i`` rank ``i + 1``). Only the synchronous jobs ``chief`` and
``worker`` are accepted (`latentpack.codec.keras.distribute` trains with
``MultiWorkerMirroredStrategy``). This module is read before anything is
trained, so a malformed ``TF_CONFIG`` is a clear error at once.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

from latentpack.errors import LatentpackError, OptionError

__all__ = ["ClusterRole", "ClusterError", "cluster_role", "JOBS"]

#: The jobs a training cluster may have (synchronous data parallelism only: no ``ps``, no ``evaluator``).
JOBS = ("chief", "worker")


class ClusterError(LatentpackError, RuntimeError):
    """The workers of a training cluster disagree (different folders) or one of them stopped."""


@dataclass(frozen=True)
class ClusterRole:
    """This process's place in the cluster that ``TF_CONFIG`` describes.

    Attributes:
        workers: Tasks that train (the chief included).
        rank: This task's rank, 0 for the chief.
        task: ``"chief"`` or ``"worker"``.
        index: This task's index in its job (what ``TF_CONFIG`` says).
        addresses: Every training task's ``host:port``, in rank order.
    """

    workers: int
    rank: int
    task: str
    index: int
    addresses: tuple[str, ...]

    @property
    def is_chief(self) -> bool:
        """True for the task that writes the archive (rank 0)."""
        return self.rank == 0

    def describe(self) -> str:
        """``"worker 1 of 2"`` (ranks, the chief being worker 0)."""
        return f"worker {self.rank} of {self.workers}"


def _problem(text: str) -> OptionError:
    return OptionError(f"TF_CONFIG: {text} (expected e.g. "
                       '{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
                       '"task": {"type": "worker", "index": 0}})')


def _cluster(config: Mapping[str, Any]) -> dict[str, list[str]]:
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise _problem('"cluster" must be a non-empty object of jobs')
    for job, tasks in cluster.items():
        if job not in JOBS:
            raise _problem(f"job {job!r} is not supported: latentpack trains synchronously, "
                           f"with the jobs {' and '.join(JOBS)} only")
        if not isinstance(tasks, list) or not tasks:
            raise _problem(f'"cluster"."{job}" must be a non-empty list of "host:port" strings')
        for address in tasks:
            if not isinstance(address, str) or ":" not in address or not address.rpartition(":")[2].isdigit():
                raise _problem(f'"cluster"."{job}" holds {address!r}, not a "host:port" string')
    if len(cluster.get("chief", [])) > 1:
        raise _problem('"cluster"."chief" must have exactly one task')
    addresses = cluster.get("chief", []) + cluster.get("worker", [])
    if len(set(addresses)) != len(addresses):
        raise _problem("an address appears twice in the cluster")
    return cluster


def cluster_role(environ: Mapping[str, str] | None = None) -> ClusterRole | None:
    """This process's role from ``TF_CONFIG``, or None when it is unset or empty (one process trains).

    Args:
        environ: The environment to read (default: ``os.environ``).

    Raises:
        OptionError: ``TF_CONFIG`` is not JSON, names unsupported jobs, or
            its task is not in its cluster (the message says which).
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise _problem(f"not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise _problem(f"must be a JSON object, got {type(config).__name__}")
    cluster = _cluster(config)
    task = config.get("task")
    if not isinstance(task, dict):
        raise _problem('"task" must be an object with "type" and "index"')
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise _problem(f'"task"."type" is {kind!r}, not a job of the cluster ({", ".join(sorted(cluster))})')
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise _problem(f'"task"."index" is {index!r}: job {kind!r} has tasks 0 to {len(cluster[kind]) - 1}')
    chiefs = len(cluster.get("chief", []))
    rank = index if kind == "chief" else chiefs + index
    addresses = tuple(cluster.get("chief", []) + cluster.get("worker", []))
    return ClusterRole(workers=len(addresses), rank=rank, task=kind, index=index, addresses=addresses)
