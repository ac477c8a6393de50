"""The deployable artifact as `cdk deploy` uploads it, laid out as Lambda unzips it.

The CDK app is synthesized with the layer as built; its layer and code assets are taken from
the cloud assembly and copied to ``opt/`` and ``var/task/`` with every file dated 1980-01-01,
as the pinned CDK CLI zips them (so timestamp-based ``.pyc`` would be stale, as on Lambda).
The artifact test and the cold-start benchmark run handlers from there with the runtime's
Python: ``python -I -S -B`` with ``sys.path[:0] = [task, opt/python]``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skylift.config import SkyliftConfig

__all__ = ["ZIP_EPOCH", "DeployedArtifact", "LayerNotBuiltError", "deployed_artifact"]

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z: the date the CDK CLI gives every zipped file


class LayerNotBuiltError(RuntimeError):
    """The layer has not been built for this config (``make layer``)."""


@dataclass(frozen=True)
class DeployedArtifact:
    task: Path  # the code asset, as /var/task
    layer: Path  # the layer's python/ folder, as /opt/python

    @property
    def sys_path(self) -> list[str]:
        """What Lambda puts before the runtime's own modules: code first, then the layer."""
        return [str(self.task), str(self.layer)]


def _as_lambda_unzips(asset: Path, destination: Path) -> Path:
    shutil.copytree(asset, destination, symlinks=True)
    for path in [destination, *destination.rglob("*")]:
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH), follow_symlinks=False)
    return destination


def deployed_artifact(config: SkyliftConfig, workdir: Path) -> DeployedArtifact:
    """Synthesize with the built layer (never builds it) and lay the assets out in ``workdir``."""
    from infrastructure.app import build_app
    from layers.build import is_built, layer_directory

    deploy = config.deploy
    if not is_built(layer_directory(deploy.python_version, deploy.architecture)):
        raise LayerNotBuiltError(
            "the Lambda layer is not built: run `make layer` (`make test` does it first)"
        )
    outdir = workdir / "cdk.out"
    app, stack = build_app(config, outdir=str(outdir))
    app.synth()
    manifest = json.loads((outdir / f"{stack.stack_name}.assets.json").read_text())
    zips = [
        outdir / entry["source"]["path"]
        for entry in manifest["files"].values()
        if entry["source"].get("packaging") == "zip"
    ]
    layers = [path for path in zips if (path / "python").is_dir()]
    code = [path for path in zips if (path / "functions").is_dir()]
    if len(layers) != 1 or len(code) != 1:
        raise RuntimeError(f"expected one layer and one code asset, found {zips}")
    opt = _as_lambda_unzips(layers[0], workdir / "opt")
    task = _as_lambda_unzips(code[0], workdir / "var" / "task")
    shutil.rmtree(outdir)
    return DeployedArtifact(task=task, layer=opt / "python")
