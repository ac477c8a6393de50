"""One model holder for every function: the API and batch load, refuse and keep models alike."""

from __future__ import annotations

import pytest

from skylift.batch.service import BatchService
from skylift.bundle import ModelBundle
from skylift.config import ConfigError, load_config
from skylift.model_holder import ModelUnavailableError
from skylift.serving import create_service


@pytest.fixture
def skewed_champion(registry, churn_bundle):
    """The champion was pickled by another scikit-learn (as the manifest records it)."""
    runtime = churn_bundle.manifest.runtime.model_copy(update={"sklearn": "0.24.2"})
    manifest = churn_bundle.manifest.model_copy(update={"runtime": runtime})
    bundle = ModelBundle(churn_bundle.model, manifest, churn_bundle.artifact)
    registry.promote(registry.register(bundle).version)


@pytest.mark.parametrize(
    "variable",
    # The variable the README documented first (once honoured as 'true' by batch only, as
    # '1' by the API only), and the config's own name for the field.
    ["SKYLIFT_ALLOW_VERSION_SKEW", "SKYLIFT_MODEL__ALLOW_VERSION_SKEW"],
)
@pytest.mark.parametrize(("setting", "allowed"), [("true", True), ("1", True), ("false", False)])
def test_version_skew_setting_is_honoured_by_the_api_and_batch_alike(
    churn_config, s3, skewed_champion, monkeypatch, variable, setting, allowed
):
    monkeypatch.setenv(variable, setting)
    config = load_config(churn_config.config_path)
    api = create_service(config, s3_client=s3).holder
    batch = BatchService(config, s3)
    if allowed:
        assert api.current().version == batch.scorer().version == 1
    else:
        with pytest.raises(ModelUnavailableError, match=r"scikit-learn 0\.24\.2"):
            api.current()
        with pytest.raises(ModelUnavailableError, match=r"scikit-learn 0\.24\.2"):
            batch.scorer()


def test_batch_keeps_its_model_when_a_reload_fails(churn_config, s3, registry, churn_bundle):
    registry.promote(registry.register(churn_bundle).version)
    batch = BatchService(churn_config, s3)
    batch.holder.refresh_seconds = 0  # re-check the alias on every file
    assert batch.scorer().version == 1
    second = registry.register(churn_bundle).version
    registry.promote(second)
    artifact = f"models/{churn_config.model.name}/versions/{second}/model.joblib"
    s3.put_object(Bucket=churn_config.storage.bucket, Key=artifact, Body=b"tampered")
    assert batch.scorer().version == 1  # still scoring, not failing every file
    assert batch.holder.take_reload_failures() == 1
    assert "sha256" in batch.holder.status().reason


def test_the_config_name_of_a_setting_wins_over_its_older_alias(churn_config, monkeypatch):
    monkeypatch.setenv("SKYLIFT_ALLOW_VERSION_SKEW", "true")
    assert load_config(churn_config.config_path).model.allow_version_skew is True
    monkeypatch.setenv("SKYLIFT_MODEL__ALLOW_VERSION_SKEW", "false")
    assert load_config(churn_config.config_path).model.allow_version_skew is False
    monkeypatch.delenv("SKYLIFT_MODEL__ALLOW_VERSION_SKEW")
    monkeypatch.setenv("SKYLIFT_ALLOW_VERSION_SKEW", "maybe")
    with pytest.raises(ConfigError, match="SKYLIFT_ALLOW_VERSION_SKEW"):
        load_config(churn_config.config_path)
