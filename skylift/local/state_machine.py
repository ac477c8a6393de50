"""Run a Step Functions definition locally: the subset of the States Language the batch
fan-out uses (Task on lambda:invoke, Map with an S3 JSON ItemReader, Retry, Catch, Fail).

moto records executions but runs no states, so the local stack interprets the same dict CDK
deploys (skylift/batch/state_machine.py). The map's children run on a bounded thread pool
(default: the CPU count, and never more than MaxConcurrency). Threads, because the local
stack's functions run in-process; ``skylift batch score --workers`` uses processes.
Retry waits follow IntervalSeconds x BackoffRate^n (capped by MaxDelaySeconds), scaled by
``delay_scale`` (tests use 0); FULL jitter is not simulated.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Execution", "LocalStateMachine", "StateFailed"]

Invoke = Callable[[str, dict[str, Any]], Any]  # (function name or ARN, payload) -> result


class StateFailed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


@dataclass
class Execution:
    status: str  # SUCCEEDED | FAILED
    output: Any = None
    error: str | None = None
    cause: str | None = None
    attempts: dict[str, int] = field(default_factory=dict)  # state name -> tries, all told


class LocalStateMachine:
    def __init__(
        self,
        definition: dict[str, Any],
        invoke: Invoke,
        s3: Any,
        *,
        workers: int | None = None,
        delay_scale: float = 1.0,
    ) -> None:
        self.definition = definition
        self.invoke = invoke
        self.s3 = s3
        self.workers = workers or os.cpu_count() or 1
        self.delay_scale = delay_scale
        self._attempts: dict[str, int] = {}

    def run(self, document: Any) -> Execution:
        self._attempts = {}
        try:
            output = self._run_states(self.definition, copy.deepcopy(document), {})
        except StateFailed as failed:
            return Execution("FAILED", None, failed.error, failed.cause, dict(self._attempts))
        return Execution("SUCCEEDED", output, attempts=dict(self._attempts))

    # ---- states ------------------------------------------------------------------------------

    def _run_states(self, machine: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            kind = state["Type"]
            if kind == "Fail":
                raise StateFailed(state.get("Error", "States.Failed"), state.get("Cause", ""))
            if kind == "Succeed":
                return data
            try:
                data = self._with_retries(name, state, data, context)
            except StateFailed as failed:
                catcher = _matching(state.get("Catch", []), failed.error)
                if catcher is None:
                    raise
                data = _put(
                    data,
                    catcher.get("ResultPath", "$"),
                    {"Error": failed.error, "Cause": failed.cause},
                )
                name = catcher["Next"]
                continue
            if state.get("End"):
                return data
            name = state["Next"]

    def _with_retries(
        self, name: str, state: dict[str, Any], data: Any, context: dict[str, Any]
    ) -> Any:
        tries: dict[int, int] = {}
        while True:
            self._attempts[name] = self._attempts.get(name, 0) + 1
            try:
                return self._execute(state, data, context)
            except StateFailed as failed:
                retriers = state.get("Retry", [])
                retrier = _matching(retriers, failed.error)
                if retrier is None:
                    raise
                number = retriers.index(retrier)
                done = tries.get(number, 0)
                if done >= retrier.get("MaxAttempts", 3):
                    raise
                tries[number] = done + 1
                delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** done
                delay = min(delay, retrier.get("MaxDelaySeconds", delay))
                time.sleep(delay * self.delay_scale)

    def _execute(self, state: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        kind = state["Type"]
        if kind == "Task":
            parameters = _resolve(state.get("Parameters", {}), data, context)
            try:
                payload = self.invoke(parameters["FunctionName"], parameters.get("Payload", {}))
            except Exception as exc:  # the Lambda's errorType is the exception's class name
                raise StateFailed(type(exc).__name__, str(exc)) from exc
            result = _select(state.get("ResultSelector"), {"Payload": payload}, context)
            return _get(
                _put(data, state.get("ResultPath", "$"), result), state.get("OutputPath", "$")
            )
        if kind == "Map":
            return self._map(state, data, context)
        if kind == "Pass":
            return _put(data, state.get("ResultPath", "$"), state.get("Result", data))
        raise StateFailed("States.Runtime", f"state type {kind} is not supported locally")

    def _map(self, state: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        reader = state["ItemReader"]
        where = _resolve(reader["Parameters"], data, context)
        body = self.s3.get_object(Bucket=where["Bucket"], Key=where["Key"])["Body"].read()
        items = json.loads(body)
        limit = state.get("MaxConcurrency") or len(items) or 1
        processor = state["ItemProcessor"]

        def child(index_item: tuple[int, Any]) -> Any:
            index, item = index_item
            child_context = {"Map": {"Item": {"Index": index, "Value": item}}}
            selected = (
                _resolve(state.get("ItemSelector", {}), data, child_context)
                if ("ItemSelector" in state)
                else item
            )
            return self._run_states(processor, selected, child_context)

        failures: list[StateFailed] = []
        results: list[Any] = []
        with ThreadPoolExecutor(max_workers=max(1, min(limit, self.workers))) as pool:
            futures = [pool.submit(child, pair) for pair in enumerate(items)]
            for future in futures:
                try:
                    results.append(future.result())
                except StateFailed as failed:
                    failures.append(failed)
        tolerated = state.get("ToleratedFailurePercentage", 0)
        if failures and 100 * len(failures) / len(items) > tolerated:
            raise StateFailed(
                "States.ExceedToleratedFailureThreshold",
                f"{len(failures)} of {len(items)} items failed; first: {failures[0]}",
            )
        return _put(data, state.get("ResultPath", "$"), results)


# ---- paths (the JsonPath subset the definition uses) -----------------------------------------


def _matching(rules: list[dict[str, Any]], error: str) -> dict[str, Any] | None:
    for rule in rules:
        names = rule["ErrorEquals"]
        if error in names or ("States.ALL" in names and not error.startswith("States.Runtime")):
            return rule
    return None


def _path(data: Any, context: dict[str, Any], path: str) -> Any:
    root, rest = (context, path[2:]) if path.startswith("$$") else (data, path[1:])
    value = root
    for part in filter(None, rest.split(".")):
        value = value[part]
    return value


def _resolve(template: Any, data: Any, context: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = copy.deepcopy(_path(data, context, value))
            else:
                out[key] = _resolve(value, data, context)
        return out
    return template


def _select(selector: dict[str, Any] | None, result: Any, context: dict[str, Any]) -> Any:
    return result if selector is None else _resolve(selector, result, context)


def _get(data: Any, path: str | None) -> Any:
    return None if path is None else _path(data, {}, path)


def _put(data: Any, path: str | None, value: Any) -> Any:
    if path is None:
        return data  # ResultPath null: the state's input passes through
    if path == "$":
        return value
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    target = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return out
