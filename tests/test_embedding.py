"""The Embedder's backends and token limit on the real default model."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from streams.engine.embedding import Embedder
from streams.exceptions import ModelLoadError

pytestmark = pytest.mark.model

TEXTS = [
    "Fed official says weak data caused by weather, should not slow taper",
    "Magnitude 8.8 earthquake strikes central Chile",
    "GM recall",
    "Same length one",
    "Same length two",
    "Markets " + "rally on strong earnings and rate hopes " * 60,  # past 256 word pieces
]


@pytest.fixture(scope="module")
def torch_vectors(embedder: Embedder) -> np.ndarray:
    return embedder.encode(TEXTS)


def test_openvino_gives_the_torch_vectors_in_input_order(torch_vectors: np.ndarray) -> None:
    # batch 2: several batches, some padded, one of two equal-length texts (no padding)
    openvino = Embedder(batch_size=2, backend="openvino")
    vectors = openvino.encode(TEXTS)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert openvino.encode(TEXTS[:1]).shape == (1, 384)
    assert openvino.encode([]).shape == (0, 384)


def test_max_tokens_truncates_only_long_texts(torch_vectors: np.ndarray) -> None:
    short = Embedder(max_tokens=128)
    assert short.load().max_seq_length == 128
    vectors = short.encode(TEXTS)
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines[:5].min() > 0.9999  # under 128 word pieces: unchanged
    assert cosines[5] < 0.9999  # the long text lost its tail
    assert Embedder(max_tokens=1000).load().max_seq_length == 256  # never above the model's


def test_unknown_backend_and_missing_openvino_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ModelLoadError, match="unknown embedding backend 'onnx'"):
        Embedder(backend="onnx")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(ModelLoadError, match="STORYWATCH_EMBED_BACKEND=torch"):
        Embedder(backend="openvino").load()
