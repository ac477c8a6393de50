"""The local event bus: EventBridge PutEvents delivered to the targets the rules name, as AWS does.

moto stores rules and targets, but answers PutEvents with a 500 when a matching rule targets a
Lambda function (it cannot run one without Docker). So the local stack points its functions'
EventBridge client here (``AWS_ENDPOINT_URL_EVENTBRIDGE``): this server speaks PutEvents' wire
format (``X-Amz-Target: AWSEvents.PutEvents``, JSON 1.1), builds each event as EventBridge
delivers it, matches it against the enabled rules held by moto (with moto's own event-pattern
matcher) and invokes the Lambda targets that are local functions, asynchronously, as
EventBridge invokes Lambda. :meth:`LocalEventBus.wait_idle` waits for those deliveries.
Targets of other kinds are not delivered (logged).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Delivery", "LocalEventBus"]

logger = logging.getLogger(__name__)

PUT_EVENTS_TARGET = "AWSEvents.PutEvents"
JSON_11 = "application/x-amz-json-1.1"


class Delivery:
    """One event delivered (or failed) to one function."""

    def __init__(self, rule: str, function: str, event: dict[str, Any]) -> None:
        self.rule = rule
        self.function = function
        self.event = event
        self.result: Any = None
        self.error: str | None = None


class LocalEventBus:
    """The default event bus of the local stack (see the module docstring)."""

    def __init__(
        self,
        events_client: Any,
        functions: Mapping[str, Callable[[dict[str, Any]], Any]],
        region: str,
        account: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.events = events_client  # moto: where the rules and targets live
        self.functions = functions  # function name -> invoke(event)
        self.region = region
        self.account = account
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        handler = type("EventBusRequestHandler", (_RequestHandler,), {"bus": self})
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self._threads = [
            threading.Thread(
                target=self.httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="skylift-events",
                daemon=True,
            ),
            threading.Thread(target=self._deliver, name="skylift-events-delivery", daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self.httpd.shutdown()
        for thread in self._threads:
            thread.join(timeout=30)
        self.httpd.server_close()

    def wait_idle(self, timeout: float = 300.0) -> None:
        """Until every event put so far has been delivered (its target has returned)."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        if not done.wait(timeout):
            raise TimeoutError(f"event deliveries still running after {timeout:.0f} s")

    # ---- PutEvents -----------------------------------------------------------------------------

    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """PutEvents' reply; matching deliveries are queued."""
        results: list[dict[str, Any]] = []
        failed = 0
        for entry in entries:
            try:
                event = self._event(entry)
            except ValueError as exc:
                failed += 1
                results.append({"ErrorCode": "MalformedDetail", "ErrorMessage": str(exc)})
                continue
            for rule, function in self._targets(event):
                delivery = Delivery(rule, function, event)
                self.deliveries.append(delivery)
                self._queue.put(delivery)
            results.append({"EventId": event["id"]})
        return {"FailedEntryCount": failed, "Entries": results}

    def _event(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The event as EventBridge hands it to a target."""
        for required in ("Source", "DetailType", "Detail"):
            if not entry.get(required):
                raise ValueError(f"{required} is required")
        detail = json.loads(entry["Detail"])
        if not isinstance(detail, dict):
            raise ValueError("Detail must be a JSON object")
        moment = entry.get("Time") or datetime.now(UTC)
        if isinstance(moment, int | float):
            moment = datetime.fromtimestamp(moment, UTC)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": self.account,
            "time": (
                moment.strftime("%Y-%m-%dT%H:%M:%SZ")
                if isinstance(moment, datetime)
                else str(moment)
            ),
            "region": self.region,
            "resources": list(entry.get("Resources", [])),
            "detail": detail,
        }

    def _targets(self, event: dict[str, Any]) -> list[tuple[str, str]]:
        """(rule, function) for each enabled rule on the default bus whose pattern matches."""
        from moto.events.models import EventPattern, EventPatternParser

        found = []
        for page in self.events.get_paginator("list_rules").paginate(EventBusName="default"):
            for rule in page.get("Rules", []):
                if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
                    continue
                raw = rule["EventPattern"]
                if not EventPattern(raw, EventPatternParser(raw).parse()).matches_event(event):  # type: ignore[arg-type]
                    continue
                targets = self.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
                for target in targets:
                    arn = target["Arn"]
                    name = arn.rsplit(":", 1)[-1]
                    if arn.startswith("arn:aws:lambda:") and name in self.functions:
                        found.append((rule["Name"], name))
                    else:
                        logger.warning(
                            "rule %s: target %s is not a local function; not delivered",
                            rule["Name"],
                            arn,
                        )
        return found

    def _deliver(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                if delivery is None:
                    return
                logger.info(
                    "rule %s: %s event -> function %s",
                    delivery.rule,
                    delivery.event["detail-type"],
                    delivery.function,
                )
                try:
                    delivery.result = self.functions[delivery.function](delivery.event)
                except Exception as exc:  # an async invocation's failure: logged, not raised
                    delivery.error = f"{type(exc).__name__}: {exc}"
                    logger.exception("function %s failed on an event", delivery.function)
            finally:
                self._queue.task_done()


class _RequestHandler(BaseHTTPRequestHandler):
    bus: LocalEventBus
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        if target != PUT_EVENTS_TARGET:
            self._reply(
                400,
                {
                    "__type": "UnknownOperationException",
                    "message": f"the local event bus serves {PUT_EVENTS_TARGET} only, not "
                    f"{target or 'this request'}; other EventBridge calls go to moto",
                },
            )
            return
        try:
            request = json.loads(body)
            entries = request["Entries"]
        except (ValueError, KeyError, TypeError):
            self._reply(400, {"__type": "ValidationException", "message": "Entries required"})
            return
        self._reply(200, self.bus.put_events(entries))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON_11)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
