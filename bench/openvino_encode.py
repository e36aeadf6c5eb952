"""OpenVINO (fp32, int8) and torch dynamic int8 against PyTorch for the default model.

Why: issue 4 asks whether an optional encoding backend reaches >= 2x the PyTorch throughput
on this CPU without losing quality. ONNX Runtime did not (bench/onnx_encode.py). This tries
the OpenVINO runtime directly (sentence-transformers' own OpenVINO backend needs optimum,
which conflicts with transformers >= 5): the model is converted in-process with
``openvino.convert_model`` (BERT + mean pooling + L2 normalisation, as bench/onnx_encode.py
exports it) and compiled for the CPU with 2 inference threads, with a LATENCY hint (one
synchronous request per batch) and a THROUGHPUT hint (2 streams of 1 thread fed by an
AsyncInferQueue: it only helps when >= 2 batches are in flight, so not with one batch per call).
int8 variants: weight-only compression (``nncf.compress_weights``, INT8_ASYM) and full
post-training quantization (``nncf.quantize``, 300 UCI headlines outside the timed set), and
torch's ``quantize_dynamic`` on the Linear layers. Same tokenizer, same texts (the project's
``Article.embed_text``), batch 32, texts sorted by length as sentence-transformers does.

The machine is shared and noisy, so every figure is a ratio taken side by side: whole passes
of every backend alternate, ``--reps`` times, and the table shows the median rate and the
median of the per-pass ratios to torch; the load average is printed with each table. Then
throughput against batch size (1, 8, 32) and, on full articles, max sequence length 256
against 128.

Result on the 2-core AVX2 box, 2026-11-27 (quiet machine): no backend is near 2x at
batch 32 (OpenVINO fp32 1.1-1.2x; int8 is slower or moves embeddings);
OpenVINO is ~2.8x at batch 1 and degrades far less than torch when the CPU is contended;
max_seq_length 128 doubles full-article throughput.

Needs the optional packages (not in the worker's stack):
    .venv/bin/pip install openvino==2026.4.1 nncf==3.4.0
(nncf only for the int8 rows; without it they are skipped.)
Run: .venv/bin/python bench/openvino_encode.py [--quick] [--reps N]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import load_settings  # noqa: E402
from streams.engine.embedding import Embedder, openvino_graph  # noqa: E402
from streams.engine.offline import read_jsonl  # noqa: E402
from streams.engine.validation import InvalidArticle, article_from_mapping  # noqa: E402

_UCI = Path(__file__).resolve().parents[1] / "data" / "uci-headlines-dev.jsonl"
_ECB = Path(__file__).resolve().parents[1] / "data" / "ecbplus-dev.jsonl"
_SAMPLE = ROOT / "streams" / "samples" / "uci-headlines-sample.jsonl"
_DIM = 384
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Encode = Callable[[Sequence[str], int], np.ndarray]


def _texts(path: Path, max_chars: int) -> list[str]:
    texts = []
    for row in read_jsonl(path):
        try:
            texts.append(article_from_mapping(row).embed_text(max_chars))
        except InvalidArticle:
            continue
    return texts


def _by_length(texts: Sequence[str], batch: int) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Batches of texts, longest first (as sentence-transformers batches), with their rows."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch):
        rows = order[start : start + batch]
        yield rows, [texts[i] for i in rows]


class OpenVINOBackend:
    """An OpenVINO model compiled for the CPU, fed the sentence-transformers tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, hint: str, max_length: int = 256) -> None:
        import openvino as ov

        config = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": 2}
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.hint = hint
        self.request = self.compiled.create_infer_request()
        jobs = self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        self.queue = ov.AsyncInferQueue(self.compiled, jobs)

    def _feeds(self, texts: list[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        return {name: enc[name] for name in _INPUTS}

    def encode(self, texts: Sequence[str], batch: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), _DIM), dtype=np.float32)
        if self.hint == "LATENCY":  # one synchronous request per batch
            for rows, chunk in _by_length(texts, batch):
                out[rows] = self.request.infer(self._feeds(chunk))[0]
            return out

        def done(request: Any, rows: np.ndarray) -> None:
            out[rows] = request.get_output_tensor(0).data

        self.queue.set_callback(done)  # THROUGHPUT: batches run on parallel streams
        for rows, chunk in _by_length(texts, batch):
            self.queue.start_async(self._feeds(chunk), rows)
        self.queue.wait_all()
        return out


def _backends(embedder: Embedder, calibration: list[str]) -> dict[str, Encode]:
    """Every backend to time, torch first (the baseline)."""
    import openvino as ov
    import torch

    model = embedder.load()
    tokenizer = model.tokenizer
    folder = Path(tempfile.mkdtemp(prefix="storywatch-openvino-"))
    fp32 = openvino_graph(model)
    ov.save_model(fp32, str(folder / "minilm.xml"))  # each variant below starts from a copy
    core = ov.Core()

    def fresh() -> Any:
        return core.read_model(str(folder / "minilm.xml"))

    def st_encode(st: Any) -> Encode:
        def run(texts: Sequence[str], batch: int = 32) -> np.ndarray:
            vectors = st.encode(
                list(texts),
                batch_size=batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return np.asarray(vectors, dtype=np.float32)

        return run

    backends: dict[str, Encode] = {
        "torch (sentence-transformers)": st_encode(model),
        "openvino fp32, LATENCY": OpenVINOBackend(fresh(), tokenizer, "LATENCY").encode,
        "openvino fp32, THROUGHPUT": OpenVINOBackend(fresh(), tokenizer, "THROUGHPUT").encode,
    }
    try:
        import nncf
    except ImportError:
        print("nncf not installed: the openvino int8 rows are skipped")
    else:
        weights = nncf.compress_weights(fresh(), mode=nncf.CompressWeightsMode.INT8_ASYM)
        backends["openvino int8 weights, THROUGHPUT"] = OpenVINOBackend(
            weights, tokenizer, "THROUGHPUT"
        ).encode
        feeds = [
            {k: v for k, v in tokenizer([t], return_tensors="np").items() if k in _INPUTS}
            for t in calibration
        ]
        ptq = nncf.quantize(
            fresh(), nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=300
        )
        backends["openvino int8 PTQ, THROUGHPUT"] = OpenVINOBackend(
            ptq, tokenizer, "THROUGHPUT"
        ).encode
    quantized = copy.deepcopy(model)
    torch.ao.quantization.quantize_dynamic(
        quantized[0].auto_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
    )
    backends["torch dynamic int8 (Linear)"] = st_encode(quantized)
    return backends


def _compare(
    backends: dict[str, Encode], texts: list[str], reps: int, batch: int = 32
) -> list[str]:
    """Whole passes alternate between backends; median rate and median per-pass ratio."""
    rates: dict[str, list[float]] = {name: [] for name in backends}
    vectors: dict[str, np.ndarray] = {}
    for encode in backends.values():
        encode(texts[: 2 * batch], batch)  # warm-up (and OpenVINO's first-shape compile)
    for _ in range(reps):
        for name, encode in backends.items():
            started = time.perf_counter()
            vectors[name] = encode(texts, batch)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    base = next(iter(backends))
    lines = []
    for name in backends:
        ratio = statistics.median(a / b for a, b in zip(rates[name], rates[base], strict=True))
        cos = (vectors[name] * vectors[base]).sum(axis=1)
        lines.append(
            f"| {name} | {statistics.median(rates[name]):.1f} | {ratio:.2f}x | "
            f"{cos.mean():.4f} / {cos.min():.4f} |"
        )
    return lines


def _table(title: str, lines: list[str]) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"\n{title} (loadavg {' '.join(load)})")
    print("| backend | texts/s | vs torch | mean / min cosine to torch |\n|---|---:|---:|---:|")
    print("\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="128 headlines and 16 articles, 2 passes"
    )
    parser.add_argument("--reps", type=int, default=0, help="passes per backend (default 5)")
    args = parser.parse_args()
    try:
        import openvino
        import torch
    except ImportError:
        sys.exit("needs openvino: run .venv/bin/pip install openvino==2026.4.1 nncf==3.4.0")

    reps = args.reps or (2 if args.quick else 5)
    max_chars = load_settings().embed_max_chars
    headlines = _texts(_UCI if _UCI.exists() else _SAMPLE, max_chars)
    articles = _texts(_ECB, max_chars) if _ECB.exists() else []
    timed = headlines[: 128 if args.quick else 512]
    calibration = headlines[1000:1300] if len(headlines) >= 1300 else headlines[-300:]
    articles = articles[: 16 if args.quick else 64]
    embedder = Embedder()
    backends = _backends(embedder, calibration)
    torch_name = "torch (sentence-transformers)"

    _table(f"{len(timed)} headlines, batch 32, {reps} passes", _compare(backends, timed, reps))
    if articles:
        lines = _compare(backends, articles, max(2, reps - 2))
        _table(f"{len(articles)} full articles, batch 32", lines)
        short = copy.deepcopy(embedder.load())
        short.max_seq_length = 128
        model_128 = OpenVINOBackend(openvino_graph(short), short.tokenizer, "LATENCY", 128)
        pair = {
            "torch, max_seq_length 256": backends[torch_name],
            "torch, max_seq_length 128": lambda t, b: np.asarray(
                short.encode(list(t), batch_size=b, normalize_embeddings=True)
            ),
            "openvino fp32 LATENCY, max_length 128": model_128.encode,
        }
        lines = _compare(pair, articles, max(2, reps - 2))
        _table(f"{len(articles)} full articles, sequence length (cosine to 256)", lines)
    names = (torch_name, "openvino fp32, LATENCY", "openvino fp32, THROUGHPUT")
    pair = {name: backends[name] for name in names}
    for batch in (1, 8, 32):
        lines = _compare(pair, timed[:256], max(2, reps - 2), batch)
        _table(f"{len(timed[:256])} headlines, batch {batch}", lines)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"\nopenvino {openvino.__version__}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, {when}"
    )


if __name__ == "__main__":
    main()
