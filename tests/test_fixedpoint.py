"""The fixed-point decoder: exact, repeatable, and the same as plain integer arithmetic."""
from __future__ import annotations

import numpy as np
import pytest

import latentpack.codec.runtime.fixedpoint as fixedpoint
import latentpack.codec.entropy.latent_coding as latent_coding
import latentpack.codec.runtime.reconstruct as reconstruct
from latentpack.codec.entropy.range_coding import CountModels, decode_runs, encode_runs, quantize_counts
from latentpack.codec.runtime.fixedpoint import ACC_BITS, ACT_BITS, FixedPointDecoder, compute_thresholds
from latentpack.codec.index_codes import index_codes
from latentpack.codec.entropy.latent_coding import channel_index, decode_latents, dequantize, encode_latents, quantize_latents
from latentpack.codec.entropy.residual import ContextParams, count_table, decode_block, encode_block
from latentpack.formats import IndexCodes, Latents, validate_architecture

from archive_factory import dense_architecture

STEP = 0.25


def _weights(spec, rng):
    out = {}
    for layer in spec.layers:
        if layer.weight_shapes:
            out[layer.name] = {n: rng.normal(0, 0.5, s).astype(np.float32) for n, s in layer.weight_shapes}
    return out


def _rshift(a: int, n: int) -> int:
    return (a + (1 << (n - 1))) >> n


def _reference(spec, weights, q: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The dense test decoder in plain Python integers, one multiply-add at a time."""
    unit = STEP
    ints = {}
    for layer in spec.layers:
        if layer.weight_shapes:
            k = np.rint(weights[layer.name]["kernel"].astype(np.float64) * unit * (1 << ACC_BITS)).astype(np.int64)
            b = np.rint(weights[layer.name]["bias"].astype(np.float64) * (1 << ACC_BITS)).astype(np.int64)
            ints[layer.name] = (k.tolist(), b.tolist())
            unit = 1.0 / (1 << ACT_BITS)
    x = [int(v) for v in q.reshape(-1)]
    k, b = ints["g_s_dense"]
    x = [max(0, _rshift(sum(x[i] * k[i][o] for i in range(len(x))) + b[o], ACC_BITS - ACT_BITS)) for o in range(len(b))]
    grid = [[[x[(r * 7 + c) * 2 + ch] for ch in range(2)] for c in range(7)] for r in range(7)]
    # Conv2DTranspose, kernel (3, 3, out, in), stride 2, 'same': scatter to a 15x15 canvas, crop from 0
    k, b = ints["g_s_up0"]
    canvas = [[[0] * 2 for _ in range(15)] for _ in range(15)]
    for r in range(7):
        for c in range(7):
            for di in range(3):
                for dj in range(3):
                    for o in range(2):
                        canvas[r * 2 + di][c * 2 + dj][o] += sum(grid[r][c][i] * k[di][dj][o][i] for i in range(2))
    up = [[[max(0, _rshift(canvas[r][c][o] + b[o], ACC_BITS - ACT_BITS)) for o in range(2)] for c in range(14)]
          for r in range(14)]
    # Conv2D 3x3 'same' to one channel, then the thresholds
    k, b = ints["g_s_out"]
    out = np.zeros((14, 14, 1), np.uint8)
    for r in range(14):
        for c in range(14):
            acc = b[0]
            for di in range(3):
                for dj in range(3):
                    rr, cc = r + di - 1, c + dj - 1
                    if 0 <= rr < 14 and 0 <= cc < 14:
                        acc += sum(up[rr][cc][i] * k[di][dj][i][0] for i in range(2))
            out[r, c, 0] = sum(1 for t in thresholds.tolist() if acc >= t)
    return out


@pytest.fixture
def decoder():
    spec = validate_architecture(dense_architecture(4))
    weights = _weights(spec, np.random.default_rng(0))
    return spec, weights, FixedPointDecoder(spec, weights, STEP, compute_thresholds("sigmoid"))


def test_prediction_equals_plain_integer_arithmetic(decoder) -> None:
    spec, weights, fp = decoder
    q = np.random.default_rng(1).integers(-12, 13, (3, 1, 1, 4))
    got = fp(q)
    assert got.dtype == np.uint8 and got.shape == (3, 14, 14, 1)
    for k in range(3):
        assert np.array_equal(got[k], _reference(spec, weights, q[k], fp.thresholds))


def test_prediction_is_repeatable_and_independent_of_float_sums(decoder, monkeypatch) -> None:
    _, _, fp = decoder
    q = np.random.default_rng(2).integers(-40, 41, (64, 1, 1, 4))
    first = fp(q)
    assert np.array_equal(first, fp(q))
    assert np.array_equal(first[5:6], fp(q[5:6]))  # batch composition does not matter
    monkeypatch.setattr(fixedpoint, "EXACT_FLOAT_LIMIT", 0)  # force int64 sums everywhere
    assert np.array_equal(first, fp(q))


def test_prediction_tracks_the_float_decoder(decoder) -> None:
    from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
    from latentpack.codec.runtime.reconstruct import to_uint8

    spec, weights, fp = decoder
    q = np.random.default_rng(3).integers(-12, 13, (8, 1, 1, 4))
    ref = to_uint8(NumpyDecoder(spec, weights)(q.astype(np.float32) * STEP))
    assert np.abs(fp(q).astype(int) - ref.astype(int)).max() <= 1


def test_thresholds_invert_the_activation() -> None:
    t = compute_thresholds("sigmoid")
    assert t.shape == (255,) and np.all(np.diff(t) > 0)
    assert abs(t[127] / (1 << ACC_BITS)) < 0.01  # 127.5/255 = sigmoid(~0)
    lin = compute_thresholds("linear")
    assert lin[0] == int(np.ceil(0.5 / 255 * (1 << ACC_BITS)))
    with pytest.raises(ValueError, match="`activation`"):
        compute_thresholds("softmax")


def test_mlp_design_runs_in_fixed_point() -> None:
    """The fully connected design ends with weights (a 1x1 convolution), so lossless archives can use it."""
    from latentpack.codec.design import design_codec
    from latentpack.codec.runtime.numpy_decoder import NumpyDecoder
    from latentpack.codec.runtime.reconstruct import to_uint8

    spec = validate_architecture(design_codec([(6, 5)], "RGB", arch="mlp", latent_dims=4, filters=8).decoder)
    weights = _weights(spec, np.random.default_rng(4))
    fp = FixedPointDecoder(spec, weights, STEP, compute_thresholds("sigmoid"))
    q = np.random.default_rng(5).integers(-12, 13, (6, 1, 1, 4))
    got = fp(q)
    assert got.dtype == np.uint8 and got.shape == (6, 6, 5, 3)
    ref = to_uint8(NumpyDecoder(spec, weights)(q.astype(np.float32) * STEP))
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_hidden_sigmoid_is_refused() -> None:
    arch = dense_architecture(4)
    arch["layers"][1]["config"]["activation"] = "sigmoid"
    spec = validate_architecture(arch)
    with pytest.raises(ValueError, match="g_s_dense"):
        FixedPointDecoder(spec, _weights(spec, np.random.default_rng(0)), STEP, compute_thresholds("sigmoid"))


def test_runs_round_trip() -> None:
    import constriction

    RangeEncoder, RangeDecoder = constriction.stream.queue.RangeEncoder, constriction.stream.queue.RangeDecoder
    rng = np.random.default_rng(0)
    counts = quantize_counts(rng.integers(0, 1000, (3, 7)))
    ctx = np.sort(rng.integers(0, 3, 500))
    symbols = rng.integers(0, 7, 500)
    enc = RangeEncoder()
    encode_runs(enc, symbols, ctx, CountModels(counts))
    assert np.array_equal(decode_runs(RangeDecoder(enc.get_compressed()), ctx, CountModels(counts)), symbols)


def test_quantize_counts_keeps_seen_symbols() -> None:
    got = quantize_counts(np.array([[10**9, 1, 0, 5]]))
    assert got.dtype == np.uint16 and got[0, 1] >= 1 and got[0, 2] == 0 and int(got.sum()) <= 65535


def test_block_round_trip_mixed_shapes() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(5, 7, 1), (1, 1, 1), (9, 4, 1)]]
    preds = [np.clip(x.astype(int) + rng.integers(-3, 4, x.shape), 0, 255).astype(np.uint8) for x in images]
    params = ContextParams(8, 2)
    models = CountModels(count_table(images, preds, params))
    stream = encode_block(images, preds, params, models)
    for got, want in zip(decode_block(stream, preds, params, models), images):
        assert np.array_equal(got, want)


def test_latents_round_trip() -> None:
    rng = np.random.default_rng(2)
    shapes = np.array([[2, 3, 4], [1, 1, 4], [3, 3, 4]], np.int32)
    offsets = np.concatenate([[0], np.cumsum(shapes.prod(axis=1))]).astype(np.int64)
    q = quantize_latents(rng.normal(0, 3, int(offsets[-1])), 0.5)
    coded = encode_latents(q, offsets, shapes, 0.5)
    assert np.array_equal(decode_latents(coded, offsets, shapes), q)


def test_latents_decode_in_chunks_with_a_table_per_channel(monkeypatch) -> None:
    # decoding works CHUNK latents at a time (memory); a chunk size that splits nothing evenly must not matter
    monkeypatch.setattr(latent_coding, "CHUNK", 7)
    monkeypatch.setattr(reconstruct, "CHUNK", 7)
    rng = np.random.default_rng(3)
    shapes = np.array([[4, 5, 3], [1, 1, 2], [6, 3, 3], [2, 2, 1], [5, 5, 3]] * 8, np.int32)
    offsets = np.concatenate([[0], np.cumsum(shapes.prod(axis=1))]).astype(np.int64)
    starts = np.repeat(offsets[:-1], shapes.prod(axis=1))
    want_channels = (np.arange(int(offsets[-1])) - starts) % np.repeat(shapes[:, 2], shapes.prod(axis=1))
    assert np.array_equal(channel_index(offsets, shapes), want_channels)
    q = quantize_latents(rng.normal(0, 0.3, int(offsets[-1])) + 4.0 * want_channels, 0.5)  # a mean per channel
    coded = encode_latents(q, offsets, shapes, 0.5)
    assert len(set(coded.table_of_channel.tolist())) > 1  # the per-channel path
    assert np.array_equal(decode_latents(coded, offsets, shapes), q)
    values = dequantize(q, 0.37)
    assert np.array_equal(values, (q.astype(np.float64) * 0.37).astype(np.float32))
    coded_latents = Latents(values=np.zeros(0, np.float32), offsets=offsets, shapes=shapes, quantized=coded)
    assert np.array_equal(reconstruct.float_latents(coded_latents).values, dequantize(q, 0.5))
    q = rng.integers(-3, 4, int(offsets[-1])).astype(np.int32)
    shared = encode_latents(q, offsets, shapes, 0.5)
    assert len(set(shared.table_of_channel.tolist())) == 1  # one table: decoded without a mask
    assert np.array_equal(decode_latents(shared, offsets, shapes), q)
    generated = Latents(np.zeros(0, np.float32), offsets, shapes, index_codes=IndexCodes(seed=5, step=0.25))
    assert np.array_equal(reconstruct.integer_latents(generated)[0], index_codes(np.arange(int(offsets[-1])), 5))


def test_index_codes_are_pinned() -> None:
    # the rule is part of the format: these values must never change
    codes = index_codes(np.arange(6), 0)
    assert codes.dtype == np.int32 and np.all(np.abs(index_codes(np.arange(10000), 3)) <= 510)
    assert np.array_equal(codes, index_codes(np.arange(6), 0))
    assert codes.tolist() == PINNED


PINNED = [22, -86, -39, 90, 107, 75]
