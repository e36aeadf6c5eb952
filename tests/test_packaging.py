"""The package as the Docker image installs it (`pip install .`, not editable): the wheel holds
every module and data file, and `storywatch --help` runs from it, away from this checkout.

A listed package set once missed streams.read_model and streams.replay: an editable install
(what `make venv` does) never shows that, since it imports from the checkout itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "streams", "agents")

# Imports every module of the installed copy and checks that each came from it.
_IMPORT_ALL = """
import importlib, pathlib, sys
site = pathlib.Path(sys.argv[1]).resolve()
names = sys.argv[2:]
for name in names:
    module = importlib.import_module(name)
    where = pathlib.Path(module.__file__).resolve()
    assert where.is_relative_to(site), f"{name} imported from {where}, not the wheel"
print(f"imported {len(names)} modules from the wheel")
"""


def _modules(root: Path) -> list[str]:
    """Dotted names of every module under the packages at ``root``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, unpacked as pip would install it."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the build reads, not from the checkout: setuptools reuses a
    # checkout's build/ folder, whose stale copies of deleted or moved modules would land in
    # the wheel (and hide a module the wheel misses).
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT_ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, source / package, ignore=skip)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(out), str(source)], check=True, cwd=out)
    (wheel,) = out.glob("storywatch-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def _run(site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Python with the unpacked wheel first and the venv's dependencies after it, without
    site processing (so the editable install's import hook stays out), outside the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYWATCH_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])
    return subprocess.run(
        [sys.executable, "-S", *argv],
        check=False,
        env=env,
        cwd=site.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_wheel_holds_every_module_and_data_file(installed: Path) -> None:
    assert _modules(installed) == _modules(PROJECT_ROOT)
    for pattern in ("streams/samples/*.jsonl", "streams/web/static/*"):
        want = {p.relative_to(PROJECT_ROOT) for p in PROJECT_ROOT.glob(pattern)}
        have = {p.relative_to(installed) for p in installed.glob(pattern)}
        assert want and want == have, pattern


def test_every_module_imports_from_the_installed_copy(installed: Path) -> None:
    result = _run(installed, "-c", _IMPORT_ALL, str(installed), *_modules(installed))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(_modules(PROJECT_ROOT))} modules" in result.stdout


def test_the_cli_runs_from_the_installed_copy(installed: Path) -> None:
    result = _run(installed, "-m", "streams.cli", "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Usage:" in result.stdout and "worker" in result.stdout
