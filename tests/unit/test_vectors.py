"""Vector (de)serialisation is exact; unit() normalises."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from streams.engine.vectors import decode_vector, encode_vector, unit


def test_round_trip_is_bit_exact() -> None:
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(384).astype(np.float32)
    vector[:4] = [np.float32(1e-38), np.float32(-0.0), np.float32(3.4e38), np.float32(1 / 3)]
    decoded = decode_vector(encode_vector(vector))
    assert decoded.dtype == np.float32
    assert decoded.shape == vector.shape
    assert decoded.tobytes() == vector.tobytes()


def test_encoding_is_little_endian_float32_base64() -> None:
    text = encode_vector(np.array([1.0, -2.0], dtype=np.float32))
    assert base64.b64decode(text) == np.array([1.0, -2.0], dtype="<f4").tobytes()
    # Float64 and big-endian input encode to the same float32 little-endian bytes.
    assert encode_vector(np.array([1.0, -2.0], dtype=np.float64)) == text
    assert encode_vector(np.array([1.0, -2.0], dtype=">f4")) == text


def test_decoded_vector_is_writable() -> None:
    decoded = decode_vector(encode_vector(np.ones(3, dtype=np.float32)))
    decoded += 1  # the engine adds vectors to centroid sums in place
    assert decoded.tolist() == [2.0, 2.0, 2.0]


def test_unit_scales_to_length_one() -> None:
    out = unit(np.array([3.0, 4.0], dtype=np.float32))
    assert out.dtype == np.float32
    assert out.tolist() == pytest.approx([0.6, 0.8])
    assert float(np.linalg.norm(out)) == pytest.approx(1.0)


def test_unit_keeps_direction_and_zero() -> None:
    v = np.array([0.0, -5.0, 0.0], dtype=np.float32)
    assert unit(v).tolist() == pytest.approx([0.0, -1.0, 0.0])
    zero = unit(np.zeros(4, dtype=np.float32))
    assert zero.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert not np.isnan(zero).any()
