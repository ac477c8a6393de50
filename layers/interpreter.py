"""Find an interpreter of the Lambda runtime's Python version.

Bytecode shipped in the layer and the code asset is only used by the version that compiled it
(the magic number differs between 3.11, 3.12 and 3.13), so the build needs that exact minor
version: on PATH, under pyenv, or known to uv. ``SKYLIFT_TARGET_PYTHON`` names one explicitly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from packaging.version import InvalidVersion, Version

__all__ = ["TARGET_PYTHON_ENV", "InterpreterNotFoundError", "find_interpreter"]

TARGET_PYTHON_ENV = "SKYLIFT_TARGET_PYTHON"


class InterpreterNotFoundError(RuntimeError):
    """No interpreter of the runtime's version: the layer would ship without bytecode."""


def _minor_version(python: str) -> str | None:
    """``X.Y`` of the interpreter, or None when it does not run (e.g. an inactive pyenv shim)."""
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _patch_level(path: Path) -> Version:
    try:
        return Version(path.name)
    except InvalidVersion:
        return Version("0")


def _pyenv_candidates(version: str) -> list[str]:
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    if pyenv := shutil.which("pyenv"):
        result = subprocess.run([pyenv, "root"], capture_output=True, text=True)
        roots.insert(0, result.stdout.strip() if result.returncode == 0 else None)
    found: list[Path] = []
    for root in filter(None, roots):
        found += (Path(root) / "versions").glob(f"{version}.*")
    newest_first = sorted(set(found), key=_patch_level, reverse=True)
    return [str(p / "bin" / f"python{version}") for p in newest_first]


def _uv_candidates(version: str) -> list[str]:
    uv = shutil.which("uv")
    if uv is None:
        return []
    result = subprocess.run([uv, "python", "find", version], capture_output=True, text=True)
    return [result.stdout.strip()] if result.returncode == 0 and result.stdout.strip() else []


def find_interpreter(version: str) -> str:
    """The path of a working ``python{version}``; raises with the remedy when there is none."""
    candidates = [os.environ.get(TARGET_PYTHON_ENV, ""), shutil.which(f"python{version}") or ""]
    candidates += _pyenv_candidates(version) + _uv_candidates(version)
    tried = []
    for candidate in filter(None, candidates):
        if _minor_version(candidate) == version:
            return candidate
        tried.append(candidate)
    raise InterpreterNotFoundError(
        f"no Python {version} interpreter found (tried: {', '.join(tried) or 'PATH, pyenv, uv'}). "
        f"The layer's bytecode must be compiled by the Lambda runtime's version "
        f"([deploy].python_version = {version!r}): install it (`pyenv install {version}`, "
        f"`uv python install {version}`, or your OS package), or set {TARGET_PYTHON_ENV} to "
        f"its path."
    )
