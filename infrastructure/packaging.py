"""The code asset, staged by Python (no Docker): skylift/, functions/, the user's model
package(s) and skylift.toml at the root, exactly what the functions import, with
unchecked-hash bytecode compiled by the runtime's Python version (see layers/bytecode.py)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from layers.bytecode import compile_sources
from layers.interpreter import find_interpreter
from skylift.config import SkyliftConfig

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / ".skylift" / "assets"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "data")

DOCKERFILE = """\
# The functions as a Lambda container image, for dependencies that outgrow a layer.
FROM public.ecr.aws/lambda/python:{python_version}
COPY requirements.txt ${{LAMBDA_TASK_ROOT}}/requirements.txt
RUN pip install --no-cache-dir -r ${{LAMBDA_TASK_ROOT}}/requirements.txt
COPY . ${{LAMBDA_TASK_ROOT}}
"""


def user_packages(config: SkyliftConfig) -> list[Path]:
    """Python packages under the config's source_dir (the user's model code)."""
    source = config.source_path
    return sorted(
        p
        for p in source.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("skylift", "functions")
    )


def stage_code_asset(config: SkyliftConfig, *, image: bool = False) -> Path:
    """Copy the code into a content-addressed folder and return it (reused when unchanged)."""
    sources = [ROOT / "skylift", ROOT / "functions", *user_packages(config)]
    digest = hashlib.sha256()
    for source in sources:
        for file in sorted(source.rglob("*.py")):
            digest.update(str(file.relative_to(source.parent)).encode())
            digest.update(file.read_bytes())
    assert config.config_path is not None
    digest.update(config.config_path.read_bytes())
    digest.update(b"image" if image else b"zip")
    digest.update(config.deploy.python_version.encode())
    target = STAGING / f"code-{digest.hexdigest()[:16]}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for source in sources:
            shutil.copytree(source, target / source.name, ignore=IGNORE)
        shutil.copy(config.config_path, target / "skylift.toml")
        compile_sources(
            find_interpreter(config.deploy.python_version),
            [target / source.name for source in sources],
        )
        if image:
            shutil.copy(ROOT / "layers" / "requirements.txt", target / "requirements.txt")
            (target / "Dockerfile").write_text(
                DOCKERFILE.format(python_version=config.deploy.python_version)
            )
        (target / ".complete").write_text("")
    return target
