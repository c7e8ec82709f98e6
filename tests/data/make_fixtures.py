"""Write the small archives that every later latentpack must still read.

    LATENTPACK_REGENERATE_FIXTURES=1 python tests/data/make_fixtures.py

writes tests/data/archives/v<FORMAT_VERSION>/*.lpk and, beside each, a JSON
file of what a reader must find in it (names, modes, header, the mean of each
extracted image). Fixtures of released format versions are never rewritten:
the script refuses to touch an existing version folder.

    LATENTPACK_REGENERATE_FIXTURES=1 python tests/data/make_fixtures.py --element-versions

adds v1.2/element-versions.lpk (once; it refuses to overwrite it): a file
whose groups carry their elements' own versions (header and decoder 1.2,
latents and lossless 1.1, images, quality and training 1.0), as latentpack
writes them since per-element versions; the other fixtures tag every group
with the file's version.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def _folders(root: Path) -> dict[str, tuple[Path, dict]]:
    rng = np.random.default_rng(0)
    grey = root / "grey"
    grey.mkdir()
    yy, xx = np.mgrid[0:12, 0:12] / 11
    for i in range(8):
        a, b = rng.uniform(-1, 1, 2)
        arr = np.clip(120 + 60 * (a * xx + b * yy), 0, 255).astype(np.uint8)
        Image.fromarray(arr, "L").save(grey / f"ramp{i}.png")
    mixed = root / "mixed"
    (mixed / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8), "RGB").save(mixed / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (9, 9, 4), dtype=np.uint8), "RGBA").save(mixed / "sub" / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (7, 5), dtype=np.uint8), "L").save(mixed / "sub" / "grey.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB").quantize(4).save(mixed / "pal.png")
    folders = {
        "dense-grey": (grey, dict(arch="dense", latent_dims=3, filters=2, epochs=2, batch_size=4)),
        "conv-mixed": (mixed, dict(arch="conv", latent_dims=2, filters=2, epochs=1, batch_size=2)),
    }
    from latentpack.formats.schema import FORMAT_VERSION

    version = tuple(int(v) for v in FORMAT_VERSION.split("."))
    if version >= (1, 1):  # lossless fixtures: extraction checks every digest, across machines
        folders["conv-mixed-lossless"] = (mixed, dict(arch="conv", latent_dims=2, filters=2, epochs=1, batch_size=2,
                                                     lossless=True))
        folders["index-grey-lossless"] = (grey, dict(arch="dense", latent_dims=3, filters=2, epochs=2, batch_size=4,
                                                     codes="index", lossless=True))
    if version >= (1, 2):  # a file is 1.2 only with float16 weights: one lossy and one lossless fixture
        folders = {name: (folder, {**options, "weight_dtype": "float16"}) for name, (folder, options) in folders.items()
                   if name in ("dense-grey", "conv-mixed-lossless")}
    return folders


def expected_facts(archive: Path) -> dict:
    """What a reader must find in an archive (also used by the test)."""
    from latentpack.codec.runtime.reconstruct import iter_reconstructions, load_decoder
    from latentpack.formats import read_archive

    c = read_archive(archive)
    decoder = load_decoder(c.decoder)
    means = [float(np.asarray(work, dtype=np.float64).mean()) for _, work, _ in
             iter_reconstructions(decoder, c.latents, c.images)]
    return {
        "names": c.images.names,
        "modes": c.images.modes,
        "shapes": c.images.shapes.tolist(),
        "header": c.header.as_dict(),
        "working_means": means,
    }


#: The fixture written by `write_element_versions` and the folder and options it is made from.
ELEMENT_VERSIONS = ("element-versions", "dense-grey", {"lossless": True, "weight_dtype": "float16"})


def write_element_versions() -> None:
    """Add the v1.2 fixture whose groups carry their elements' own versions."""
    from latentpack.ops.compress import compress_folder

    name, source, extra = ELEMENT_VERSIONS
    archive = HERE / "archives" / "v1.2" / f"{name}.lpk"
    if archive.exists():
        sys.exit(f"{archive} exists: fixtures are never rewritten")
    with tempfile.TemporaryDirectory() as tmp:
        folder, options = _folders(Path(tmp))[source]
        compress_folder(folder, archive, seed=0, **{**options, **extra})
        archive.with_suffix(".json").write_text(json.dumps(expected_facts(archive), indent=1) + "\n")
    print(f"wrote {archive} ({archive.stat().st_size} bytes)")


def main() -> None:
    from latentpack.ops.compress import compress_folder
    from latentpack.formats.schema import FORMAT_VERSION

    if os.environ.get("LATENTPACK_REGENERATE_FIXTURES") != "1":
        sys.exit("set LATENTPACK_REGENERATE_FIXTURES=1 to write fixtures")
    if sys.argv[1:] == ["--element-versions"]:
        write_element_versions()
        return
    out = HERE / "archives" / f"v{FORMAT_VERSION}"
    if out.exists():
        sys.exit(f"{out} exists: fixtures of a format version are never rewritten")
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (folder, options) in _folders(Path(tmp)).items():
            archive = out / f"{name}.lpk"
            compress_folder(folder, archive, seed=0, **options)
            (out / f"{name}.json").write_text(json.dumps(expected_facts(archive), indent=1) + "\n")
            print(f"wrote {archive} ({archive.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
