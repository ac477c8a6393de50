"""The score function's threading is set deliberately, the same in the CDK stack and the local
stack: one native thread (OpenMP, OpenBLAS, MKL). Under CPU contention OpenMP's spin-waiting
pool gave single-record requests a p99 of 1.76 s (26 ms single-threaded)."""

from __future__ import annotations

import pytest

from skylift.topology import SCORE_THREADING

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _function_environments(template_json) -> dict[str, dict[str, str]]:
    return {
        r["Properties"]["Handler"]: r["Properties"].get("Environment", {}).get("Variables", {})
        for r in template_json["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler", "").startswith("functions.")
    }


def test_the_synthesized_score_function_runs_one_native_thread(template_json):
    assert SCORE_THREADING == ONE_THREAD
    environments = _function_environments(template_json)
    score = environments["functions.score.app.handler"]
    assert {name: score.get(name) for name in ONE_THREAD} == ONE_THREAD
    # Batch scores large chunks: its thread pools stay as the runtime sizes them.
    assert "OMP_NUM_THREADS" not in environments["functions.batch.app.handler"]


@pytest.fixture(scope="module")
def local_score_environment(churn_config):
    from skylift.local.stack import LocalStack

    with LocalStack(churn_config, poll=False, clocks=False) as stack:
        return dict(stack.functions["score"].environment)


def test_the_local_score_function_runs_one_native_thread(local_score_environment):
    assert {name: local_score_environment.get(name) for name in ONE_THREAD} == ONE_THREAD
