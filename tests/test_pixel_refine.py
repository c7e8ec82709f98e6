"""The adaptive refinement on top of the pixel model (format 1.5, latentpack.codec.pixel_model.refine)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from latentpack.codec.pixel_model.blocks import coded_blocks, encode_images, iter_decoded, mlp_of, to_coding
from latentpack.codec.pixel_model.coder import decode_block, encode_block
from latentpack.codec.pixel_model.network import IntegerMLP, PixelModelSpec
from latentpack.codec.pixel_model.refine import REFINEMENT, AdaptiveCounts, bucket_centres, split_points
from latentpack.formats import CorruptArchiveError, open_archive, write_archive

from test_pixel_model import random_mlp, smooth_images

#: docs/FORMAT.md lists these bucket centres.
CENTRES = [22, 44, 88, 177, 353, 705, 1398, 2744, 5279, 9793, 17071, 27126, 38410, 48465, 55743, 60257, 62792,
           64138, 64831, 65183, 65359, 65448, 65492, 65514]


def refined(mlp: IntegerMLP) -> IntegerMLP:
    return IntegerMLP(mlp.spec, mlp.layers, refinement=REFINEMENT)


def digit_like(n: int, h: int, w: int, seed: int = 3) -> np.ndarray:
    """Mostly 0 with strokes of a few exact values (as MNIST's 253/254 plateaus): what counts learn."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, h, w, 1), dtype=np.uint8)
    for i in range(n):
        r, c = rng.integers(1, h - 3), rng.integers(1, w - 3)
        x[i, r:r + 3, c:c + 2, 0] = rng.choice([252, 253, 254])
        x[i, r - 1, c:c + 2, 0] = 128
    return x


def test_bucket_centres_are_the_documented_ones():
    assert bucket_centres().tolist() == CENTRES


def test_split_points_walk_every_value():
    for v in (0, 1, 2, 127, 128, 200, 254, 255):
        lo, hi, steps = np.array([0]), np.array([256]), 0
        while hi[0] - lo[0] > 1:
            mid = split_points(lo, hi)
            lo, hi = (mid, hi) if v >= mid[0] else (lo, mid)
            steps += 1
        assert lo[0] == v and steps <= 10


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_is_exact(channels):
    spec = PixelModelSpec(rows=1, cols=2, channels=channels, components=3, hidden=(12,), position=True)
    mlp = refined(random_mlp(spec, seed=channels))
    x = smooth_images(6, 7, 9, channels)
    words, bits = encode_block(x, mlp)
    assert np.array_equal(decode_block(words, mlp, 6, (7, 9)), x)
    assert abs(words.size * 32 - bits) <= 0.01 * bits + 64  # the stream is the model's code length


def test_counts_learn_what_a_folder_repeats():
    spec = PixelModelSpec(rows=2, cols=2, channels=1, components=2, hidden=(8,), position=False)
    mlp = random_mlp(spec, seed=9)
    x = digit_like(300, 12, 12)
    plain, better = encode_block(x, mlp)[1], encode_block(x, refined(mlp))[1]
    assert better < 0.8 * plain


def test_counts_start_at_the_model():
    counts = AdaptiveCounts(1)
    p = np.array(CENTRES[1:-1], dtype=np.int64)
    q, _, _ = counts.refine(p, np.zeros(len(p), dtype=np.int64))
    assert np.all(np.abs(q - p) <= 8)  # the prior holds 2 decisions in 2**-12 units: p to within 2**-13


def test_blocks_decode_in_any_order_with_the_refinement():
    spec = PixelModelSpec(rows=1, cols=1, channels=1, components=2, hidden=(8,), position=True)
    mlp = refined(random_mlp(spec, seed=2))
    imgs = [smooth_images(1, h, w, 1, seed=i)[0] for i, (h, w) in enumerate([(8, 8), (5, 7), (8, 8), (5, 7), (8, 8)])]
    shapes = [x.shape for x in imgs]
    coded = encode_images(lambda i: imgs[i], shapes, mlp, max_samples=130)
    again = mlp_of(to_coding(mlp, coded, "L", np.full(5, -1), []))
    assert again.refinement == REFINEMENT
    n = len(coded.block_bounds) - 1
    backward = {i: p for _, got in iter_decoded(coded, shapes, again, block_order=range(n - 1, -1, -1)) for i, p in got}
    assert all(np.array_equal(backward[i], x) for i, x in enumerate(imgs))


def test_archive_keeps_the_refinement_and_refuses_an_unknown_one(tmp_path: Path):
    from test_formats_v13 import pixel_contents

    contents, images = pixel_contents(w=3, refinement=REFINEMENT)
    shapes = [x.shape for x in images]
    path = write_archive(tmp_path / "r.lpk", contents)
    with open_archive(path) as ar:
        assert ar.format_version == "1.5" and ar.pixels.refinement == REFINEMENT
        got = {i: p for _, pairs in iter_decoded(coded_blocks(ar.pixels), shapes, mlp_of(ar.pixels)) for i, p in pairs}
    assert all(np.array_equal(got[i], images[i]) for i in range(3))
    with h5py.File(path, "r+") as f:
        f["pixels"].attrs["refinement"] = "something-newer"
    with pytest.raises(CorruptArchiveError, match="refinement") as err:
        with open_archive(path) as ar:
            ar.pixels
    assert "/pixels" in str(err.value)
