"""Resumable training: a Keras callback that checkpoints at epoch ends and restores on ``compress --resume``.

    compress --resume | --work-dir DIR
        -> key = sha256(the folder's pixels, the model's layers and weight shapes, epochs, steps,
                        batch size, the data's seeded random state)
        -> DIR/KEY/state.npz (default DIR: $XDG_CACHE_HOME/latentpack/checkpoints)
    fit: on_train_begin  load weights, optimizer state, the data's shuffling state, losses; skip done epochs
         on_epoch_end    save them (temp file + rename, at most every `SAVE_SECONDS`, always after the last)

Everything that decides the next epoch's arithmetic is saved bit-exact (the
weights, Adam's moments and step count, which also drive the learning-rate
schedule, and the batch order's random generator), so a resumed run gives
the weights an uninterrupted run with the same seed gives, on one machine.
``compress`` activates a `CheckpointStore` around the compression and
removes what it used once the archive is written (an interrupted run keeps
it); ``codec/keras/train.py`` asks `callback_for` for the callback to add to
its ``fit`` (None when no store is active: nothing is written).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from latentpack.codec import quiet_tensorflow

quiet_tensorflow()
import keras  # noqa: E402

__all__ = ["CheckpointStore", "EpochCheckpoint", "StepCheckpoint", "checkpoint_key", "default_root", "activate",
           "callback_for", "steps_for", "SAVE_SECONDS"]

#: Least seconds between two checkpoints (the one after the last epoch is always written).
SAVE_SECONDS = 30.0
_ACTIVE: list["CheckpointStore"] = []


def default_root() -> Path:
    """``$XDG_CACHE_HOME/latentpack/checkpoints`` (``~/.cache/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latentpack" / "checkpoints"


def _pixels(data: Any) -> np.ndarray:
    """What the data's batches are cut from (whole images, or the folder patches come from)."""
    return np.asarray(data.array if hasattr(data, "array") else data.folder.pixels)


def checkpoint_key(model: keras.Model, data: Any, epochs: int, steps: int) -> str:
    """One hex key for a training: the folder's pixels, the model's layers and weight shapes, the schedule,
    and the data's random state (which the seed decides); fixed codes too for a decoder trained alone."""
    h = hashlib.sha256()
    pixels, folder = np.ascontiguousarray(_pixels(data)).reshape(-1), getattr(data, "folder", None)
    for a in range(0, pixels.size, 1 << 24):  # the same digest, the staging file's pages given back as read
        h.update(memoryview(pixels[a : a + (1 << 24)]).cast("B"))
        if folder is not None:
            folder.pages_read(min(1 << 24, pixels.size - a))
    if hasattr(data, "codes"):
        h.update(memoryview(np.ascontiguousarray(data.codes)).cast("B"))
    settings = {
        "layers": [type(layer).__name__ for layer in model.layers],
        "weights": [list(v.shape) for v in model.weights],
        "epochs": epochs, "steps": steps, "batch_size": getattr(data, "batch_size", None),
        "patch": getattr(data, "patch", None), "data": json.dumps(data.rng.bit_generator.state, sort_keys=True),
        "order": hashlib.sha256(np.asarray(getattr(data, "order", []), dtype=np.int64).tobytes()).hexdigest(),
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:32]


@dataclass
class CheckpointStore:
    """Where checkpoints go (``ROOT/KEY`` per training), and whether to continue from them.

    Attributes:
        root: The folder holding one subfolder per training key.
        resume: Continue from a checkpoint found there (else start afresh, overwriting it).
        save_seconds: Least seconds between two checkpoints.
        used: The key folders trainings wrote to (`remove` drops them).
    """

    root: Path
    resume: bool
    save_seconds: float = SAVE_SECONDS
    used: list[Path] = field(default_factory=list)

    def remove(self) -> None:
        """Drop the checkpoints of the trainings that ran (the archive is written)."""
        for folder in self.used:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def activate(store: CheckpointStore | None) -> Iterator[None]:
    """Make ``store`` the one `callback_for` uses while the block runs (None: no checkpoints)."""
    if store is None:
        yield
        return
    _ACTIVE.append(store)
    try:
        yield
    finally:
        _ACTIVE.remove(store)


def callback_for(model: keras.Model, data: Any, epochs: int, steps: int, bar: Any = None,
                 extra: Any = None) -> "EpochCheckpoint | None":
    """The callback for ``model.fit(data, epochs=epochs)`` while a store is active, else None.

    ``extra``, when given, has ``state() -> dict`` (JSON) and ``restore(dict)``: another
    callback's state saved with the weights (rate-distortion training's lambda steering).
    """
    if not _ACTIVE:
        return None
    store = _ACTIVE[-1]
    folder = store.root / checkpoint_key(model, data, epochs, steps)
    store.used.append(folder)
    return EpochCheckpoint(folder, store.resume, store.save_seconds, data, bar, extra)


def _data_state(data: Any) -> dict[str, Any]:
    state = {"rng": json.dumps(data.rng.bit_generator.state)}
    if hasattr(data, "order"):
        state["order"] = np.asarray(data.order)
    return state


def _restore_data(data: Any, saved: Any) -> None:
    data.rng.bit_generator.state = json.loads(str(saved["rng"]))
    if "order" in saved:
        data.order = np.array(saved["order"])


class EpochCheckpoint(keras.callbacks.Callback):
    """Save the training state after epochs; restore it before the first (see the module's diagram).

    Attributes:
        losses: The loss of every epoch, those of the interrupted run included.
        resumed_epochs: Epochs restored instead of trained.
    """

    def __init__(self, folder: Path, resume: bool, save_seconds: float, data: Any, bar: Any = None, extra: Any = None):
        super().__init__()
        self.folder, self.resume, self.save_seconds, self.data, self.bar = folder, resume, save_seconds, data, bar
        self.extra = extra
        self.state_file = folder / "state.npz"
        self.losses: list[float] = []
        self.resumed_epochs = 0
        self.last_save = time.monotonic()

    def _variables(self) -> list:
        more = self.model.checkpoint_variables() if hasattr(self.model, "checkpoint_variables") else []
        return list(self.model.weights) + list(self.model.optimizer.variables) + list(more)

    def on_train_begin(self, logs=None) -> None:
        if not (self.resume and self.state_file.is_file()):
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        with np.load(self.state_file, allow_pickle=False) as saved:
            variables = self._variables()
            if int(saved["count"]) != len(variables):
                return  # another model's checkpoint: start afresh
            for i, v in enumerate(variables):
                v.assign(saved[f"v{i}"])
            _restore_data(self.data, saved)
            if self.extra is not None and "extra" in saved:
                self.extra.restore(json.loads(str(saved["extra"])))
            self.losses = [float(x) for x in saved["losses"]]
            self.resumed_epochs = int(saved["epoch"])
        self.model._initial_epoch = self.resumed_epochs  # what keras.callbacks.BackupAndRestore sets
        if self.bar is not None:
            self.bar.update(self.resumed_epochs * len(self.data))

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.losses.append(float((logs or {}).get("loss", float("nan"))))
        last = epoch + 1 >= self.params.get("epochs", epoch + 1)
        if last or time.monotonic() - self.last_save >= self.save_seconds:
            self._save(epoch + 1)
            self.last_save = time.monotonic()

    def _save(self, epoch: int) -> None:
        arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(self._variables())}
        arrays.update(_data_state(self.data), count=len(arrays), epoch=epoch, losses=np.array(self.losses))
        if self.extra is not None:
            arrays["extra"] = np.array(json.dumps(self.extra.state()))
        _write_state(self.state_file, arrays)


def _write_state(state_file: Path, arrays: dict[str, Any]) -> None:
    """``np.savez`` of ``arrays`` to ``state_file``: a temporary file in its folder, then a rename."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".npz", dir=state_file.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, state_file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def steps_for(arrays: list[np.ndarray], settings: dict[str, Any]) -> "StepCheckpoint | None":
    """Checkpoints of a training loop of its own (the pixel model's), keyed by its data and settings;
    None while no store is active."""
    if not _ACTIVE:
        return None
    store = _ACTIVE[-1]
    h = hashlib.sha256()
    for a in arrays:
        flat = np.ascontiguousarray(a).reshape(-1)
        for start in range(0, len(flat), 1 << 22):  # in chunks: no copy of the whole array
            h.update(memoryview(flat[start:start + (1 << 22)]).cast("B"))
    h.update(json.dumps(settings, sort_keys=True).encode())
    folder = store.root / h.hexdigest()[:32]
    store.used.append(folder)
    return StepCheckpoint(folder, store.resume, store.save_seconds)


class StepCheckpoint:
    """Save a loop's variables and position at a step's end (at most every ``save_seconds``); restore them."""

    def __init__(self, folder: Path, resume: bool, save_seconds: float):
        self.folder, self.resume, self.save_seconds = folder, resume, save_seconds
        self.state_file = folder / "state.npz"
        self.last_save = time.monotonic()

    def restore(self, variables: list) -> dict[str, Any] | None:
        """Assign the saved variables and return the loop's saved arrays (None: nothing to resume)."""
        if not (self.resume and self.state_file.is_file()):
            return None
        with np.load(self.state_file, allow_pickle=False) as saved:
            if int(saved["count"]) != len(variables):
                return None  # another model's checkpoint: start afresh
            for i, v in enumerate(variables):
                v.assign(saved[f"v{i}"])
            return {k: saved[k] for k in saved.files if not (k[0] == "v" and k[1:].isdigit())}

    def due(self) -> bool:
        """Whether ``save_seconds`` have passed since the last save."""
        return time.monotonic() - self.last_save >= self.save_seconds

    def save(self, variables: list, **arrays: Any) -> None:
        """Write the variables and ``arrays`` (temp file, then rename)."""
        out = {f"v{i}": np.asarray(v) for i, v in enumerate(variables)}
        out.update({k: np.asarray(v) for k, v in arrays.items()}, count=len(variables))
        _write_state(self.state_file, out)
        self.last_save = time.monotonic()
