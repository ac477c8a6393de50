"""Capture of scored requests for monitoring: sampled, sent to Kinesis Data Firehose off the
request path, landing in S3 ``capture/`` as JSON Lines.

Each scored record becomes one newline-terminated JSON object (the monitoring job reads them)::

    {"captured_at": "2026-01-01T00:00:00.000000+00:00", "model": "churn", "model_version": 3,
     "request_id": "...", "id": "c-1" | null, "features": {...}, "prediction": 1,
     "probabilities": {"0": 0.2, "1": 0.8} | null}

While a canary answers part of the traffic, each line also says which version answered it
(``"role": "champion" | "candidate"``, ``model_version``, ``scoring_ms``); a canary failure adds
lines with ``"error"`` and a null prediction for its rows (the champion's answers follow).

Why a background thread: a Firehose call costs a network round trip, which must not be added to
the caller's latency, and a Firehose outage must not fail scoring. The request path only
serialises the lines and puts them on a bounded queue; a daemon thread gathers them for up to
``linger_seconds`` into PutRecordBatch calls (at most 500 records / 4 MiB each) with short
timeouts and no retries beyond one resend of the records Firehose reports as failed. Anything dropped (queue full,
call failed) is counted; the service turns the count into the CaptureFailures metric.

In Lambda the process is frozen between invocations, so lines queued at the very end of one
invocation are sent when the next one thaws it (or lost if the environment is reclaimed):
capture is a sample for monitoring, not an audit log.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "CaptureSink",
    "FirehoseCapture",
    "NullCapture",
    "capture_lines",
]

logger = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500  # PutRecordBatch limits
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
_POLL_SECONDS = 0.05  # how soon a lingering batch notices flush()


class CaptureSink(Protocol):
    """Where the service sends scored records (Firehose in production, nothing if disabled)."""

    enabled: bool

    def sampled(self) -> bool: ...

    def submit(self, lines: Sequence[bytes]) -> None: ...

    def take_failures(self) -> int: ...

    def flush(self, timeout: float = 5.0) -> bool: ...

    def after_restore(self) -> None: ...


class NullCapture:
    """Capture switched off (no stream configured, or a sample rate of 0)."""

    enabled = False

    def sampled(self) -> bool:
        return False

    def submit(self, lines: Sequence[bytes]) -> None:
        return None

    def take_failures(self) -> int:
        return 0

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def after_restore(self) -> None:
        return None


def capture_lines(
    *,
    model: str,
    model_version: int | None,
    request_id: str,
    ids: Sequence[Any] | None,
    features: Sequence[dict[str, Any]],
    predictions: Sequence[Any],
    probabilities: Sequence[dict[str, float]] | None,
    captured_at: datetime | None = None,
    rollout: Sequence[dict[str, Any]] | None = None,
) -> list[bytes]:
    """One JSON line (bytes, newline-terminated) per scored record. ``rollout`` (while a
    canary is active) adds per record: the ``role`` and ``model_version`` that answered it,
    that version's ``scoring_ms`` for the request, and the candidate's ``error`` if it failed."""
    stamp = (captured_at or datetime.now(UTC)).isoformat()
    lines: list[bytes] = []
    for row, prediction in enumerate(predictions):
        item = {
            "captured_at": stamp,
            "model": model,
            "model_version": model_version,
            "request_id": request_id,
            "id": ids[row] if ids else None,
            "features": features[row],
            "prediction": prediction,
            "probabilities": probabilities[row] if probabilities is not None else None,
        }
        if rollout is not None:
            item.update(rollout[row])
        # allow_nan=False: a NaN can only come from a bug; better a failed capture than a
        # line the monitoring job cannot parse.
        lines.append(json.dumps(item, separators=(",", ":"), allow_nan=False).encode() + b"\n")
    return lines


class FirehoseCapture:
    """Sends capture lines to a Firehose delivery stream from a background thread."""

    enabled = True

    def __init__(
        self,
        stream_name: str,
        sample_rate: float,
        *,
        client_factory: Callable[[], Any],
        max_queued_lines: int = 20_000,
        linger_seconds: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.stream_name = stream_name
        self.sample_rate = sample_rate
        self.linger_seconds = linger_seconds
        self._flush_now = threading.Event()
        self._client_factory = client_factory
        self._client: Any | None = None
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=max_queued_lines)
        self._rng = rng or random.Random()
        self._failures = 0
        self._sent = 0
        self._pending = 0  # lines queued or in flight
        self._state = threading.Condition()
        self._worker: threading.Thread | None = None

    # ---- request path (cheap) ----------------------------------------------------------------

    def sampled(self) -> bool:
        return self.sample_rate >= 1.0 or self._rng.random() < self.sample_rate

    def submit(self, lines: Sequence[bytes]) -> None:
        """Queue ``lines``; never blocks, never raises (a full queue drops and counts)."""
        self._ensure_worker()
        for line in lines:
            if len(line) > MAX_RECORD_BYTES:
                self._count_failures(1, "capture line larger than Firehose's 1000 KiB limit")
                continue
            with self._state:
                self._pending += 1
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                self._done(1)
                self._count_failures(1, "capture queue full")

    def take_failures(self) -> int:
        """Failures since the last call (the service publishes them as a metric)."""
        with self._state:
            count, self._failures = self._failures, 0
        return count

    @property
    def sent(self) -> int:
        return self._sent

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued now and wait for it; False if not done within ``timeout``."""
        deadline = time.monotonic() + timeout
        self._flush_now.set()
        try:
            with self._state:
                while self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._state.wait(remaining)
        finally:
            self._flush_now.clear()
        return True

    def after_restore(self) -> None:
        """After a SnapStart restore: reseed sampling (each restored copy would otherwise
        draw the same sequence) and open new connections (the snapshot's are dead)."""
        self._rng.seed()
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # ---- background thread -------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="skylift-capture", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch, size = [first], len(first)
            # Linger a little so one call carries many records: a call per request would cost
            # more CPU (signing, HTTP) than the request it follows. Firehose buffers for a
            # minute or more before writing to S3 anyway.
            deadline = time.monotonic() + self.linger_seconds
            while len(batch) < MAX_BATCH_RECORDS:
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0 or self._flush_now.is_set():
                        line = self._queue.get_nowait()  # what is already there, no waiting
                    else:
                        line = self._queue.get(timeout=min(remaining, _POLL_SECONDS))
                except queue.Empty:
                    if remaining <= 0 or self._flush_now.is_set():
                        break
                    continue
                if size + len(line) > MAX_BATCH_BYTES:
                    self._send(batch)
                    batch, size = [], 0
                batch.append(line)
                size += len(line)
            if batch:
                self._send(batch)

    def _send(self, batch: list[bytes]) -> None:
        try:
            if self._client is None:
                self._client = self._client_factory()
            response = self._client.put_record_batch(
                DeliveryStreamName=self.stream_name, Records=[{"Data": line} for line in batch]
            )
            failed = [
                line
                for line, result in zip(batch, response.get("RequestResponses", []), strict=False)
                if result.get("ErrorCode")
            ]
            if failed:
                # One resend of what Firehose refused (throttling is per record).
                response = self._client.put_record_batch(
                    DeliveryStreamName=self.stream_name,
                    Records=[{"Data": line} for line in failed],
                )
                lost = int(response.get("FailedPutCount", 0))
                if lost:
                    self._count_failures(lost, "Firehose refused records twice")
                self._sent += len(batch) - lost
            else:
                self._sent += len(batch)
        except Exception as exc:  # capture must never take the service down
            self._count_failures(len(batch), f"PutRecordBatch to {self.stream_name} failed: {exc}")
        finally:
            self._done(len(batch))

    def _done(self, count: int) -> None:
        with self._state:
            self._pending -= count
            if self._pending <= 0:
                self._pending = 0
                self._state.notify_all()

    def _count_failures(self, count: int, reason: str) -> None:
        with self._state:
            self._failures += count
        logger.warning("capture: %d record(s) dropped: %s", count, reason)
