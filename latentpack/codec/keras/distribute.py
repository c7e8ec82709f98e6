"""Which ``tf.distribute`` strategy trains, and the training loop that runs under it.

    TF_CONFIG with 2+ workers   -> MultiWorkerMirroredStrategy  (a replica per device of every worker)
    else 2+ visible GPUs        -> MirroredStrategy             (a replica per GPU; not tested here: no GPU)
    else                        -> None: Keras' own ``fit`` on one device, exactly as without this module

Keras 3's ``fit`` does not run under ``MultiWorkerMirroredStrategy`` (its
symbolic build reduces a whole batch structure, and it reduces scalar
metrics along an axis they lack: keras-team/keras#20585,
tensorflow/tensorflow#72388), so a replicated training runs this module's
loop instead, with the same callbacks::

    every epoch, every step i:
        x, y = data[i]                     the same seeded global batch on every worker
        rows split in R parts              replica r (numbered over all workers) takes part r
        strategy.run(train_step)           each replica's loss / R: gradients summed = the batch's mean
        logs = mean over the R replicas    the same on every worker (lambda steering, progress)

Every worker thus reads the whole batch and trains on its share: over an
epoch, each replica sees a disjoint 1/R of the folder, reshuffled every
epoch. The batch size stays the global one (images per optimiser step), so
the schedule, the epochs and the steps are those of one worker.
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from latentpack.codec import quiet_tensorflow
from latentpack.codec.cluster import ClusterError, ClusterRole, cluster_role
from latentpack.fs.folder import ImageFolder

quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

__all__ = ["Replication", "replication_for", "replicated", "record", "folder_digest", "mse_step", "fit_replicated"]

_CREATED: list["Replication | None"] = []  # one strategy per process: collective ops are configured once


@dataclass
class Replication:
    """A ``tf.distribute`` strategy that trains, and what the training record says of it.

    Attributes:
        strategy: ``MultiWorkerMirroredStrategy`` or ``MirroredStrategy``.
        name: ``"MultiWorkerMirroredStrategy"`` or ``"MirroredStrategy"``.
        replicas: Replicas in sync (devices, over all workers).
        role: This worker's place in the cluster (None for one machine's GPUs).
    """

    strategy: Any
    name: str
    replicas: int
    role: ClusterRole | None

    @property
    def workers(self) -> int:
        return self.role.workers if self.role is not None else 1


def _create() -> Replication | None:
    role = cluster_role()
    if role is not None and role.workers > 1:
        strategy, name = tf.distribute.MultiWorkerMirroredStrategy(), "MultiWorkerMirroredStrategy"
    else:
        try:
            gpus = tf.config.list_physical_devices("GPU")
        except Exception:  # a broken CUDA install trains on the CPU (latentpack.codec.keras.device)
            gpus = []
        if len(gpus) < 2:
            return None
        strategy, name, role = tf.distribute.MirroredStrategy(), "MirroredStrategy", None
    return Replication(strategy, name, int(strategy.num_replicas_in_sync), role)


def replication_for(folder: ImageFolder) -> Replication | None:
    """The strategy this process trains under (created once), after checking every worker sees ``folder``.

    Returns:
        None when one device trains (no ``TF_CONFIG`` cluster, fewer than 2 GPUs).

    Raises:
        ClusterError: the workers' folders differ (names, sizes or pixels).
    """
    if not _CREATED:
        _CREATED.append(_create())
    replication = _CREATED[0]
    if replication is not None and replication.workers > 1:
        _check_same_folder(replication, folder)
    return replication


def replicated(replication: Replication | None) -> contextlib.AbstractContextManager:
    """The strategy's scope (models and optimizers built in it are mirrored), or a no-op for None."""
    return replication.strategy.scope() if replication is not None else contextlib.nullcontext()


def record(replication: Replication | None) -> dict[str, Any]:
    """The training record's keys: ``replicas`` always; ``strategy`` and ``workers`` when replicated."""
    if replication is None:
        return {"replicas": 1}
    return {"replicas": replication.replicas, "strategy": replication.name, "workers": replication.workers}


def folder_digest(folder: ImageFolder) -> bytes:
    """sha256 of the staged folder: every image's name and shape, then the working pixels."""
    h = hashlib.sha256()
    for im in folder.images:
        h.update(f"{im.name}\0{im.height}x{im.width}x{im.channels}\0".encode("utf-8", "surrogateescape"))
    pixels = np.asarray(folder.pixels).reshape(-1)
    for a in range(0, pixels.size, 1 << 26):
        h.update(memoryview(np.ascontiguousarray(pixels[a : a + (1 << 26)])).cast("B"))
    return h.digest()


def _check_same_folder(replication: Replication, folder: ImageFolder) -> None:
    """All-gather every replica's folder digest; each worker raises the same error if any differs."""
    strategy = replication.strategy
    mine = np.frombuffer(folder_digest(folder), np.uint8).astype(np.int32)
    value = strategy.experimental_distribute_values_from_function(lambda ctx: tf.constant(mine[None]))
    rows = [bytes(r.astype(np.uint8)).hex() for r in np.asarray(strategy.gather(value, axis=0))]
    per_worker = max(1, len(rows) // replication.workers)
    for r, digest in enumerate(rows):
        if digest != rows[0]:
            raise ClusterError(
                f"worker {r // per_worker}'s folder differs from the chief's (sha256 of names, sizes and pixels "
                f"{digest[:16]}... against {rows[0][:16]}... on worker 0): every worker must read the same "
                "images (shared storage, or identical copies)")


def mse_step(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> Callable[[Any], dict[str, Any]]:
    """One replica's step on ``(x, y)``: loss = mean((y - model(x))^2), its gradient summed over replicas."""

    def step(data):
        x, y = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(y - model(x, training=True)))
            scaled = loss / replicas
        optimizer.apply(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
        return {"loss": loss}

    return step


def _replica_parts(strategy: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """The global batch ``(x, y)`` cut into one contiguous part per replica (rows repeated if too few)."""
    replicas = strategy.num_replicas_in_sync
    if len(x) < replicas:
        take = np.arange(replicas) % len(x)
        x, y = x[take], y[take]
    parts = np.array_split(np.arange(len(x)), replicas)

    def part(ctx):
        rows = parts[ctx.replica_id_in_sync_group]
        return tf.constant(x[rows[0] : rows[-1] + 1]), tf.constant(y[rows[0] : rows[-1] + 1])

    return strategy.experimental_distribute_values_from_function(part)


@contextlib.contextmanager
def _cluster_failures() -> Iterator[None]:
    """A worker that stops mid-training fails the others' collectives: one clear error, no traceback."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
            tf.errors.DeadlineExceededError, tf.errors.InternalError) as exc:
        lines = [line.strip() for line in (exc.message or str(exc)).splitlines()]
        told = [line for line in lines if line and not line.startswith(("Graph execution error", "Detected at node",
                                                                        "File "))]
        first = (told or ["(no message)"])[0][:300]
        raise ClusterError(f"training across the workers failed (another worker stopped?): {first}") from None


def _call(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    for callback in callbacks:
        getattr(callback, hook)(*args)


def fit_replicated(replication: Replication, model: keras.Model, train_step: Callable[[Any], dict[str, Any]],
                   data: Any, *, epochs: int, callbacks: Sequence[Any] = ()) -> list[dict[str, float]]:
    """Train under the strategy: ``epochs`` passes over ``data`` (a Keras ``PyDataset`` of ``(x, y)`` batches).

    Args:
        replication: The strategy (`replication_for`).
        model: The model built in its scope (given to the callbacks).
        train_step: One replica's step, ``(x, y) -> {name: scalar}``, run by ``strategy.run``.
        data: The global batches; ``len(data)`` steps an epoch, ``data.on_epoch_end()`` after each.
        epochs: Passes.
        callbacks: Keras callbacks (batch and epoch hooks, logs reduced over replicas).

    Returns:
        Each epoch's logs, averaged over its steps.

    Raises:
        ClusterError: a worker stopped during training.
    """
    strategy = replication.strategy

    @tf.function(reduce_retracing=True)
    def distributed_step(batch):
        logs = strategy.run(train_step, args=(batch,))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    for callback in callbacks:
        callback.set_model(model)
    history: list[dict[str, float]] = []
    _call(callbacks, "on_train_begin", {})
    with _cluster_failures():
        for epoch in range(epochs):
            _call(callbacks, "on_epoch_begin", epoch, {})
            sums: dict[str, float] = {}
            for i in range(len(data)):
                _call(callbacks, "on_train_batch_begin", i, {})
                logs = {k: float(v) for k, v in distributed_step(_replica_parts(strategy, *data[i])).items()}
                sums = {k: sums.get(k, 0.0) + v for k, v in logs.items()}
                _call(callbacks, "on_train_batch_end", i, logs)
            data.on_epoch_end()
            history.append({k: v / max(1, len(data)) for k, v in sums.items()})
            _call(callbacks, "on_epoch_end", epoch, dict(history[-1]))
    _call(callbacks, "on_train_end", {})
    return history

