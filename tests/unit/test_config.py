"""SkyliftConfig: the file, environment overrides, and errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from skylift.config import ConfigError, load_config

MINIMAL = """
[model]
name = "churn"
task = "classification"
target = "churned"
entry_point = "churn_model.train:train"

[storage]
bucket = "my-bucket"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "skylift.toml"
    path.write_text(text)
    return path


def test_minimal_file_gets_documented_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.model.name == "churn"
    assert config.storage.incoming_prefix == "incoming/"
    assert config.api.max_records == 1000
    assert config.batch.chunk_rows == 50_000
    assert config.retrain.metric == "roc_auc"
    assert config.project_dir == tmp_path


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYLIFT_STORAGE__BUCKET", "other-bucket")
    monkeypatch.setenv("SKYLIFT_API__MAX_RECORDS", "7")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.storage.bucket == "other-bucket"
    assert config.api.max_records == 7
    assert config.model.name == "churn"  # the rest of the file still applies


def test_config_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYLIFT_CONFIG", str(write(tmp_path, MINIMAL)))
    assert load_config().storage.bucket == "my-bucket"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace('target = "churned"\n', ""), "[model].target is required but missing"),
        (MINIMAL.replace('"classification"', '"clustering"'), "[model].task"),
        (MINIMAL.replace('"my-bucket"', '"My_Bucket"'), "[storage].bucket"),
        (MINIMAL + "\n[api]\nmax_records = 0\n", "[api].max_records"),
        (MINIMAL + "\n[api]\nmax_recordz = 5\n", "[api].max_recordz is not a known field"),
        (MINIMAL.replace("churn_model.train:train", "churn_model.train"), "[model].entry_point"),
        (MINIMAL + '\n[retrain]\nschedule = "every day"\n', "[retrain].schedule"),
        (MINIMAL + '\n[features.tenure]\ntype = "text"\n', "[features.tenure].type"),
        (MINIMAL + "\n[features.tenure]\nnulable = true\n", "[features.tenure].nulable is not"),
        (
            MINIMAL + '\n[features.plan]\ntype = "categorical"\nmin = 1\n',
            "[features.plan] Value error, min and max are for numeric",
        ),
    ],
)
def test_bad_field_is_named_with_its_file(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_features_are_declared_per_column(tmp_path):
    config = load_config(
        write(
            tmp_path,
            MINIMAL
            + '\n[features.TotalCharges]\ntype = "numeric"\nnullable = true\nmin = 0\n'
            + '\n[features.Contract]\ncategories = ["Month-to-month", "One year"]\n',
        )
    )
    charges, contract = config.features["TotalCharges"], config.features["Contract"]
    assert (charges.type, charges.nullable, charges.min, charges.max) == ("numeric", True, 0, None)
    assert contract.categories == ["Month-to-month", "One year"] and contract.type is None


def test_bad_environment_override_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYLIFT_API__MAX_RECORDS", "lots")
    with pytest.raises(ConfigError, match="SKYLIFT_API__MAX_RECORDS"):
        load_config(write(tmp_path, MINIMAL))


def test_missing_file_and_bad_toml_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[model\nname="))


def test_example_config_is_valid(churn_config):
    assert churn_config.model.id_column == "customer_id"
    assert churn_config.retrain.guard_metrics == {"accuracy": 0.02}
