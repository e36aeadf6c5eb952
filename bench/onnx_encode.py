"""ONNX Runtime (fp32 and dynamic int8) against PyTorch for the default model, side by side.

Why: issue 4 asks whether an optional ONNX / int8 backend reaches >= 2x the PyTorch
throughput on this CPU without losing quality. sentence-transformers' own ONNX backend needs
optimum-onnx, which pins transformers < 4.58 (this project needs >= 5), so this exports the
model with ``torch.onnx`` (legacy exporter) and runs it with onnxruntime directly: BERT + mean
pooling + L2 normalisation, the same tokenizer, the same texts and batch size, in one run.

Needs the optional packages: ``.venv/bin/pip install -e '.[onnx]'``.
Run: .venv/bin/python bench/onnx_encode.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.engine.embedding import Embedder  # noqa: E402

_UCI = Path(__file__).resolve().parents[1] / "data" / "uci-headlines-dev.jsonl"
_SAMPLE = ROOT / "streams" / "samples" / "uci-headlines-sample.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 headlines instead of 512")
    args = parser.parse_args()
    try:
        import onnxruntime as ort
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        sys.exit("needs onnx and onnxruntime: run .venv/bin/pip install -e '.[onnx]'")

    source = _UCI if _UCI.exists() else _SAMPLE
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    texts = [r["title"] for r in rows][: 128 if args.quick else 512]
    batch = 32
    embedder = Embedder()
    model = embedder.load()
    tokenizer = model.tokenizer
    bert = model[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor):
            out = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
            weights = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    folder = Path(tempfile.mkdtemp(prefix="storywatch-onnx-"))
    fp32, int8 = folder / "minilm.onnx", folder / "minilm-int8.onnx"
    sample = tokenizer(["a", "b c"], padding=True, return_tensors="pt")
    axes = {"b": 0, "s": 1}
    torch.onnx.export(
        Pooled(),
        (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
        str(fp32),
        input_names=["ids", "mask", "types"],
        output_names=["emb"],
        dynamic_axes={n: {v: k for k, v in axes.items()} for n in ("ids", "mask", "types")}
        | {"emb": {0: "b"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)

    def run_onnx(path: Path) -> np.ndarray:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out = []
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                texts[start : start + batch],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="np",
            )
            feeds = {
                "ids": enc["input_ids"],
                "mask": enc["attention_mask"],
                "types": enc["token_type_ids"],
            }
            out.append(session.run(None, feeds)[0])
        return np.concatenate(out)

    embedder.encode(texts[:batch])  # warm-up
    started = time.perf_counter()
    reference = embedder.encode(texts)
    torch_rate = len(texts) / (time.perf_counter() - started)
    print("| backend | texts/s | vs torch | mean / min cosine to torch |\n|---|---:|---:|---:|")
    print(f"| torch (sentence-transformers) | {torch_rate:.1f} | 1.00x | 1 / 1 |")
    for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8 (dynamic)", int8)):
        run_onnx(path)  # warm-up and session build
        started = time.perf_counter()
        vectors = run_onnx(path)
        rate = len(texts) / (time.perf_counter() - started)
        cos = (vectors * reference).sum(axis=1)
        print(
            f"| {name} | {rate:.1f} | {rate / torch_rate:.2f}x | "
            f"{cos.mean():.4f} / {cos.min():.4f} |"
        )
    print(f"\n{len(texts)} headlines, batch {batch}, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
