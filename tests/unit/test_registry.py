"""ModelRegistry on (mocked) S3: versions, aliases, rollback, and concurrent promotions."""

from __future__ import annotations

import threading

import pytest

from skylift.registry import (
    AliasNotFoundError,
    BucketNotFoundError,
    ConcurrentUpdateError,
    ModelRegistry,
    RegistryError,
    VersionNotFoundError,
)


def test_register_assigns_increasing_versions(registry, churn_bundle):
    first = registry.register(churn_bundle)
    second = registry.register(churn_bundle)
    assert (first.version, second.version) == (1, 2)
    assert [m.version for m in registry.list_versions()] == [1, 2]
    assert registry.describe(2).sha256 == churn_bundle.manifest.sha256


def test_load_verifies_and_returns_the_model(registry, churn_bundle, churn_frame):
    registry.register(churn_bundle)
    loaded = registry.load(1)
    features = churn_frame[loaded.manifest.feature_schema.names].head(5)
    assert (loaded.model.predict(features) == churn_bundle.model.predict(features)).all()


def test_tampered_artifact_in_s3_is_never_loaded(registry, churn_bundle, s3, churn_config):
    from skylift.bundle import IntegrityError

    registry.register(churn_bundle)
    key = f"{churn_config.storage.models_prefix}churn/versions/1/model.joblib"
    s3.put_object(Bucket=churn_config.storage.bucket, Key=key, Body=b"evil pickle")
    with pytest.raises(IntegrityError):
        registry.load(1)


def test_version_without_manifest_is_invisible(registry, churn_bundle, s3, churn_config):
    """A crash after the artifact but before the manifest leaves nothing half-visible."""
    prefix = f"{churn_config.storage.models_prefix}churn/versions/"
    s3.put_object(Bucket=churn_config.storage.bucket, Key=prefix + "1/claim.json", Body=b"{}")
    s3.put_object(Bucket=churn_config.storage.bucket, Key=prefix + "1/model.joblib", Body=b"x")
    assert registry.list_versions() == []
    with pytest.raises(VersionNotFoundError):
        registry.promote(1)
    assert registry.register(churn_bundle).version == 2  # the dead number is not reused


def test_promote_and_rollback_keep_history(registry, churn_bundle):
    for _ in range(3):
        registry.register(churn_bundle)
    with pytest.raises(AliasNotFoundError):
        registry.resolve()
    registry.promote(1, reason="first")
    registry.promote(2)
    state = registry.promote(3)
    assert state.version == 3 and [h.version for h in state.history] == [2, 1]
    assert registry.rollback().version == 2
    assert registry.rollback().version == 3  # the champion before the rollback
    assert registry.aliases() == {"champion": registry.resolve()}


def test_rollback_without_history_is_a_clear_error(registry, churn_bundle):
    registry.register(churn_bundle)
    registry.promote(1)
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback()


def test_promoting_the_current_version_is_a_no_op(registry, churn_bundle):
    registry.register(churn_bundle)
    first = registry.promote(1)
    again = registry.promote(1)
    assert again.updated_at == first.updated_at and again.history == []


def test_stale_expectation_fails(registry, churn_bundle):
    for _ in range(2):
        registry.register(churn_bundle)
    registry.promote(1, expected_current=None)
    with pytest.raises(ConcurrentUpdateError):
        registry.promote(2, expected_current=None)
    registry.promote(2, expected_current=1)
    assert registry.resolve() == 2


def test_missing_bucket_is_a_clear_error(s3):
    registry = ModelRegistry("no-such-bucket-here", "churn", s3_client=s3)
    with pytest.raises(BucketNotFoundError, match="no-such-bucket-here"):
        registry.list_versions()


def test_unknown_version_is_a_clear_error(registry):
    with pytest.raises(VersionNotFoundError, match="no version 9"):
        registry.describe(9)


def test_concurrent_registers_get_distinct_versions(registry, churn_bundle, atomic_s3_puts):
    results: list[int] = []
    barrier = threading.Barrier(6)

    def register() -> None:
        barrier.wait()
        own = ModelRegistry(registry.bucket, registry.name, s3_client=registry._s3)
        from skylift.bundle import ModelBundle

        bundle = ModelBundle(churn_bundle.model, churn_bundle.manifest, churn_bundle.artifact)
        results.append(own.register(bundle).version or 0)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert [m.version for m in registry.list_versions()] == [1, 2, 3, 4, 5, 6]


def _race(registry: ModelRegistry, contenders: list[int], expected: int | None) -> list[int]:
    """All contenders promote at once (each with its own registry object); returns winners."""
    barrier = threading.Barrier(len(contenders))
    wins: list[int] = []
    losses: list[int] = []
    lock = threading.Lock()

    def promote(version: int) -> None:
        own = ModelRegistry(registry.bucket, registry.name, s3_client=registry._s3)
        barrier.wait()
        try:
            own.promote(version, expected_current=expected)
            outcome = wins
        except ConcurrentUpdateError:
            outcome = losses
        with lock:
            outcome.append(version)

    threads = [threading.Thread(target=promote, args=(v,)) for v in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) + len(losses) == len(contenders)
    return wins


def test_concurrent_promotions_exactly_one_wins_per_round(registry, churn_bundle, atomic_s3_puts):
    """8 threads promote different versions at once, 25 rounds: one winner each round, and
    the alias always names a complete version (the winner's)."""
    versions = [registry.register(churn_bundle).version or 0 for _ in range(8)]
    complete = {m.version for m in registry.list_versions()}
    current: int | None = None
    for round_number in range(25):
        wins = _race(registry, [v for v in versions if v != current], current)
        assert len(wins) == 1, f"round {round_number}: winners {wins}"
        current = registry.resolve()
        assert current == wins[0] and current in complete
    assert len(registry.alias().history) == 25 - 1
