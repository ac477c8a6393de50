"""Issue 15's attack on the local stack: whoever can write models/ overwrites the champion's
model.joblib with a pickle payload and its manifest's sha256 to match. The score function's
cold start must refuse it (503 with the reason) and the payload must never run. The stack
(KMS key included) is provisioned as `skylift local up` does; the functions run in-process, so
a payload that ran would have created its file here."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import tamper_champion

pytestmark = pytest.mark.e2e


def test_a_tampered_champion_is_refused_at_cold_start_and_never_unpickled(
    churn_config, churn_frame, tmp_path
):
    from skylift.local.stack import LocalStack
    from skylift.registry import ModelRegistry
    from skylift.training import train_and_register

    marker = tmp_path / "payload-ran"
    with LocalStack(churn_config, clocks=False) as stack:
        s3 = stack.client("s3")
        key = f"{churn_config.storage.training_prefix}churn.csv"
        body = churn_frame.head(1500).to_csv(index=False).encode()
        s3.put_object(Bucket=churn_config.storage.bucket, Key=key, Body=body)
        registry = ModelRegistry.from_config(churn_config, s3_client=s3)
        result = train_and_register(
            churn_config, registry, f"s3://{churn_config.storage.bucket}/{key}", promote=True
        )
        version = result.bundle.manifest.version
        signature = registry.signature(version)
        assert signature is not None  # the local stack runs signed, as the deployed one does
        assert registry.load(version).version == version

        tamper_champion(s3, churn_config, version, marker)
        headers = {"x-api-key": stack.api_key}
        health = requests.get(f"{stack.api_url}/health", headers=headers, timeout=30)
        assert health.status_code == 503, health.text
        predict = requests.post(
            f"{stack.api_url}/predict",
            headers=headers,
            json={"records": [{"customer_id": "C1"}]},
            timeout=30,
        )
        assert predict.status_code == 503, predict.text
        error = predict.json()["error"]
        assert error["code"] == "model_unavailable"
        assert "signature is over a different manifest" in error["message"]
        assert not marker.exists(), "the payload ran"
