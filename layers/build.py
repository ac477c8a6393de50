"""Build the Lambda layer without Docker: pip resolves wheels for Lambda's platform.

``python -m layers.build [--config skylift.toml]`` installs layers/requirements.txt with
``pip install --platform manylinux2014_<arch> --only-binary=:all: --python-version X.Y``
into ``layers/.cache/<hash>/python``, trims it (tests, __pycache__, type stubs, stripped
shared objects, botocore models of services the functions never call), caches it by the hash of requirements + platform, and reports its size. A
layer that would not fit Lambda's 250 MB (unzipped, function code included) fails with a
clear message.
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

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
CACHE = HERE / ".cache"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): wheels tagged up to
# manylinux_2_34 load there. Recent scikit-learn/scipy publish manylinux_2_27/2_28 only.
GLIBC_TAGS = ("2014", "_2_28", "_2_34")
PLATFORMS = {
    arch: [f"manylinux{tag}_{machine}" for tag in GLIBC_TAGS]
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64"))
}
TRIM_DIRS = {"tests", "test", "__pycache__", "benchmarks"}
TRIM_SUFFIXES = (".pyc", ".pyi", ".pxd", ".c", ".cpp", ".h")
# botocore ships the API models of every AWS service (~25 MB); the functions call these.
BOTOCORE_SERVICES = {
    "s3",
    "sqs",
    "firehose",
    "events",
    "sts",
    "sso",
    "sso-oidc",
    "cloudwatch",
    "logs",
}


class LayerTooLargeError(RuntimeError):
    """Layer plus code would pass Lambda's 250 MB unzipped limit."""


@dataclass(frozen=True)
class LayerBuild:
    path: Path  # the directory holding python/
    unzipped_bytes: int
    zipped_bytes: int | None
    cached: bool

    def describe(self) -> str:
        zipped = f", {self.zipped_bytes / 2**20:.1f} MB zipped" if self.zipped_bytes else ""
        return (
            f"layer {self.path}: {self.unzipped_bytes / 2**20:.1f} MB unzipped{zipped} "
            f"(Lambda limit 250 MB with code){' [cached]' if self.cached else ''}"
        )


def cache_key(requirements: str, python_version: str, architecture: str) -> str:
    digest = hashlib.sha256(f"{requirements}\n{python_version}\n{architecture}".encode())
    return digest.hexdigest()[:16]


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
    """Drop what a function never imports; strip debug symbols from shared objects."""
    for directory in sorted(site.rglob("*"), key=lambda p: -len(p.parts)):
        if directory.is_dir() and directory.name in TRIM_DIRS:
            shutil.rmtree(directory, ignore_errors=True)
    for file in site.rglob("*"):
        if file.is_file() and file.suffix in TRIM_SUFFIXES:
            file.unlink()
    models = site / "botocore" / "data"
    if models.is_dir():
        for service in models.iterdir():
            if service.is_dir() and service.name not in BOTOCORE_SERVICES:
                shutil.rmtree(service)
    strip = shutil.which("strip")
    if strip:
        for library in site.rglob("*.so*"):
            subprocess.run(
                [strip, "--strip-unneeded", str(library)], check=False, capture_output=True
            )


def build_layer(
    python_version: str = "3.12",
    architecture: str = "x86_64",
    *,
    requirements: Path = REQUIREMENTS,
    code_bytes: int = 0,
    with_zip: bool = False,
) -> LayerBuild:
    """Build (or reuse) the layer for Lambda's platform."""
    text = requirements.read_text()
    target = CACHE / cache_key(text, python_version, architecture)
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
    unzipped = directory_size(site)
    if unzipped + code_bytes > LAMBDA_UNZIPPED_LIMIT:
        raise LayerTooLargeError(
            f"layer {unzipped / 2**20:.1f} MB + code {code_bytes / 2**20:.1f} MB passes Lambda's "
            f"250 MB unzipped limit: trim layers/requirements.txt or set "
            f'[deploy].packaging = "image" (a container image allows 10 GB)'
        )
    return LayerBuild(target, unzipped, zipped_size(target) if with_zip else None, cached)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default=None, help="skylift.toml (python version, architecture)"
    )
    parser.add_argument("--zip", action="store_true", help="also measure the zipped size")
    args = parser.parse_args(argv)
    python_version, architecture = "3.12", "x86_64"
    if args.config:
        from skylift.config import load_config

        deploy = load_config(args.config).deploy
        python_version, architecture = deploy.python_version, deploy.architecture
    try:
        build = build_layer(python_version, architecture, with_zip=args.zip)
    except (LayerTooLargeError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(build.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
