"""Scheduled retraining on mocked S3: gate decisions, reports, concurrent retrains."""

from __future__ import annotations

import json
import threading

import pytest

from skylift.registry import ModelRegistry
from skylift.retraining import retrain


@pytest.fixture
def with_training_data(s3, churn_config):
    from churn_model.data import generate_churn

    def put(frame, name="churn.csv"):
        s3.put_object(
            Bucket=churn_config.storage.bucket,
            Key=churn_config.storage.training_prefix + name,
            Body=frame.to_csv(index=False).encode(),
        )

    put(generate_churn(2500, seed=3))
    return put


def stored(s3, config, report):
    return json.loads(
        s3.get_object(Bucket=config.storage.bucket, Key=report.report_key)["Body"].read()
    )


def test_first_model_is_promoted_when_it_clears_the_floor(
    s3, churn_config, with_training_data, registry
):
    report = retrain(churn_config, s3)
    assert report.decision.promoted and registry.resolve() == 1
    saved = stored(s3, churn_config, report)
    assert saved["data"]["rows"] == 2500 and len(saved["data"]["sha256"]) == 64
    assert saved["champion"] is None and "clears the floor" in saved["decision"]["reason"]
    assert saved["holdout"]["seed"] == churn_config.model.seed
    assert {"fit_seconds", "total_seconds"} <= set(saved["timings"])
    assert saved["limits"]["near_limit"] is False


def test_same_data_again_is_registered_but_not_promoted(
    s3, churn_config, with_training_data, registry
):
    retrain(churn_config, s3)
    report = retrain(churn_config, s3)
    assert report.challenger.version == 2 and not report.decision.promoted
    assert "gain +0.0000" in report.decision.reason  # within the margin
    assert registry.resolve() == 1 and len(registry.list_versions()) == 2


def test_worse_challenger_is_rejected(s3, churn_config, with_training_data, registry, churn_frame):
    retrain(churn_config, s3)
    noisy = churn_frame.copy()
    noisy["churned"] = (
        noisy["churned"].sample(frac=1.0, random_state=0).to_numpy()
    )  # labels scrambled
    with_training_data(noisy)
    report = retrain(churn_config, s3)
    assert not report.decision.promoted and registry.resolve() == 1
    assert report.champion.metrics["roc_auc"] > report.challenger.metrics["roc_auc"]


def test_better_challenger_is_promoted(s3, churn_config, with_training_data, registry):
    from churn_model.data import generate_churn

    retrain(churn_config, s3)
    with_training_data(generate_churn(3000, seed=4, shift=0.6))  # the population moved
    report = retrain(churn_config, s3)
    assert report.decision.promoted, report.decision.reason
    assert registry.resolve() == 2 and registry.alias().history[0].version == 1


def test_no_training_data_is_reported_not_raised(s3, churn_config):
    report = retrain(churn_config, s3)
    assert report.status == "failed" and "no training data" in report.reason
    assert stored(s3, churn_config, report)["decision"]["promoted"] is False


ALIAS_LOST = {"name": "alias", "passed": False, "detail": "conditional write lost"}


def test_concurrent_retrains_promote_exactly_once(
    s3, churn_config, with_training_data, atomic_s3_puts
):
    reports = []
    barrier = threading.Barrier(3)

    def run():
        barrier.wait()
        reports.append(retrain(churn_config, s3))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    promoted = [r for r in reports if r.decision.promoted]
    assert len(promoted) == 1
    registry = ModelRegistry.from_config(churn_config, s3_client=s3)
    assert promoted[0].challenger is not None
    assert registry.resolve() == promoted[0].challenger.version
    assert len(registry.list_versions()) == 3
    losers = [r for r in reports if not r.decision.promoted]
    for loser in losers:
        # A loser that read no champion passed the gate and lost the conditional write; one
        # that started after the winner promoted was gated against it (same data: no gain).
        expected = "lost race" if loser.champion is None else "gain +0.0000"
        assert expected in loser.decision.reason, loser.decision.reason
        alias_checks = [c for c in loser.decision.checks if c["name"] == "alias"]
        assert alias_checks == ([] if loser.champion else [ALIAS_LOST])


def test_champion_and_challenger_are_scored_on_the_same_rows(
    s3, churn_config, with_training_data, registry
):
    """An identical model scores identically, even when the champion's schema refuses holdout
    rows the challenger's accepts; the report names the rows scored and why others were not."""
    from skylift.bundle import ModelBundle
    from skylift.schema import FeatureSchema

    retrain(churn_config, s3)  # v1: champion
    first = registry.load_alias()
    schema = first.manifest.feature_schema
    strict = FeatureSchema(
        features=[f.model_copy(update={"nullable": False}) if f.name == "age" else f
                  for f in schema.features],
        id_column=schema.id_column,
        target=schema.target,
        optional=schema.optional,
    )  # fmt: skip
    same_model = ModelBundle.create(
        first.model,
        name=first.manifest.name,
        task=first.manifest.task,
        target=first.manifest.target,
        id_column=first.manifest.id_column,
        feature_schema=strict,
        metrics=first.manifest.metrics,
    )
    registry.promote(registry.register(same_model).version)  # v2: same model, stricter schema
    report = retrain(churn_config, s3)  # v3: the same data, so the same model again
    saved = stored(s3, churn_config, report)
    assert saved["challenger"]["metrics"] == saved["champion"]["metrics"]
    holdout = saved["holdout"]
    assert holdout["excluded_rows"] > 0  # the rows with no age
    assert holdout["scored_rows"] == holdout["rows"] - holdout["excluded_rows"]
    assert saved["challenger"]["rows"] == saved["champion"]["rows"] == holdout["scored_rows"]
    assert holdout["exclusions"] == {
        "champion: age: missing value for a required feature": holdout["excluded_rows"]
    }
    assert "gain +0.0000" in report.decision.reason


@pytest.mark.parametrize(("promote_to", "percent"), [("canary", 25.0), ("shadow", None)])
def test_a_passing_challenger_can_go_to_the_candidate_first(
    s3, churn_config, with_training_data, registry, promote_to, percent
):
    from churn_model.data import generate_churn

    from skylift.rollout import read_rollout

    section = churn_config.retrain.model_copy(
        update={"promote_to": promote_to, "canary_percent": 25.0}
    )
    config = churn_config.model_copy(update={"retrain": section})
    first = retrain(config, s3)  # a first model has nothing to be compared with: champion
    assert first.decision.promoted_to == "champion" and registry.resolve() == 1
    with_training_data(generate_churn(3000, seed=4, shift=0.6))
    report = retrain(config, s3)
    assert report.decision.promoted and report.decision.promoted_to == promote_to
    assert registry.resolve() == 1  # the champion stays until the rollout is decided
    candidate = read_rollout(registry).candidate
    assert candidate is not None and (candidate.version, candidate.mode) == (2, promote_to)
    assert candidate.percent == percent
    assert stored(s3, config, report)["decision"]["promoted_to"] == promote_to
