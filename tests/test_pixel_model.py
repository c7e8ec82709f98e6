"""The learned pixel model's integer runtime and coder (latentpack.codec.pixel_model)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from latentpack.codec.pixel_model import luts
from latentpack.codec.pixel_model.blocks import encode_images, iter_decoded, plan_blocks
from latentpack.codec.pixel_model.coder import decode_block, encode_block
from latentpack.codec.pixel_model.network import DenseInt, IntegerMLP, PixelModelSpec, mixture_cdf, mixture_params

#: docs/FORMAT.md states this digest of the lookup tables; a change to them is a format change.
TABLE_SHA256 = "d4b43d0c51ecc20ef1e6f62aef92caafcabd3b172ef628b5ebdcf3c42d96d94a"


def random_mlp(spec: PixelModelSpec, seed: int = 0, scale: int = 2000) -> IntegerMLP:
    rng = np.random.default_rng(seed)
    dims = [spec.inputs, *spec.hidden, spec.outputs]
    layers = [DenseInt(rng.integers(-scale, scale, (a, b)).astype(np.int16),
                       rng.integers(-4000, 4000, b).astype(np.int32), 14, i < len(dims) - 2)
              for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))]
    return IntegerMLP(spec, layers)


def smooth_images(n: int, h: int, w: int, c: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(0, 200, (n, 1, 1, c)) + rng.uniform(-3, 3, (n, 1, 1, c)) * (xx + yy)[None, :, :, None]
    return np.clip(base + rng.normal(0, 4, (n, h, w, c)), 0, 255).astype(np.uint8)


def test_tables_are_the_documented_ones():
    assert luts.table_digest() == TABLE_SHA256
    s = luts.sigmoid_table()
    assert s[0] == 0 and s[luts.SIGMOID_RANGE] == 1 << 15 and s[-1] == 1 << 16
    assert np.all(np.diff(s) >= 0)


@pytest.mark.parametrize("channels, position", [(1, True), (3, False), (4, True), (2, False)])
def test_round_trip_is_exact(channels, position):
    spec = PixelModelSpec(rows=2, cols=2, channels=channels, components=3, hidden=(16, 16), position=position)
    mlp = random_mlp(spec)
    x = smooth_images(5, 9, 13, channels)
    words, bits = encode_block(x, mlp)
    assert np.array_equal(decode_block(words, mlp, 5, (9, 13)), x)
    assert bits > 0


def test_predicted_code_length_matches_the_stream():
    spec = PixelModelSpec(rows=1, cols=1, channels=1, components=2, hidden=(8,), position=False)
    x = smooth_images(40, 24, 24, 1)
    words, bits = encode_block(x, random_mlp(spec, seed=3))
    assert abs(words.size * 32 - bits) <= 0.01 * bits + 64


def test_cdf_is_monotone_and_spans_the_total():
    spec = PixelModelSpec(rows=1, cols=1, channels=1, components=3, hidden=(8,), position=False)
    mlp = random_mlp(spec, seed=5)
    feats = np.random.default_rng(0).integers(0, 4096, (200, spec.inputs))
    params = mixture_params(mlp(feats), spec.components)
    cdf = mixture_cdf(params, np.tile(np.arange(257), (200, 1)))
    assert np.all(cdf[:, 0] == 0) and np.all(np.diff(cdf, axis=1) >= 0)
    assert np.array_equal(cdf[:, -1], params[:, :spec.components].sum(axis=1) << luts.SIGMOID_BITS)


def test_float_and_int64_paths_agree():
    spec = PixelModelSpec(rows=2, cols=1, channels=1, components=2, hidden=(12, 12), position=True)
    mlp = random_mlp(spec, seed=7)
    assert mlp._floats is not None
    feats = np.random.default_rng(1).integers(0, 4096, (500, spec.inputs))
    fast = mlp(feats)
    mlp._floats = None
    assert np.array_equal(fast, mlp(feats))


def test_blocks_group_shapes_and_decode_in_any_order():
    spec = PixelModelSpec(rows=1, cols=2, channels=1, components=2, hidden=(8,), position=True)
    mlp = random_mlp(spec, seed=2)
    imgs = [smooth_images(1, h, w, 1, seed=i)[0] for i, (h, w) in enumerate([(8, 8), (5, 7), (8, 8), (5, 7), (8, 8)])]
    shapes = [x.shape for x in imgs]
    order, bounds = plan_blocks(shapes, max_samples=130)
    assert sorted(order.tolist()) == list(range(5))
    coded = encode_images(lambda i: imgs[i], shapes, mlp, max_samples=130)
    forward = {i: p for _, got in iter_decoded(coded, shapes, mlp) for i, p in got}
    backward = {i: p for _, got in iter_decoded(coded, shapes, mlp, block_order=range(len(bounds) - 2, -1, -1))
                for i, p in got}
    for i, x in enumerate(imgs):
        assert np.array_equal(forward[i], x) and np.array_equal(backward[i], x)
    only = dict(p for _, got in iter_decoded(coded, shapes, mlp, wanted=[3]) for p in got)
    assert np.array_equal(only[3], imgs[3])


_THREADS_SCRIPT = """
import hashlib, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from tests.test_pixel_model import random_mlp, smooth_images
from latentpack.codec.pixel_model.network import PixelModelSpec
from latentpack.codec.pixel_model.network import IntegerMLP
from latentpack.codec.pixel_model.coder import encode_block
spec = PixelModelSpec(rows=2, cols=2, channels=3, components=3, hidden=(64, 64), position=True)
mlp = random_mlp(spec, seed=11)
for refinement in (None, "node-context-counts"):
    words, _ = encode_block(smooth_images(64, 16, 16, 3), IntegerMLP(spec, mlp.layers, refinement=refinement))
    print(hashlib.sha256(words.tobytes()).hexdigest())
"""


def test_same_stream_with_one_and_two_blas_threads():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, root], env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_element_round_trip_rebuilds_the_network():
    from latentpack.codec.pixel_model.blocks import coded_blocks, mlp_of, to_coding

    spec = PixelModelSpec(rows=2, cols=1, channels=3, components=2, hidden=(8, 6), position=True)
    mlp = random_mlp(spec, seed=4)
    imgs = smooth_images(3, 6, 5, 3)
    coded = encode_images(lambda i: imgs[i], [x.shape for x in imgs], mlp)
    coding = to_coding(mlp, coded, "RGB", np.full(3, -1), [])
    again = mlp_of(coding)
    assert again.spec == spec and coding.model_scalars == sum(l.kernel.size + l.bias.size for l in mlp.layers)
    got = {i: p for _, pairs in iter_decoded(coded_blocks(coding), [x.shape for x in imgs], again) for i, p in pairs}
    assert all(np.array_equal(got[i], imgs[i]) for i in range(3))
