"""The candidate alias (canary / shadow), its decisions and canary routing, on mocked S3."""

from __future__ import annotations

import threading
import uuid

import pytest

from skylift.registry import ConcurrentUpdateError, ModelRegistry, VersionNotFoundError
from skylift.rollout import (
    CANDIDATE_ALIAS,
    RolloutError,
    abort_candidate,
    promote_candidate,
    read_rollout,
    routes_to_candidate,
    routing_key,
    start_candidate,
)


@pytest.fixture
def three_versions(registry, churn_bundle):
    for _ in range(3):
        registry.register(churn_bundle)
    registry.promote(1)
    return registry


def test_canary_is_a_candidate_beside_the_champion(three_versions):
    registry = three_versions
    state = start_candidate(registry, 2, "canary", percent=10, actor="test")
    assert (state.alias, state.version, state.mode, state.percent) == ("candidate", 2, "canary", 10)
    rollout = read_rollout(registry)
    assert rollout.champion == 1 and rollout.candidate is not None
    assert rollout.canary_percent == 10
    assert registry.aliases() == {"champion": 1, "candidate": 2}


def test_replacing_the_candidate_keeps_history(three_versions):
    registry = three_versions
    start_candidate(registry, 2, "canary", percent=5)
    state = start_candidate(registry, 3, "shadow")
    assert (state.version, state.mode, state.percent) == (3, "shadow", None)
    assert [(h.version, h.mode, h.percent) for h in state.history] == [(2, "canary", 5)]


@pytest.mark.parametrize("percent", [0, 100, -1, 150, None])
def test_canary_percent_must_be_strictly_between_0_and_100(three_versions, percent):
    with pytest.raises(RolloutError, match="between 0 and 100"):
        start_candidate(three_versions, 2, "canary", percent=percent)
    assert read_rollout(three_versions).candidate is None


def test_unknown_version_and_the_champion_itself_are_refused(three_versions):
    with pytest.raises(VersionNotFoundError, match="no version 9"):
        start_candidate(three_versions, 9, "shadow")
    with pytest.raises(RolloutError, match="already the champion"):
        start_candidate(three_versions, 1, "shadow")


def test_a_candidate_is_verified_like_the_champion(three_versions, s3, churn_config):
    from skylift.signing import SignatureError

    key = f"{churn_config.storage.models_prefix}churn/versions/3/manifest.sig"
    other = s3.get_object(Bucket=three_versions.bucket, Key=key.replace("/3/", "/2/"))
    s3.put_object(Bucket=three_versions.bucket, Key=key, Body=other["Body"].read())
    with pytest.raises(SignatureError):
        start_candidate(three_versions, 3, "canary", percent=10)
    assert read_rollout(three_versions).candidate is None


def test_no_candidate_without_a_champion(registry, churn_bundle):
    registry.register(churn_bundle)
    registry.register(churn_bundle)
    with pytest.raises(RolloutError, match="no champion"):
        start_candidate(registry, 2, "shadow")


def test_promote_moves_the_champion_and_closes_the_candidate(three_versions):
    registry = three_versions
    start_candidate(registry, 3, "canary", percent=20)
    champion = promote_candidate(registry, reason="held", actor="monitor")
    assert champion.version == 3 and champion.history[0].version == 1
    closed = registry.alias(CANDIDATE_ALIAS)
    assert (closed.version, closed.mode, closed.reason) == (3, "promoted", "held")
    assert read_rollout(registry).candidate is None
    with pytest.raises(RolloutError, match="no active candidate"):
        promote_candidate(registry)


def test_abort_leaves_the_champion(three_versions):
    registry = three_versions
    start_candidate(registry, 2, "canary", percent=50)
    closed = abort_candidate(registry, reason="errors")
    assert closed.mode == "aborted" and closed.history[0].mode == "canary"
    assert registry.resolve() == 1 and read_rollout(registry).candidate is None
    with pytest.raises(RolloutError, match="no active candidate"):
        abort_candidate(registry)


def test_a_decision_about_another_candidate_is_refused(three_versions):
    start_candidate(three_versions, 2, "shadow")
    with pytest.raises(RolloutError, match="version 2 now, not 3"):
        promote_candidate(three_versions, expected_version=3)
    assert three_versions.resolve() == 1


def test_concurrent_promote_and_abort_never_both_apply(three_versions, atomic_s3_puts):
    """Both deciders read the active candidate, then write at once: exactly one closes it;
    the champion moves only if the promotion won."""
    registry = three_versions
    for round_number in range(10):
        start_candidate(registry, 2 + round_number % 2, "canary", percent=10)
        candidate = read_rollout(registry).candidate
        assert candidate is not None
        champion_before = registry.resolve()
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def decide(kind: str, barrier=barrier, outcomes=outcomes) -> None:
            own = ModelRegistry(registry.bucket, registry.name, s3_client=registry._s3)
            read = own.alias_with_etag

            def read_then_wait(alias: str):  # both have read before either writes
                result = read(alias)
                if alias == CANDIDATE_ALIAS:
                    barrier.wait()
                return result

            own.alias_with_etag = read_then_wait  # type: ignore[method-assign]
            try:
                if kind == "promote":
                    promote_candidate(own)
                else:
                    abort_candidate(own)
                outcomes[kind] = "won"
            except ConcurrentUpdateError:
                outcomes[kind] = "lost"

        threads = [threading.Thread(target=decide, args=(k,)) for k in ("promote", "abort")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values()) == ["lost", "won"], f"round {round_number}: {outcomes}"
        closed = registry.alias(CANDIDATE_ALIAS)
        if outcomes["promote"] == "won":
            assert closed.mode == "promoted" and registry.resolve() == candidate.version
            registry.promote(champion_before)  # back, for the next round
        else:
            assert closed.mode == "aborted" and registry.resolve() == champion_before


# ---- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [1, 10, 50])
def test_routing_share_is_within_tolerance_over_10000_ids(percent):
    ids = [f"customer-{n}" for n in range(10_000)]
    share = sum(routes_to_candidate(routing_key(i), percent) for i in ids) / len(ids) * 100
    # binomial standard deviation at n=10,000 is at most 0.5 points: 4 sigma
    assert abs(share - percent) < 2.0, share


def test_routing_is_sticky_and_stable_across_processes():
    ids = [str(uuid.UUID(int=n)) for n in range(2_000)]
    first = [routes_to_candidate(routing_key(i), 25) for i in ids]
    assert first == [routes_to_candidate(routing_key(i), 25) for i in ids]
    # a fixed expectation: Python's salted hash() would change it between processes
    routed = [n for n in range(40) if routes_to_candidate(routing_key(f"c-{n}"), 30)]
    assert routed == [0, 7, 10, 18, 19, 21, 26, 27, 30, 39]
    assert routes_to_candidate(routing_key(7), 50) == routes_to_candidate(b"7", 50)
    # raising the percentage only adds entities to the canary, never moves one back
    at_25 = {i for i, routed in zip(ids, first, strict=True) if routed}
    at_50 = {i for i in ids if routes_to_candidate(routing_key(i), 50)}
    assert at_25 <= at_50


def test_no_traffic_at_zero_percent():
    assert not any(routes_to_candidate(routing_key(n), 0) for n in range(1000))
