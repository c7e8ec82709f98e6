"""Every HDF5 byte an archive's group spends: object headers, indexes, attributes and data.

`Archive.storage_breakdown` counts the bytes each element's datasets store
and leaves HDF5's structure to ``overhead``; this counts the structure too,
group by group, which is what a per-image metadata budget is about::

    group_bytes("a.lpk")  ->  {"images": 391, "quality": 1644, ...}

Counted for a group and everything under it: each object header (all its
chunks, free space in them included), each chunk index and link or
attribute storage outside the header (B-trees, heaps), and each dataset's
stored bytes. Not counted: the parent's link to the group, the superblock,
and free space HDF5 leaves between objects (`os.path.getsize` has those).
It reads only HDF5 metadata (h5py's ``h5o.get_info``), never the data.
"""
from __future__ import annotations

import os
from typing import Any

import h5py

__all__ = ["object_bytes", "group_bytes"]


def object_bytes(obj: Any) -> int:
    """Bytes of one group or dataset itself: its header, indexes and attribute storage, and a dataset's data."""
    info = h5py.h5o.get_info(obj.id)
    meta = info.meta_size
    total = info.hdr.space.total + meta.obj.index_size + meta.obj.heap_size + meta.attr.index_size + meta.attr.heap_size
    if isinstance(obj, h5py.Dataset):
        total += obj.id.get_storage_size()
    return int(total)


def group_bytes(path: str | os.PathLike[str]) -> dict[str, int]:
    """Bytes of each top-level group of an HDF5 file, with everything under it.

    Args:
        path: The archive (any HDF5 file).

    Returns:
        ``{group name: bytes}`` for each group under the root.
    """
    out: dict[str, int] = {}
    with h5py.File(path, "r") as f:
        for name, group in f.items():
            if not isinstance(group, h5py.Group):
                continue
            total = object_bytes(group)

            def add(_: str, member: Any) -> None:
                nonlocal total
                total += object_bytes(member)

            group.visititems(add)
            out[name] = total
    return out
