"""Build the Lambda layer without Docker: pip resolves wheels for Lambda's platform.

``python -m layers.build [--config skylift.toml]`` installs layers/requirements.txt with
``pip install --platform manylinux2014_<arch> --only-binary=:all: --python-version X.Y``
into ``layers/.cache/<hash>/python``, trims it (tests, type stubs, headers, botocore models of
services the functions never call; debug symbols of the packages' own extension modules),
compiles what the handlers import to unchecked-hash bytecode with an interpreter of the
runtime's version (:mod:`layers.bytecode`), caches it by the hash of requirements + platform +
Python version + this recipe, and reports its size. A layer that would not fit Lambda's 250 MB
(unzipped, function code included) fails with a clear message.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from layers.bytecode import HANDLER_MODULES, BytecodeReport, ensure_bytecode
from layers.interpreter import InterpreterNotFoundError, find_interpreter

if TYPE_CHECKING:
    from skylift.config import SkyliftConfig

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
# [deploy].runtime = "onnx": the score and batch functions' layer (no scikit-learn/scipy).
ONNX_REQUIREMENTS = HERE / "requirements-onnx.txt"
# [deploy].runtime = "onnx": the retrain function's layer (sklearn's plus the ONNX exporter).
EXPORTS_REQUIREMENTS = HERE / "requirements-exports.txt"
# skylift.topology.LAYERS -> what each is built from.
LAYER_REQUIREMENTS = {
    "sklearn": REQUIREMENTS,
    "onnx": ONNX_REQUIREMENTS,
    "exports": EXPORTS_REQUIREMENTS,
}
CACHE = HERE / ".cache"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Part of the cache key: a change to how the layer is trimmed or compiled rebuilds it.
RECIPE_VERSION = "5"  # 5: no RECORD files, no Swagger UI assets (the exports layer's room)
# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): wheels tagged up to
# manylinux_2_34 load there. Recent scikit-learn/scipy publish manylinux_2_27/2_28 only.
GLIBC_TAGS = ("2014", "_2_28", "_2_34")
PLATFORMS = {
    arch: [f"manylinux{tag}_{machine}" for tag in GLIBC_TAGS]
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64"))
}
TRIM_DIRS = {"tests", "test", "__pycache__", "benchmarks"}
TRIM_SUFFIXES = (".pyc", ".pyi", ".pxd", ".c", ".cpp", ".h")
# auditwheel's vendored libraries (numpy.libs/, scipy.libs/, ...): strip breaks their program
# headers ("ELF load command address/offset not page-aligned"), so they are left as shipped.
VENDORED_LIBS_SUFFIX = ".libs"
# botocore ships the API models of every AWS service (~25 MB); the functions call these.
BOTOCORE_SERVICES = {
    "s3",
    "sqs",
    "firehose",
    "events",
    "sts",
    "kms",  # signed model bundles: Sign at registration, GetPublicKey/Verify before loading
    "sso",
    "sso-oidc",
    "cloudwatch",
    "logs",
}


# onnxruntime's wheel ships its C library (libonnxruntime.so, 35 MB) for C-API users beside the
# Python binding, which does not load it (readelf: not NEEDED), and model-building tools.
ONNXRUNTIME_UNUSED = (
    "onnxruntime/capi/libonnxruntime.so.*",
    "onnxruntime/transformers",
    "onnxruntime/tools",
    "onnxruntime/quantization",
    "onnxruntime/datasets",
)


# pip's install records (the list of files, for uninstall; onnx's alone is 1.2 MB) and the
# Swagger UI's static files Powertools serves only from an event handler with enable_swagger.
SWAGGER_UI = "aws_lambda_powertools/event_handler/openapi/swagger_ui"
UNUSED_FILES = ("*.dist-info/RECORD", f"{SWAGGER_UI}/*.js", f"{SWAGGER_UI}/*.css")
# Layers shipped without bytecode because it does not fit: the exports layer (sklearn's plus
# onnx and onnxruntime) is 246 MB of wheels, and its .pyc would add ~40 MB. Its one function,
# retrain, runs on a schedule for minutes: compiling its imports at cold start costs seconds.
NO_BYTECODE_LAYERS = frozenset({"exports"})


class LayerTooLargeError(RuntimeError):
    """Layer plus code would pass Lambda's 250 MB unzipped limit."""


@dataclass(frozen=True)
class LayerBuild:
    path: Path  # the directory holding python/
    unzipped_bytes: int
    zipped_bytes: int | None
    cached: bool
    code_bytes: int = 0
    bytecode: BytecodeReport | None = None

    def describe(self) -> str:
        zipped = f", {self.zipped_bytes / 2**20:.1f} MB zipped" if self.zipped_bytes else ""
        total = self.unzipped_bytes + self.code_bytes
        lines = [
            f"layer {self.path}: {self.unzipped_bytes / 2**20:.1f} MB unzipped{zipped}"
            f"{' [cached]' if self.cached else ''}",
            f"layer + code {total / 2**20:.1f} MB of Lambda's 250 MB unzipped limit "
            f"(margin {(LAMBDA_UNZIPPED_LIMIT - total) / 2**20:.1f} MB)",
        ]
        if self.bytecode:
            lines.append(self.bytecode.describe())
        return "\n".join(lines)


def requirements_for(layer: str) -> Path:
    """The requirements file of a layer of :data:`skylift.topology.LAYERS`."""
    return LAYER_REQUIREMENTS[layer]


def cache_key(requirements: str, python_version: str, architecture: str) -> str:
    digest = hashlib.sha256(
        f"{requirements}\n{python_version}\n{architecture}\n{RECIPE_VERSION}".encode()
    )
    return digest.hexdigest()[:16]


def layer_directory(
    python_version: str, architecture: str, requirements: Path = REQUIREMENTS
) -> Path:
    """Where the layer for these inputs is (or would be) built; it holds ``python/``."""
    return CACHE / cache_key(requirements.read_text(), python_version, architecture)


def is_built(layer: Path) -> bool:
    return (layer / ".complete").exists()


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def zipped_size(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(path))
    return len(buffer.getvalue())


def trim(site: Path) -> None:
    """Drop what a function never imports; strip the packages' own extension modules."""
    for directory in sorted(site.rglob("*"), key=lambda p: -len(p.parts)):
        if directory.is_dir() and directory.name in TRIM_DIRS:
            shutil.rmtree(directory, ignore_errors=True)
    for file in site.rglob("*"):
        if file.is_file() and file.suffix in TRIM_SUFFIXES:
            file.unlink()
    for pattern in (*ONNXRUNTIME_UNUSED, *UNUSED_FILES):
        for path in site.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    models = site / "botocore" / "data"
    if models.is_dir():
        for service in models.iterdir():
            if service.is_dir() and service.name not in BOTOCORE_SERVICES:
                shutil.rmtree(service)
    strip = shutil.which("strip")
    if strip:
        for library in site.rglob("*.so*"):
            if any(part.endswith(VENDORED_LIBS_SUFFIX) for part in library.parts):
                continue
            subprocess.run(
                [strip, "--strip-unneeded", str(library)], check=False, capture_output=True
            )


def build_layer(
    python_version: str = "3.12",
    architecture: str = "x86_64",
    *,
    requirements: Path = REQUIREMENTS,
    code_dir: Path | None = None,
    code_bytes: int = 0,
    with_zip: bool = False,
    handlers: tuple[str, ...] = HANDLER_MODULES,
    functions: tuple[str, ...] = (),
    compile_bytecode: bool = True,
) -> LayerBuild:
    """Build (or reuse) the layer for Lambda's platform.

    With ``code_dir`` (the staged code asset) the layer also gets bytecode for everything the
    ``handlers`` import, compiled by an interpreter of ``python_version`` (an error names the
    remedy when there is none), and the size check counts that code: each function that runs
    on the layer (``functions``, named in the error) unzips to its code plus this layer.
    """
    text = requirements.read_text()
    target = layer_directory(python_version, architecture, requirements)
    site = target / "python"
    marker = target / ".complete"
    cached = marker.exists()
    if not cached:
        shutil.rmtree(target, ignore_errors=True)
        site.mkdir(parents=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            *[flag for tag in PLATFORMS[architecture] for flag in ("--platform", tag)],
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--target",
            str(site),
            "-r",
            str(requirements),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"pip could not build the layer:\n{result.stderr[-3000:]}")
        trim(site)
        marker.write_text(text)
    bytecode = None
    if code_dir is not None:
        if compile_bytecode:
            python = find_interpreter(python_version)
            bytecode = ensure_bytecode(python, python_version, site, code_dir, handlers)
        code_bytes = directory_size(code_dir)
    unzipped = directory_size(site)
    if unzipped + code_bytes > LAMBDA_UNZIPPED_LIMIT:
        who = f"function(s) {', '.join(functions)}: " if functions else ""
        raise LayerTooLargeError(
            f"{who}layer {unzipped / 2**20:.1f} MB + code {code_bytes / 2**20:.1f} MB passes "
            f"Lambda's 250 MB unzipped limit: trim layers/{requirements.name} or set "
            f'[deploy].packaging = "image" (a container image allows 10 GB)'
        )
    zipped = zipped_size(target) if with_zip else None
    return LayerBuild(target, unzipped, zipped, cached, code_bytes, bytecode)


def build_layers(
    config: SkyliftConfig, code_dir: Path, *, with_zip: bool = False
) -> dict[str, LayerBuild]:
    """Every layer the config's functions run on (skylift.topology), each with bytecode for
    the handlers of the functions on it and checked against the 250 MB limit with the code."""
    from skylift.topology import describe

    topology = describe(config)
    deploy = config.deploy
    return {
        layer: build_layer(
            deploy.python_version,
            deploy.architecture,
            requirements=requirements_for(layer),
            code_dir=code_dir,
            with_zip=with_zip,
            handlers=tuple(topology.functions[f].module for f in functions),
            functions=functions,
            compile_bytecode=layer not in NO_BYTECODE_LAYERS,
        )
        for layer, functions in topology.layers.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        default=str(HERE.parent / "examples" / "churn" / "skylift.toml"),
        help="skylift.toml (python version, architecture, the code the handlers import)",
    )
    parser.add_argument("--zip", action="store_true", help="also measure the zipped size")
    args = parser.parse_args(argv)
    from infrastructure.packaging import stage_code_asset
    from skylift.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        code_dir = stage_code_asset(config)
        # runtime = "onnx": the scoring functions' lean layer and retrain's exporter layer too.
        builds = build_layers(config, code_dir, with_zip=args.zip)
    except (ConfigError, LayerTooLargeError, InterpreterNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, build in builds.items():
        print(f"[{name}] {build.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
