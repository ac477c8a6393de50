"""Ship bytecode: Lambda mounts layers read-only, so a module without a valid ``.pyc`` is
compiled from source on every cold start (score handler imports: 2.9x the CPU).

The pinned CDK CLI zips assets with every file dated 1980-01-01, which invalidates
timestamp-based ``.pyc``: only ``unchecked-hash`` ones survive, and only the interpreter version
that compiled them loads them. Compiling every module would add ~45 MB to a ~200 MB layer
(Lambda allows 250 MB with the code), so the layer gets bytecode for what the functions
import, found by importing every handler in the target interpreter, plus all of the packages
whose modules are imported later, at request time (:data:`FULLY_COMPILED`): ~42 MB.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FULLY_COMPILED",
    "HANDLER_MODULES",
    "SCORING_HANDLER_MODULES",
    "BytecodeReport",
    "compile_sources",
    "ensure_bytecode",
    "pyc_path",
    "traced_sources",
]

# Every handler (the default when no topology says which functions a layer serves).
HANDLER_MODULES = (
    "functions.score.app",
    "functions.batch.app",
    "functions.batch.fanout",
    "functions.retrain.app",
    "functions.monitor.app",
)
# The onnx runtime's layer serves only these (retrain and monitor keep the sklearn layer).
SCORING_HANDLER_MODULES = ("functions.score.app", "functions.batch.app", "functions.batch.fanout")
# Imported at request time, depending on the model and the input: a user's pickle may name
# any estimator or transformer; scikit-learn reaches pandas frames through narwhals; pandas
# imports its writers (to_csv) and botocore, urllib3, Powertools and pydantic import parts
# lazily. Only scipy (the largest: ~10 MB of .pyc for the third of it the handlers import) is
# compiled as far as the handlers import it.
FULLY_COMPILED = (
    "sklearn",
    "numpy",
    "pandas",
    "narwhals",
    "joblib",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "dateutil",
    "pydantic",
    "pydantic_settings",
    "aws_lambda_powertools",
    "onnxruntime",
    "onnx",  # the exporter layer (retrain, runtime = "onnx"): skl2onnx imports it lazily
    "skl2onnx",
)
COMPILE_FLAGS = ("--invalidation-mode", "unchecked-hash", "-i", "-")  # file list on stdin
# PEP 552 flags word: bit 0 = hash-based, bit 1 = check_source (off: never re-validated).
UNCHECKED_HASH_FLAGS = 0b01

# Runs in the target interpreter with only the layer and the code asset on the path (`-I -S -B`:
# -I ignores PYTHONDONTWRITEBYTECODE, so -B keeps it from leaving timestamp .pyc behind). AWS
# calls go to a closed loopback port: importing, not serving, is what is traced.
_TRACE = textwrap.dedent(
    """
    import importlib, json, sys
    layer, code, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.path[:0] = [layer, code]
    for module in modules:
        importlib.import_module(module)
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    print(json.dumps(sorted(f for f in files if f and f.endswith(".py"))))
    """
)


@dataclass(frozen=True)
class BytecodeReport:
    interpreter: str
    traced_modules: int
    compiled_files: int  # sources with a .pyc in the layer after this build
    pyc_bytes: int

    def describe(self) -> str:
        return (
            f"bytecode: {self.compiled_files} modules compiled by {self.interpreter} "
            f"({self.pyc_bytes / 2**20:.1f} MB of unchecked-hash .pyc; "
            f"{self.traced_modules} imported by the handlers, plus all of "
            f"{', '.join(FULLY_COMPILED)})"
        )


def pyc_path(source: Path, python_version: str) -> Path:
    """Where CPython looks for the bytecode of ``source`` (PEP 3147)."""
    tag = "cpython-" + python_version.replace(".", "")
    return source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"


def has_unchecked_hash_pyc(source: Path, python_version: str) -> bool:
    """True when ``source`` has bytecode that stays valid whatever its files' dates (PEP 552)."""
    try:
        with pyc_path(source, python_version).open("rb") as pyc:
            header = pyc.read(8)
    except FileNotFoundError:
        return False
    return len(header) == 8 and int.from_bytes(header[4:8], "little") == UNCHECKED_HASH_FLAGS


def traced_sources(
    python: str, site: Path, code_dir: Path, handlers: tuple[str, ...] = HANDLER_MODULES
) -> list[Path]:
    """The layer's source files the handlers import, found by importing them in ``python``."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "SKYLIFT_CONFIG": str(code_dir / "skylift.toml"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "trace",
        "AWS_SECRET_ACCESS_KEY": "trace",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", _TRACE, str(site), str(code_dir), *handlers],
        capture_output=True,
        text=True,
        env=env,
        cwd=code_dir,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"importing the handlers from the layer failed:\n{result.stderr[-3000:]}"
        )
    files = [Path(f) for f in json.loads(result.stdout.strip().splitlines()[-1])]
    return [f for f in files if f.is_relative_to(site)]


def compile_sources(python: str, paths: list[Path]) -> None:
    """Compile files (and directories, recursively) to unchecked-hash .pyc with ``python``.

    Forced (-f): compileall takes any timestamp .pyc whose header matches as up to date, even
    when asked for hash-based ones.
    """
    if not paths:
        return
    result = subprocess.run(
        [python, "-I", "-m", "compileall", "-q", "-f", "-j", "0", *COMPILE_FLAGS],
        input="\n".join(str(p) for p in paths) + "\n",
        capture_output=True,
        text=True,
    )
    # compileall exits 1 when a file does not compile (e.g. a Python-2-only example script
    # in some package); what matters is that the imported modules have bytecode, checked below.
    if result.returncode not in (0, 1):
        raise RuntimeError(f"compileall failed:\n{result.stderr[-3000:]}")


def ensure_bytecode(
    python: str,
    python_version: str,
    site: Path,
    code_dir: Path,
    handlers: tuple[str, ...] = HANDLER_MODULES,
) -> BytecodeReport:
    """Give every module the handlers import, and :data:`FULLY_COMPILED`, its bytecode."""
    traced = traced_sources(python, site, code_dir, handlers)
    wanted = traced + [f for package in FULLY_COMPILED for f in (site / package).rglob("*.py")]
    compile_sources(python, [f for f in wanted if not has_unchecked_hash_pyc(f, python_version)])
    uncompiled = [f for f in traced if not has_unchecked_hash_pyc(f, python_version)]
    if uncompiled:
        raise RuntimeError(f"no bytecode produced for {len(uncompiled)} modules: {uncompiled[:5]}")
    pycs = list(site.rglob(f"*.cpython-{python_version.replace('.', '')}.pyc"))
    return BytecodeReport(
        interpreter=python,
        traced_modules=len(traced),
        compiled_files=len(pycs),
        pyc_bytes=sum(p.stat().st_size for p in pycs),
    )
