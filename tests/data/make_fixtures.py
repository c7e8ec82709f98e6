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

    LATENTPACK_REGENERATE_FIXTURES=1 python tests/data/make_fixtures.py --pixels

adds v1.3/pixels-mixed.lpk (once): a pixel-model archive (``/pixels``, no
decoder, no latents) of a tiny folder of two image sizes, one image stored
raw (a palette with a repeated colour), coded under a network with fixed
integer weights (no training), so it is the same bytes on every machine. Its
JSON records the sha256 of every decoded working image.

From format 1.5 on (``/additions``: images added by ``latentpack add``) the
plain command writes v1.5/dense-grey-added.lpk (v1.4/dense-grey.lpk, lossy,
with two ramps added: latents fitted to its decoder) and
v1.5/pixels-mixed-added.lpk (v1.3/pixels-mixed.lpk with two images added in
two batches, coded under its fixed integer network: the same bytes on every
machine).

    LATENTPACK_REGENERATE_FIXTURES=1 python tests/data/make_fixtures.py --refined

adds v1.5/pixels-refined.lpk (once): the same folder and network as
v1.3/pixels-mixed.lpk, coded with the adaptive refinement of format 1.5
(``/pixels`` attribute ``refinement``).

From format 1.4 on (``/images`` and ``/quality`` in their compact layouts,
2-byte digests by default in lossy archives) the plain command writes
v1.4/dense-grey.lpk (lossy: one shape, mode and format for every image) and
v1.4/conv-mixed-lossless.lpk (mixed shapes and modes, a palette).
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
    if c.pixels is not None:
        return pixel_facts(c)
    decoder = load_decoder(c.decoder)
    means = [float(np.asarray(work, dtype=np.float64).mean()) for _, work, _ in
             iter_reconstructions(decoder, c.latents, c.images)]
    facts = {
        "names": c.images.names,
        "modes": c.images.modes,
        "shapes": c.images.shapes.tolist(),
        "header": c.header.as_dict(),
        "working_means": means,
    }
    from latentpack.formats.schema import FORMAT_VERSION

    if tuple(int(v) for v in FORMAT_VERSION.split(".")) >= (1, 4):  # recorded from 1.4 on: PSNRs changed layout
        facts["psnr"] = c.quality.psnr.tolist()
        facts["digest_bytes"] = int(c.images.sha256.shape[1])
    return facts


def pixel_facts(c) -> dict:
    """What a reader must find in a pixel-model archive: its table, header, and each decoded image's sha256."""
    import hashlib

    from latentpack.codec.pixel_model.blocks import coded_blocks, iter_decoded, mlp_of

    shapes = [(int(h), int(w), c.pixels.channels) for h, w, _ in c.images.shapes]
    decoded = dict(pair for _, pairs in iter_decoded(coded_blocks(c.pixels), shapes, mlp_of(c.pixels)) for pair in pairs)
    return {
        "names": c.images.names,
        "modes": c.images.modes,
        "shapes": c.images.shapes.tolist(),
        "header": c.header.as_dict(),
        "working_sha256": [hashlib.sha256(decoded[i].tobytes()).hexdigest() for i in range(len(decoded))],
        "exceptions": [i for i, r in enumerate(c.pixels.exception_index.tolist()) if r >= 0],
    }


def _pixel_folder(root: Path) -> Path:
    """Five small images of two sizes: RGB, and a palette image whose palette repeats a colour (stored raw)."""
    rng = np.random.default_rng(13)
    folder = root / "pixels"
    (folder / "sub").mkdir(parents=True)
    yy, xx = np.mgrid[0:8, 0:10]
    for i in range(3):
        base = rng.uniform(40, 200, 3) + rng.uniform(-6, 6, 3) * (xx + yy)[:, :, None]
        arr = np.clip(base + rng.normal(0, 3, (8, 10, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr, "RGB").save(folder / ("sub" if i == 2 else ".") / f"ramp{i}.png")
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "RGB").save(folder / "noise.png")
    pal = Image.fromarray(np.tile(np.arange(4, dtype=np.uint8), (6, 2))[:, :6], "P")
    pal.putpalette([10, 20, 30, 10, 20, 30, 200, 100, 0, 0, 0, 255] + [0, 0, 0] * 252)  # entries 0 and 1 alike
    pal.save(folder / "sub" / "pal.png")
    return folder


def _fixed_mlp(refinement: str | None = None):
    """The network of the pixel fixture: fixed pseudo-random integers (as tests/test_pixel_model.py's)."""
    from latentpack.codec.pixel_model.network import DenseInt, IntegerMLP, PixelModelSpec

    spec = PixelModelSpec(rows=1, cols=1, channels=3, components=2, hidden=(8,), position=True)
    rng = np.random.default_rng(7)
    dims = [spec.inputs, *spec.hidden, spec.outputs]
    return IntegerMLP(spec, [DenseInt(rng.integers(-2000, 2000, (a, b)).astype(np.int16),
                                      rng.integers(-4000, 4000, b).astype(np.int32), 14, i < len(dims) - 2)
                             for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))], refinement=refinement)


def pixel_contents(folder_path: Path, digest_bytes: int = 32, refinement: str | None = None):
    """The `ArchiveContents` of a pixel-model archive of `folder_path`, without training.

    (The v1.3 fixture was written with 32-byte digests, when the table came from
    ``latentpack.codec.compress._image_table``, since renamed `image_table`.)
    """
    from latentpack.codec.assemble import image_table
    from latentpack.codec.entropy.lossless import check_digest, rebuild_original
    from latentpack.codec.pixel_model.blocks import encode_images, to_coding
    from latentpack.formats import ArchiveContents, Quality, compute_header
    from latentpack.fs.folder import read_folder

    folder = read_folder(folder_path)
    table, mlp = image_table(folder, digest_bytes), _fixed_mlp(refinement)
    shapes = [folder.working(i).shape for i in range(len(folder))]
    coded = encode_images(folder.working, shapes, mlp)
    index, raw = np.full(len(folder), -1, np.int32), []
    for i in range(len(folder)):
        if not check_digest(rebuild_original(folder.working(i), folder.working_mode, table, i), table, i, False)[1]:
            index[i] = len(raw)
            with Image.open(folder_path / table.names[i]) as original:
                raw.append(original.tobytes())
    coding = to_coding(mlp, coded, folder.working_mode, index, raw)
    header = compute_header(w=len(folder), latent_counts=np.zeros(len(folder), np.int64), x_bits=folder.x_bits,
                            decoder_scalars=coding.model_scalars, folder_bytes=folder.folder_bytes,
                            stored_latent_bits=0, residual_bits=coding.residual_bits,
                            stored_decoder_bits=coding.model_bits)
    training = {"model": "pixel", "spec": mlp.spec.as_json(), "trained": False,
                "weights": "fixed integers (tests/data/make_fixtures.py)"}
    contents = ArchiveContents(header=header, decoder=None, latents=None, images=table,
                               quality=Quality(psnr=np.full(len(folder), np.inf)), training=training, pixels=coding)
    folder.close()
    return contents


#: The pixel-model fixture written by `write_pixels`.
PIXELS = HERE / "archives" / "v1.3" / "pixels-mixed.lpk"


#: The refined pixel-model fixture (format 1.5) written by `write_pixels`.
PIXELS_REFINED = HERE / "archives" / "v1.5" / "pixels-refined.lpk"


def write_pixels(refinement: str | None = None) -> None:
    """Add the v1.3 pixel-model fixture, or (``refinement``) the v1.5 one."""
    from latentpack.formats import write_archive

    path = PIXELS if refinement is None else PIXELS_REFINED
    if path.exists():
        sys.exit(f"{path} exists: fixtures are never rewritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_archive(path, pixel_contents(_pixel_folder(Path(tmp)), refinement=refinement))
    path.with_suffix(".json").write_text(json.dumps(expected_facts(path), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


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


#: The 1.5 fixtures: (name, the committed archive they grow, the images of each batch added).
ADDITIONS = (("dense-grey-added", "v1.4/dense-grey.lpk", (("grey", 2),)),
             ("pixels-mixed-added", "v1.3/pixels-mixed.lpk", (("rgb", 1), ("rgb", 1))))


def _batch(root: Path, kind: str, count: int, seed: int) -> Path:
    """A folder of `count` new images: 12x12 grey ramps, or 8x10 RGB ramps."""
    rng = np.random.default_rng(seed)
    folder = root / f"batch{seed}"
    folder.mkdir()
    yy, xx = np.mgrid[0:12, 0:12] / 11 if kind == "grey" else np.mgrid[0:8, 0:10] / 9
    for i in range(count):
        a, b = rng.uniform(-1, 1, 2)
        arr = 120 + 60 * (a * xx + b * yy)
        if kind == "rgb":
            arr = arr[:, :, None] + rng.uniform(-40, 40, 3)
        mode = "L" if kind == "grey" else "RGB"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode).save(folder / f"added{seed}-{i}.png")
    return folder


def write_additions(out: Path) -> None:
    """The 1.5 fixtures: committed archives grown by ``latentpack add`` (one or two batches)."""
    import shutil

    from latentpack.ops.add import add_images

    with tempfile.TemporaryDirectory() as tmp:
        for name, source, batches in ADDITIONS:
            archive = out / f"{name}.lpk"
            shutil.copyfile(HERE / "archives" / source, archive)
            for k, (kind, count) in enumerate(batches):
                add_images(archive, [_batch(Path(tmp), kind, count, 10 * len(name) + k)], fit_steps=50)
            facts = expected_facts(archive)
            from latentpack.formats import read_archive

            added = read_archive(archive).additions
            facts["additions"] = {"first": added.first.tolist(), "sha256_all": [bytes(r).hex() for r in added.sha256_all]}
            (out / f"{name}.json").write_text(json.dumps(facts, indent=1) + "\n")
            print(f"wrote {archive} ({archive.stat().st_size} bytes)")


def main() -> None:
    from latentpack.ops.compress import compress_folder
    from latentpack.formats.schema import FORMAT_VERSION

    if os.environ.get("LATENTPACK_REGENERATE_FIXTURES") != "1":
        sys.exit("set LATENTPACK_REGENERATE_FIXTURES=1 to write fixtures")
    if sys.argv[1:] == ["--element-versions"]:
        write_element_versions()
        return
    if sys.argv[1:] == ["--pixels"] or FORMAT_VERSION == "1.3":  # a file is 1.3 only with a pixel model
        write_pixels()
        return
    if sys.argv[1:] == ["--refined"]:  # 1.5: the refinement of /pixels
        write_pixels("node-context-counts")
        return
    out = HERE / "archives" / f"v{FORMAT_VERSION}"
    if out.exists():
        sys.exit(f"{out} exists: fixtures of a format version are never rewritten")
    out.mkdir(parents=True)
    if FORMAT_VERSION == "1.5":  # a file is 1.5 only with /additions
        write_additions(out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name, (folder, options) in _folders(Path(tmp)).items():
            archive = out / f"{name}.lpk"
            compress_folder(folder, archive, seed=0, **options)
            (out / f"{name}.json").write_text(json.dumps(expected_facts(archive), indent=1) + "\n")
            print(f"wrote {archive} ({archive.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
