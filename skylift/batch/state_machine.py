"""The batch fan-out's state machine, described once (Amazon States Language, as a dict).

CDK deploys this definition (with the fan-out function's ARN substituted) and the local
stack's runner (skylift/local/state_machine.py) interprets the same dict, so the two cannot
differ in states, retries or concurrency (tests/infrastructure checks the synthesized one).

Plan (Lambda) -> ScoreRanges (Map, DISTRIBUTED, items read from the plan's ranges.json in S3,
MaxConcurrency from config, each child retried with backoff on transient errors, a tolerated
failure of 0) -> Commit (Lambda). Any failure goes to RecordFailure, which writes the `failed`
manifest naming the range, then the execution fails.
"""

from __future__ import annotations

from typing import Any

from skylift.topology import Topology

__all__ = ["FUNCTION_ARN", "PERMANENT_ERRORS", "definition"]

FUNCTION_ARN = "${FanoutFunctionArn}"  # a DefinitionSubstitutions placeholder
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# Errors that another try cannot fix (the exception class names Lambda reports).
PERMANENT_ERRORS = ["RangeFailedError", "PermanentBatchError", "UnsupportedFormatError"]


def _transient_retry(max_attempts: int) -> list[dict[str, Any]]:
    return [
        {"ErrorEquals": PERMANENT_ERRORS, "MaxAttempts": 0},
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 2,
            "BackoffRate": 2.0,
            "MaxAttempts": max_attempts,
            "MaxDelaySeconds": 60,
            "JitterStrategy": "FULL",
        },
    ]


def _step(step: str, payload: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": FUNCTION_ARN, "Payload": {"step": step, **payload}},
        "OutputPath": "$.Payload",
        **rest,
    }


_TO_FAILURE = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}]


def definition(topology: Topology) -> dict[str, Any]:
    return {
        "Comment": f"skylift batch fan-out for model {topology.model_name}",
        "StartAt": "Plan",
        "States": {
            "Plan": _step(
                "plan",
                {"input.$": "$"},
                Retry=_transient_retry(3),
                Catch=_TO_FAILURE,
                Next="ScoreRanges",
            ),
            "ScoreRanges": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.ranges_key"},
                },
                "ItemSelector": {"job.$": "$", "range.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "ScoreRange",
                    "States": {
                        "ScoreRange": _step(
                            "range",
                            {"job.$": "$.job", "range.$": "$.range"},
                            Retry=_transient_retry(4),
                            End=True,
                        )
                    },
                },
                "MaxConcurrency": topology.fanout_max_concurrency,
                "ToleratedFailurePercentage": 0,
                "ResultPath": None,  # ranges leave their counts in S3 (10,000 would not fit)
                "Catch": _TO_FAILURE,
                "Next": "Commit",
            },
            "Commit": _step(
                "commit", {"job.$": "$"}, Retry=_transient_retry(3), Catch=_TO_FAILURE, End=True
            ),
            "RecordFailure": _step(
                "fail", {"job.$": "$"}, Retry=_transient_retry(3), Next="Failed"
            ),
            "Failed": {
                "Type": "Fail",
                "Error": "BatchFanoutFailed",
                "Cause": "a range or step failed; see the failed manifest",
            },
        },
    }
