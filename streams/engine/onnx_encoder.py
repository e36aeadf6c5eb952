"""A sentence encoder over an ONNX transformer: ``tokenizers`` + ONNX Runtime + pooling.

The models Maven Central serves (streams/engine/models.py) are bare transformer graphs
(``last_hidden_state`` out); the pooling, prefix and normalisation of each model card are
done here in numpy. Texts are sorted by length into batches (less padding), as
sentence-transformers does, and the vectors come back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.engine.models import OnnxModelSpec
from streams.exceptions import ModelLoadError

__all__ = ["OnnxEncoder"]


class OnnxEncoder:
    """Encodes texts to unit float32 vectors with one ONNX model from its folder."""

    def __init__(
        self,
        spec: OnnxModelSpec,
        folder: Path,
        *,
        batch_size: int = 32,
        max_tokens: int | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelLoadError(
                f"the {spec.name} model needs onnxruntime and tokenizers: run `make venv`"
            ) from exc
        self.spec = spec
        self.batch_size = 1 if spec.one_text_a_run else batch_size
        self.max_tokens = min(max_tokens or spec.max_tokens, spec.limit)
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            options = ort.SessionOptions()
            if threads is not None:
                options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(
                str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load {spec.name} from {folder}: {exc}; delete the folder and run "
                "`make models` again"
            ) from exc
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()  # padded per batch below, to the batch's longest text
        self._inputs = {i.name for i in self.session.get_inputs()}

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode_batch([self.spec.prefix + texts[i] for i in rows])
        return out

    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        types = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = types
        hidden = self.session.run(["last_hidden_state"], feeds)[0]
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(hidden.dtype)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norms, dtype=np.float32)
