"""The layer for *this* interpreter, assembled offline from the installed distributions.

The packaged-artifact test runs each handler in an isolated interpreter whose path holds only
a layer and the code asset. Building the Lambda layer needs PyPI and manylinux wheels; this
builds the same requirement closure for the running interpreter from what is installed, by
copying each distribution's recorded files (no network, no pip).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from importlib import metadata
from pathlib import Path

from layers.build import CACHE, REQUIREMENTS

__all__ = ["assemble_local_layer", "requirement_closure"]

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(requirements: Path = REQUIREMENTS) -> list[metadata.Distribution]:
    """The installed distributions the requirements need, transitively (extras excluded)."""
    pending = [
        m.group(1)
        for line in requirements.read_text().splitlines()
        if (m := _NAME.match(line)) and not line.lstrip().startswith("#")
    ]
    seen: dict[str, metadata.Distribution] = {}
    while pending:
        name = _canonical(pending.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform or Python
        seen[name] = dist
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            if match := _NAME.match(requirement):
                pending.append(match.group(1))
    return sorted(seen.values(), key=lambda d: _canonical(d.metadata["Name"]))


def assemble_local_layer(requirements: Path = REQUIREMENTS) -> Path:
    """Copy the closure into layers/.cache/local-<hash>/python and return that folder."""
    dists = requirement_closure(requirements)
    key = hashlib.sha256(
        "\n".join(f"{d.metadata['Name']}=={d.version}" for d in dists).encode()
    ).hexdigest()[:16]
    target = CACHE / f"local-{key}"
    site = target / "python"
    if (target / ".complete").exists():
        return site
    shutil.rmtree(target, ignore_errors=True)
    site.mkdir(parents=True)
    for dist in dists:
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            relative = Path(str(file))
            if (relative.parts and relative.parts[0] == "..") or not source.is_file():
                continue  # scripts installed outside site-packages
            if "__pycache__" in relative.parts:
                continue
            destination = site / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    (target / ".complete").write_text("\n".join(d.metadata["Name"] for d in dists))
    return site
