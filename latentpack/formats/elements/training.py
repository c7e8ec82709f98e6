"""``/training``: the training record (architecture choice, epochs, seed, losses, timings) as JSON."""
from __future__ import annotations

from typing import Any, Mapping

import h5py

from latentpack.formats import h5write, layout
from latentpack.formats.errors import CorruptArchiveError
from latentpack.formats.registry import STR, Element, Field, register

__all__ = ["Training"]


@register
class Training(Element, encoding_type="training", label="training log", reads=("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"), display=5):
    fields = (Field("config", STR, (), storage=h5write.TEXT),)

    def value(self, contents: Any) -> dict[str, Any]:
        return contents.training if contents.training is not None else {}

    def normalise(self, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise ValueError(f"`contents.training` must be a dict, got {type(obj).__name__}")
        return obj

    def write(self, group: h5py.Group, obj: dict[str, Any], options: Mapping[str, Any]) -> None:
        h5write.write_text(group, "config", h5write.to_json(obj))

    def build(self, values: dict[str, Any], archive: Any) -> dict[str, Any]:
        with archive._at("/training/config"):
            config = layout.parse_json(values["config"], "/training/config")
            if not isinstance(config, dict):
                raise CorruptArchiveError(f"expected a JSON object, got {type(config).__name__}",
                                          hdf5_path="/training/config")
        return config
