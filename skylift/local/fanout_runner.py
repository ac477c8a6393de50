"""The local stack's Step Functions: runs the batch fan-out's executions.

moto accepts StartExecution (and refuses a second execution of the same name, as AWS does)
but runs no states. This runner polls moto for RUNNING executions of the fan-out state
machine and runs each once through :class:`LocalStateMachine`, on the same definition CDK
deploys, with the fan-out function invoked in-process. moto cannot mark an execution
SUCCEEDED, so a finished one is stopped (a failed one with its error and cause); the result
lives in S3 (the manifest) as on AWS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from skylift.local.state_machine import Execution, LocalStateMachine

__all__ = ["LocalFanoutRunner"]

logger = logging.getLogger(__name__)


class LocalFanoutRunner:
    def __init__(
        self,
        sfn: Any,
        state_machine_arn: str,
        machine: LocalStateMachine,
        *,
        interval: float = 0.2,
    ) -> None:
        self.sfn = sfn
        self.arn = state_machine_arn
        self.machine = machine
        self.interval = interval
        self.results: dict[str, Execution] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_pending(self) -> list[str]:
        """Run every RUNNING execution not run yet; their names."""
        import json

        listed = self.sfn.list_executions(stateMachineArn=self.arn, statusFilter="RUNNING")
        ran = []
        for summary in listed.get("executions", []):
            name = summary["name"]
            if name in self.results:
                continue
            described = self.sfn.describe_execution(executionArn=summary["executionArn"])
            execution = self.machine.run(json.loads(described["input"]))
            self.results[name] = execution
            logger.info("fan-out %s: %s", name, execution.status)
            self.sfn.stop_execution(
                executionArn=summary["executionArn"],
                error=execution.error or "",
                cause=(execution.cause or "")[:32000] or execution.status,
            )
            ran.append(name)
        return ran

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_pending()
            except Exception:  # keep the stack up; the execution is retried next poll
                logger.exception("local fan-out runner")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fanout-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def invoke_function(
    invoke: Callable[[dict[str, Any]], Any],
) -> Callable[[str, dict[str, Any]], Any]:
    """A LocalStateMachine invoke for one function (the definition's only FunctionName)."""
    return lambda function, payload: invoke(payload)
