"""Drift statistics on known distributions, label joins, empty windows, the drift event."""

from __future__ import annotations

import json

import boto3
import pandas as pd
import pytest

from skylift.monitoring import live_metrics, load_labels, monitor, psi
from skylift.scoring import Scorer
from tests.helpers import capture

UNSHIFTED = ["age", "internet_service", "payment_method", "region", "paperless_billing"]


@pytest.fixture
def champion(registry, churn_bundle):
    registry.register(churn_bundle)
    registry.promote(1)
    return Scorer(registry.load_alias())


def test_psi_is_zero_for_equal_and_large_for_disjoint():
    assert psi([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert psi([1.0, 0.0], [0.0, 1.0]) > 5


def test_same_distribution_has_low_psi_everywhere(s3, churn_config, champion):
    from churn_model.data import generate_churn

    capture(s3, churn_config, champion, generate_churn(3000, seed=8))
    report = monitor(churn_config, s3)
    assert report.rows == 3000 and report.drifted_features == []
    assert all(r.psi < 0.1 for r in report.features.values()), report.features
    assert report.prediction_psi < 0.1


def test_shifted_distribution_flags_the_shifted_features_only(s3, churn_config, champion):
    from churn_model.data import generate_churn

    capture(s3, churn_config, champion, generate_churn(3000, seed=8, shift=0.8))
    events = boto3.client("events", region_name="us-east-1")
    report = monitor(churn_config, s3, events)
    assert set(report.drifted_features) == {"monthly_charges", "support_calls"}
    assert all(report.features[n].psi > 0.25 for n in report.drifted_features)
    assert all(report.features[n].psi < 0.1 for n in UNSHIFTED)
    assert report.features["monthly_charges"].ks_pvalue < 0.001
    assert report.features["contract"].chi2_pvalue < 0.001  # shifted, if under the PSI bar
    assert report.drift_event_published


def test_labels_join_by_id_with_missing_and_duplicate_ids(s3, churn_config):
    predictions = pd.DataFrame(
        {
            "id": ["a", "b", "c", "c"],
            "prediction": [1, 0, 1, 0],
            "probability_0": [0.2, 0.9, 0.3, 0.6],
            "probability_1": [0.8, 0.1, 0.7, 0.4],
        }
    )
    labels_csv = (
        "customer_id,label,time\na,1,2026-11-01\nb,1,2026-11-01\nb,0,2026-11-02\nz,1,2026-11-01\n"
    )
    s3.put_object(Bucket=churn_config.storage.bucket, Key="labels/l.csv", Body=labels_csv.encode())
    labels, notes = load_labels(churn_config, s3)
    assert dict(zip(labels["id"], labels["label"], strict=True)) == {"a": 1, "b": 0, "z": 1}
    assert any("duplicate" in n for n in notes)
    metrics, join_notes = live_metrics(predictions, labels, "classification")
    assert metrics.rows == 2 and metrics.accuracy == 1.0  # a: 1==1, b: 0==0 (latest label)
    assert any("1 label(s) matched no prediction" in n for n in join_notes)


def test_empty_window_and_missing_prefixes_are_reported(s3, churn_config, champion):
    report = monitor(churn_config, s3)
    assert report.features == {} and report.max_psi is None
    notes = " ".join(report.notes)
    assert "no API capture" in notes and "empty window" in notes


def test_no_champion_is_reported(s3, churn_config):
    report = monitor(churn_config, s3)
    assert "no champion yet" in report.notes[0]


def test_batch_outputs_are_monitored_with_labels(s3, churn_config, champion):
    from churn_model.data import generate_churn

    from skylift.batch import BatchJob

    frame = generate_churn(2000, seed=12)
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key="incoming/b.csv",
        Body=frame.drop(columns=["churned"]).to_csv(index=False).encode(),
    )
    BatchJob(churn_config, lambda: champion).score_s3_object(
        s3, churn_config.storage.bucket, "incoming/b.csv"
    )
    labels = frame[["customer_id", "churned"]].rename(columns={"churned": "label"})
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key="labels/b.csv",
        Body=labels.to_csv(index=False).encode(),
    )
    report = monitor(churn_config, s3)
    assert report.rows == 2000
    assert report.live_metrics.rows == 2000
    assert 0.6 < report.live_metrics.roc_auc < 0.95


def test_string_labels_get_prediction_psi_for_the_positive_class(s3, churn_config, registry):
    """'No'/'Yes' labels: prediction PSI and live ROC AUC score P('Yes') (the last class by
    default, or [model].positive_class), never skipped silently."""
    from churn_model.data import generate_churn

    from skylift.training import train_candidate

    yes_no = {0: "No", 1: "Yes"}
    frame = generate_churn(1500, seed=4)
    frame["churned"] = frame["churned"].map(yes_no)
    bundle = train_candidate(churn_config, frame).bundle
    assert bundle.manifest.classes == ["No", "Yes"] and "roc_auc" in bundle.manifest.metrics
    registry.register(bundle)
    registry.promote(1)
    window = generate_churn(1000, seed=8)
    capture(s3, churn_config, Scorer(registry.load_alias()), window)
    labels = window[["customer_id"]].assign(label=window["churned"].map(yes_no))
    s3.put_object(
        Bucket=churn_config.storage.bucket, Key="labels/l.csv", Body=labels.to_csv(index=False)
    )
    report = monitor(churn_config, s3)
    assert report.positive_class == "Yes"
    assert report.prediction_psi is not None and report.prediction_psi < 0.1
    assert report.live_metrics.roc_auc > 0.6
    as_no = churn_config.model_copy(
        update={"model": churn_config.model.model_copy(update={"positive_class": "No"})}
    )
    flipped = monitor(as_no, s3)
    assert flipped.positive_class == "No"
    assert flipped.live_metrics.roc_auc == pytest.approx(report.live_metrics.roc_auc)
    # Without the probabilities, the report says why there is no prediction PSI.
    s3.delete_object(Bucket=churn_config.storage.bucket, Key="capture/2026/11/24/10/part-0001")
    rows = [{"features": {"age": 30.0}, "prediction": "No"}]
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key="capture/2026/11/24/11/part-0002",
        Body="\n".join(json.dumps(r) for r in rows),
    )
    bare = monitor(churn_config, s3)
    assert bare.prediction_psi is None
    assert any("prediction PSI not computed" in n and "probability_Yes" in n for n in bare.notes)
