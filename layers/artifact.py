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
    layers: dict[str, Path]  # function name -> its layer's python/ folder, as /opt/python

    @property
    def layer(self) -> Path:
        """The score function's layer (the one a cold start is measured on)."""
        return self.layers["score"]

    def sys_path(self, function: str = "score") -> list[str]:
        """What Lambda puts before the runtime's own modules: code first, then the layer."""
        return [str(self.task), str(self.layers[function])]


def _as_lambda_unzips(asset: Path, destination: Path) -> Path:
    shutil.copytree(asset, destination, symlinks=True)
    for path in [destination, *destination.rglob("*")]:
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH), follow_symlinks=False)
    return destination


def deployed_artifact(config: SkyliftConfig, workdir: Path) -> DeployedArtifact:
    """Synthesize with the built layers (never builds them) and lay the assets out in
    ``workdir``: the code once, and each function's layer as the template attaches it (a
    layer's ``Content.S3Key`` is its asset's hash) under ``opt-<layer id>/``."""
    from infrastructure.app import build_app
    from layers.build import is_built, layer_directory, requirements_for
    from skylift.topology import describe

    deploy = config.deploy
    for kind in describe(config).layers:
        requirements = requirements_for(kind)
        if not is_built(layer_directory(deploy.python_version, deploy.architecture, requirements)):
            raise LayerNotBuiltError(
                f"the Lambda layer of layers/{requirements.name} is not built: run "
                f"`python -m layers.build --config {config.config_path}` (`make layer`)"
            )
    outdir = workdir / "cdk.out"
    app, stack = build_app(config, outdir=str(outdir))
    app.synth()
    manifest = json.loads((outdir / f"{stack.stack_name}.assets.json").read_text())
    template = json.loads((outdir / stack.template_file).read_text())
    assets = {
        key: outdir / entry["source"]["path"]
        for key, entry in manifest["files"].items()
        if entry["source"].get("packaging") == "zip"
    }
    code = [path for path in assets.values() if (path / "functions").is_dir()]
    if len(code) != 1:
        raise RuntimeError(f"expected one code asset, found {list(assets.values())}")
    task = _as_lambda_unzips(code[0], workdir / "var" / "task")
    resources = template["Resources"]
    opt: dict[str, Path] = {}  # layer logical id -> its python/
    layers: dict[str, Path] = {}
    for name in describe(config).functions:
        function = next(
            r["Properties"]
            for logical_id, r in resources.items()
            if r["Type"] == "AWS::Lambda::Function"
            and logical_id.startswith(f"Functions{name.title()}")
        )
        (attached,) = [ref["Ref"] for ref in function["Layers"]]
        if attached not in opt:
            key = resources[attached]["Properties"]["Content"]["S3Key"].removesuffix(".zip")
            opt[attached] = _as_lambda_unzips(assets[key], workdir / f"opt-{attached}") / "python"
        layers[name] = opt[attached]
    shutil.rmtree(outdir)
    return DeployedArtifact(task=task, layers=layers)
