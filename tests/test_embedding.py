"""The Embedder's backends and token limit on the real default model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


_POLICY_PROBE = """
import os, sys
from config.settings import load_settings
from streams.pipeline import build_app
build_app(load_settings())  # what the worker builds (every agent registered)
assert "torch" not in sys.modules, "torch loaded before the model: its thread policy is fixed"
from streams.engine.embedding import Embedder
Embedder().load()
import torch
torch.ones(64, 64) @ torch.ones(64, 64)  # the OpenMP pool starts
print(os.environ["OMP_WAIT_POLICY"])
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_model_threads_sleep_when_idle_unless_told_otherwise(
    given: str | None, expected: str
) -> None:
    """The worker imports its modules without torch, so the model's OpenMP threads start with
    OMP_WAIT_POLICY=PASSIVE (set before torch loads); an operator's own value is kept."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    probe = subprocess.run(
        [sys.executable, "-c", _POLICY_PROBE],
        check=False,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.split()[-1] == expected
