"""The CDK app: ``npx cdk synth -c config=path/to/skylift.toml`` (default: the churn example).

Synthesizes offline (no lookups, no credentials). The layer is built by layers/build.py
(pip for Lambda's platform, cached), never by Docker, one per kind the functions run on
(skylift.topology: [deploy].runtime = "onnx" adds the onnx and exports layers);
``-c layer_dir=DIR`` uses a prebuilt one for every layer.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infrastructure.nag import add_rule_packs
from infrastructure.packaging import ROOT, stage_code_asset
from infrastructure.stack import SkyliftStack
from skylift.config import SkyliftConfig, load_config
from skylift.topology import describe

__all__ = ["build_app", "main", "stack_name", "synth_templates"]


def stack_name(config: SkyliftConfig) -> str:
    return f"{config.deploy.stack_prefix}-{config.model.name}"


def build_app(
    config: SkyliftConfig, *, layer_dir: Path | None = None, outdir: str | None = None
) -> tuple[cdk.App, SkyliftStack]:
    """The app and its stack; with ``layer_dir`` None and layer packaging, builds the layers
    (else ``layer_dir`` stands for each of them)."""
    app = cdk.App(outdir=outdir) if outdir else cdk.App()
    image = config.deploy.packaging == "image"
    code_dir = stage_code_asset(config, image=image)
    layer_dirs: dict[str, Path] = {}
    if not image and layer_dir is None:
        from layers.build import build_layers

        layer_dirs = {kind: b.path for kind, b in build_layers(config, code_dir).items()}
    elif layer_dir is not None:
        layer_dirs = {kind: layer_dir for kind in describe(config).layers}
    stack = SkyliftStack(
        app,
        stack_name(config),
        config=config,
        code_dir=code_dir,
        layer_dirs=layer_dirs,
        description=f"skylift: model {config.model.name} (registry, scoring API, batch, retraining, monitoring)",
    )
    # Synth fails on any cdk-nag finding not acknowledged on its resource (see infrastructure.nag).
    add_rule_packs(app)
    return app, stack


def synth_templates(
    config: SkyliftConfig, *, layer_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Stack name -> synthesized CloudFormation template (for tests and the parity check).

    Without ``layer_dir`` the layer asset is an empty stand-in: the templates are the same
    but for the asset hash, and no wheels are downloaded.
    """
    with tempfile.TemporaryDirectory() as outdir, tempfile.TemporaryDirectory() as standin:
        if layer_dir is None and config.deploy.packaging == "layer":
            (Path(standin) / "python").mkdir()
            layer_dir = Path(standin)
        app, _stack = build_app(config, layer_dir=layer_dir, outdir=outdir)
        assembly = app.synth()
        return {
            s.stack_name: json.loads(Path(s.template_full_path).read_text())
            for s in assembly.stacks
        }


def main() -> None:
    app_context = cdk.App()
    config_path = app_context.node.try_get_context("config") or str(
        ROOT / "examples" / "churn" / "skylift.toml"
    )
    layer_dir = app_context.node.try_get_context("layer_dir")
    config = load_config(config_path)
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    app, _ = build_app(config, layer_dir=Path(layer_dir) if layer_dir else None)
    app.synth()


if __name__ == "__main__":
    main()
