"""Compact, exact (de)serialisation of float32 vectors for Kafka tables and topics."""

from __future__ import annotations

import base64

import numpy as np
import numpy.typing as npt

__all__ = ["Vector", "decode_vector", "encode_vector", "unit"]

Vector = npt.NDArray[np.float32]


def encode_vector(vector: Vector) -> str:
    """Base64 of the little-endian float32 bytes (1/3 the size of JSON floats, lossless)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> Vector:
    """Inverse of :func:`encode_vector`."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def unit(vector: Vector) -> Vector:
    """``vector`` scaled to length 1 (a float32 copy, unchanged if it is all zeros)."""
    as_f32 = np.asarray(vector, dtype=np.float32)
    # The same float32 arithmetic as np.linalg.norm (sqrt of the dot product) without its
    # dispatch: this runs twice per article in the ordered clustering stage.
    norm = float(np.sqrt(as_f32.dot(as_f32)))
    return as_f32 / np.float32(norm) if norm > 0 else as_f32.copy()
