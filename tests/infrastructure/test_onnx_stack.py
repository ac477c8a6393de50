"""[deploy].runtime = "onnx" in the synthesized stack: which layer each function runs on is the
topology's call (FunctionSpec.layer), and each function's code plus its layer must fit Lambda's
250 MB unzipped limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SCORING = {"score", "batch", "fanout"}


def _onnx_config(config: Any) -> Any:
    return config.model_copy(
        update={"deploy": config.deploy.model_copy(update={"runtime": "onnx"})}
    )


def _function_layers(template: dict[str, Any]) -> dict[str, str]:
    """Function (by handler's module) -> the description of the one layer it runs on."""
    resources = template["Resources"]
    out = {}
    for props in (
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
    ):
        if not props.get("Handler", "").startswith("functions."):
            continue
        (layer,) = props["Layers"]
        module = props["Handler"].rsplit(".", 1)[0]
        name = "fanout" if module == "functions.batch.fanout" else module.split(".")[1]
        out[name] = resources[layer["Ref"]]["Properties"]["Description"]
    return out


def test_topology_puts_the_scoring_functions_on_the_onnx_layer(churn_config):
    from skylift.topology import describe

    assert describe(churn_config).layers == {
        "sklearn": ("score", "batch", "fanout", "retrain", "monitor")
    }
    assert describe(_onnx_config(churn_config)).layers == {
        "onnx": ("score", "batch", "fanout"),
        "exports": ("retrain",),
        "sklearn": ("monitor",),
    }


def test_onnx_synth_attaches_each_function_its_layer(churn_config):
    """A synth with runtime = onnx (cdk-nag packs included: a finding fails it) gives score,
    batch and fan-out the onnx layer, retrain the exporter's, monitor the sklearn one."""
    from infrastructure.app import stack_name, synth_templates
    from infrastructure.components.functions import LAYER_DESCRIPTIONS

    config = _onnx_config(churn_config)
    template = synth_templates(config)[stack_name(config)]
    layers = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert len(layers) == 3
    attached = _function_layers(template)
    assert {n for n, d in attached.items() if d == LAYER_DESCRIPTIONS["onnx"]} == SCORING
    assert attached["retrain"] == LAYER_DESCRIPTIONS["exports"]
    assert attached["monitor"] == LAYER_DESCRIPTIONS["sklearn"]


def test_sklearn_synth_keeps_one_layer_for_every_function(template_json):
    from infrastructure.components.functions import LAYER_DESCRIPTIONS

    layers = [
        k for k, r in template_json["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"
    ]
    assert len(layers) == 1 and layers[0].startswith("FunctionsRuntime")  # id kept: no replace
    assert set(_function_layers(template_json).values()) == {LAYER_DESCRIPTIONS["sklearn"]}
    assert len(_function_layers(template_json)) == 5


def test_each_function_is_checked_with_its_own_layer_against_the_limit(
    churn_config, tmp_path, monkeypatch
):
    """The exporter layer plus the code over 250 MB fails naming retrain; the others pass."""
    from layers import build

    monkeypatch.setattr(build, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(build, "ensure_bytecode", lambda *args, **kwargs: None)
    monkeypatch.setattr(build, "find_interpreter", lambda version: "python")
    sizes = {"sklearn": 200, "onnx": 100, "exports": 249}  # MB of wheels, as if built
    for kind, megabytes in sizes.items():
        requirements = tmp_path / f"{kind}.txt"
        requirements.write_text(f"{kind}==1.0\n")
        monkeypatch.setitem(build.LAYER_REQUIREMENTS, kind, requirements)
        site = build.layer_directory("3.12", "x86_64", requirements) / "python"
        site.mkdir(parents=True)
        (site / "wheels.bin").write_bytes(b"\0" * megabytes * 2**20)
        (site.parent / ".complete").write_text("")
    code = tmp_path / "code"
    code.mkdir()
    (code / "code.bin").write_bytes(b"\0" * 2 * 2**20)  # 249 + 2 > 250
    with pytest.raises(build.LayerTooLargeError, match=r"function\(s\) retrain: .*exports\.txt"):
        build.build_layers(_onnx_config(churn_config), Path(code))
    sizes_ok = build.build_layers(churn_config, Path(code))  # sklearn: 200 + 2
    assert list(sizes_ok) == ["sklearn"]
