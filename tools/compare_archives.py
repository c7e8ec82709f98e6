"""Compare two archives' header, latents and decoder weights (the refactoring check).

    python tools/compare_archives.py A.lpk B.lpk

Reads both files with h5py alone (no latentpack code, so a refactor cannot fool it)
and prints every difference in /header's attributes, in any dataset under /latents
and /decoder, and in /lossless when present; exits 1 if there is one. Attributes that
record when, where or with which version an archive was written are not compared.
"""
from __future__ import annotations

import sys

import h5py
import numpy as np

GROUPS = ("header", "latents", "decoder", "lossless")
#: Header attributes that name the writing run, not its content.
VOLATILE = {"created", "writer", "latentpack-version", "encoding-version"}


def _datasets(group: h5py.Group) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    group.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def _attrs(obj) -> dict[str, object]:
    return {k: v for k, v in obj.attrs.items() if k not in VOLATILE}


def differences(a: h5py.File, b: h5py.File) -> list[str]:
    """Every difference between the compared parts of two open archives."""
    out = []
    for name in GROUPS:
        if (name in a) != (name in b):
            out.append(f"/{name}: present in only one archive")
            continue
        if name not in a:
            continue
        ga, gb = a[name], b[name]
        for key in sorted(set(_attrs(ga)) | set(_attrs(gb))):
            va, vb = ga.attrs.get(key), gb.attrs.get(key)
            if not np.array_equal(np.asarray(va), np.asarray(vb)):
                out.append(f"/{name} attribute {key}: {va!r} != {vb!r}")
        da, db = _datasets(ga), _datasets(gb)
        for key in sorted(set(da) | set(db)):
            if key not in da or key not in db:
                out.append(f"/{name}/{key}: present in only one archive")
            elif da[key].dtype != db[key].dtype or not np.array_equal(da[key], db[key]):
                out.append(f"/{name}/{key}: data differ")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with h5py.File(argv[0], "r") as a, h5py.File(argv[1], "r") as b:
        found = differences(a, b)
    print("\n".join(found) if found else "same header, latents and decoder weights")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
