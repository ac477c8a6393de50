"""The scoring API's service: Powertools resolvers with validation on, one for REST API events
(``APIGatewayRestResolver``) and one for HTTP API payload 2.0 events
(``APIGatewayHttpResolver``), with the same routes (``POST /predict``, ``GET /health``,
``GET /model``, ``GET /openapi.json``) and error mapping; the model holder,
capture and the EMF metrics the alarms are built on. Every error, whatever raised it, becomes
a reply in one place (:mod:`skylift.serving.error_mapping`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from skylift import observability
from skylift.api_capture import CaptureSink, NullCapture, capture_lines
from skylift.api_errors import ApiError, Detail, ErrorCode, bounded_details
from skylift.candidate_holder import CandidateHolder
from skylift.model_holder import ModelHolder
from skylift.observability import Metric
from skylift.scoring import Scorer
from skylift.serving.canary import VersionPart, canary_mask, score_with_canary
from skylift.serving.contracts import ErrorReply, PredictReply, PredictRequest
from skylift.serving.error_mapping import (
    api_error_for,
    error_response,
    is_json_content_type,
    unsupported_media_type,
)
from skylift.serving.payloads import HttpApiResolver, PayloadFormat, payload_format, proxy_reply
from skylift.serving.screening import (
    may_hold_surrogates,
    non_unicode_values,
    normalize_media_type,
    parse_envelope,
    screen_body,
)

if TYPE_CHECKING:
    from skylift.config import ApiConfig

__all__ = ["ScoringService"]

logger = logging.getLogger(__name__)

_JSON = content_types.APPLICATION_JSON


@dataclass
class _RequestState:
    """What one request did, for its metrics."""

    records_scored: int = 0
    model_version: int | None = None
    error_code: str | None = None
    parts: list[VersionPart] | None = None  # per version, when a canary answered part of it


class ScoringService:
    """The resolver, its routes and error mapping, the model holder, capture and metrics."""

    def __init__(
        self,
        *,
        model_name: str,
        holder: ModelHolder,
        api: ApiConfig,
        capture: CaptureSink | None = None,
        candidates: CandidateHolder | None = None,
        namespace: str | None = None,
        service_name: str | None = None,
        new_request_id: Callable[[], str] | None = None,
    ) -> None:
        self.model_name = model_name
        self.holder = holder
        self.candidates = candidates  # None: no rollouts (the champion answers everything)
        self.api = api
        self.capture: CaptureSink = capture or NullCapture()
        self.service_name = service_name or observability.service_name()
        self.metrics = EphemeralMetrics(
            namespace=namespace or observability.metrics_namespace(), service=self.service_name
        )
        self.metrics.set_default_dimensions(model=model_name)
        # One metrics object per role, its dimensions set once (role is a default dimension).
        self._namespace = namespace or observability.metrics_namespace()
        self._role_metrics: dict[str, EphemeralMetrics] = {}
        self._new_request_id = new_request_id or (lambda: str(uuid.uuid4()))
        self._request = _RequestState()
        self._openapi: str | None = None
        self._threads = _ThreadLimit()
        # Powertools' resolvers keep the current event on themselves: one request at a time,
        # as Lambda runs one per environment (the local stack serialises its invocations too).
        self.app = self._build_app(APIGatewayRestResolver)  # REST API (payload 1.0)
        self.http_app = self._build_app(HttpApiResolver)  # HTTP API (payload 2.0)
        self._current: ApiGatewayResolver = self.app

    # ---- entry point -------------------------------------------------------------------------

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Serve one API Gateway proxy event (REST API or HTTP API payload 2.0); always
        returns a proxy reply in the event's format (the REST format for anything else)."""
        started = time.perf_counter()
        self._request = _RequestState()
        payload = PayloadFormat.REST
        try:
            payload = payload_format(event)
            self._current = self.http_app if payload is PayloadFormat.HTTP else self.app
            normalize_media_type(event)
            screened = screen_body(event, self.api.max_body_bytes)
            if screened is not None:
                reply = proxy_reply(self._error_reply(screened), payload)
            else:
                reply = self._current.resolve(event, context)
        except ApiError as error:  # not an event this function serves
            logger.error("%s: %s", error.code, error.message)
            reply = proxy_reply(self._error_reply(error), payload)
        except Exception as exc:  # a bug of ours
            logger.exception("unhandled error serving request")
            reply = proxy_reply(self._error_reply(exc), payload)
        self._publish_metrics(reply, (time.perf_counter() - started) * 1000.0)
        # Powertools answers REST events with multiValueHeaders only; API Gateway takes both
        # forms (multiValueHeaders win on a clash), plain-header emulators need ``headers``.
        if "headers" not in reply:
            multi = reply.get("multiValueHeaders") or {}
            reply["headers"] = {name: str(values[-1]) for name, values in multi.items() if values}
        return reply

    # ---- SnapStart runtime hooks (skylift.snapstart registers them) ---------------------------

    def before_snapshot(self) -> None:
        """Lambda snapshots this environment once the version is published: load and warm the
        champion now, and send what capture holds, so every restored copy starts ready."""
        if self.holder.scorer is None:
            self.holder.refresh()
        if self.candidates is not None:
            self.candidates.refresh()
        self.flush()

    def after_restore(self) -> None:
        """Each restored copy may start hours after the snapshot, beside many others: check
        the champion alias now, open fresh connections, and stop sharing the RNG state."""
        self.holder.after_restore()
        if self.candidates is not None:
            self.candidates.refresh()
        self.capture.after_restore()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait for queued capture records (a process about to exit calls this)."""
        return self.capture.flush(timeout)

    # ---- routes ------------------------------------------------------------------------------

    def _build_app(self, resolver: type[ApiGatewayResolver]) -> ApiGatewayResolver:
        """One resolver with the routes, their documentation and the error mapping."""
        app = resolver(enable_validation=True, json_body_deserializer=parse_envelope)
        error_responses: dict[int, Any] = {
            status: {
                "description": description,
                "content": {_JSON: {"model": ErrorReply}},
            }
            for status, description in (
                (400, "Bad input: malformed JSON, wrong types, missing features, NaN/inf"),
                (413, "More records or bytes than the limits allow"),
                (415, "Content-Type is not application/json"),
                (503, "No champion model could be loaded"),
            )
        }

        @app.post(
            "/predict",
            summary="Score records with the champion model",
            responses={
                200: {"description": "Predictions", "content": {_JSON: {"model": PredictReply}}},
                **error_responses,
            },
        )
        # Routes carry no return annotation: the replies are documented in `responses` and
        # serialised by us, so Powertools has nothing to re-validate on the way out.
        def predict(request: Annotated[PredictRequest, Body()]):
            return self.predict(request)

        @app.get("/health", summary="Is a model loaded, and which version?")
        def health():
            return self.health()

        @app.get("/model", summary="The serving model's manifest (public part)")
        def model():
            return self.describe_model()

        @app.get("/openapi.json", include_in_schema=False)
        def openapi():
            return Response(200, _JSON, self.openapi_document())

        @app.exception_handler(NotFoundError)
        def not_found(exc: NotFoundError) -> Response:
            return self._error_reply(exc)

        @app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
        def invalid_request(exc: Exception) -> Response:
            return self._error_reply(exc)

        @app.exception_handler(Exception)
        def anything_else(exc: Exception) -> Response:
            return self._error_reply(exc)

        return app

    def predict(self, request: PredictRequest) -> Response:
        if not is_json_content_type(self._current.current_event):
            # Powertools also parses form posts, and "records=1" fits the envelope.
            raise unsupported_media_type(self._current.current_event)
        records = request.to_records()
        if not records:
            raise ApiError(
                ErrorCode.EMPTY_INPUT,
                'no records to score: send {"records": [{"<feature>": <value>, ...}]}',
            )
        if len(records) > self.api.max_records:
            raise ApiError(
                ErrorCode.TOO_MANY_RECORDS,
                f"{len(records)} records, the limit is {self.api.max_records} per request "
                "([api].max_records); split them over several requests",
            )
        body = self._current.current_event.body
        not_unicode = non_unicode_values(records) if may_hold_surrogates(body) else []
        if not_unicode:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"{len(not_unicode)} value(s) are not valid Unicode text (a JSON-escaped lone "
                "surrogate such as \\ud800); nothing was scored",
                not_unicode,
            )
        scorer = self.holder.current()
        self._request.model_version = scorer.version
        validation = scorer.schema.validate_records(records)
        if validation.errors:
            failing = len({problem.record for problem in validation.errors})
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"{failing} of {len(records)} record(s) do not fit the schema of "
                f"{scorer.name} version {scorer.version}; nothing was scored",
                [Detail(p.record, p.field, p.problem) for p in validation.errors],
            )
        ids = validation.ids if scorer.schema.id_column else None
        if ids:
            _check_ids(ids, scorer.schema.id_column or "")
        canary = self.candidates.canary() if self.candidates is not None else None
        version = scorer.version
        if canary is None:
            with self._threads():
                scores = scorer.score_records(validation)
            predictions = scores.to_records(ids)
        else:
            frame = validation.frame  # the canary's split needs rows (imports pandas)
            assert frame is not None
            mask = canary_mask(records, ids, canary.percent)
            predictions, parts = score_with_canary(
                scorer, canary.scorer, frame, records, ids, mask, self._threads
            )
            self._request.parts = parts
            answered = {part.version for part in parts if not part.error}
            # one version answered: it is the reply's version; both: the champion's, and each
            # prediction names its own
            version = answered.pop() if len(answered) == 1 else scorer.version
        self._request.records_scored = len(predictions)
        reply = {
            "model": scorer.name,
            "model_version": version,
            "predictions": predictions,
            "warnings": bounded_details([flag.as_dict() for flag in validation.flags]),
        }
        if self.capture.enabled and self.capture.sampled():
            self._capture(scorer, records, ids, predictions)
        # Serialised here (strictly: NaN is not JSON) so Powertools passes the string through.
        return Response(200, _JSON, json.dumps(reply, separators=(",", ":"), allow_nan=False))

    def _capture(
        self,
        scorer: Scorer,
        records: list[Any],
        ids: list[Any] | None,
        predictions: list[dict[str, Any]],
    ) -> None:
        try:
            names = scorer.schema.names
            features = [{name: record.get(name) for name in names} for record in records]
            parts = self._request.parts
            lines = capture_lines(
                model=scorer.name,
                model_version=scorer.version,
                request_id=self._request_id(),
                ids=ids,
                features=features,
                predictions=[p["prediction"] for p in predictions],
                probabilities=(
                    [p["probabilities"] for p in predictions]
                    if predictions and "probabilities" in predictions[0]
                    else None
                ),
                rollout=_rollout_tags(parts, len(records)) if parts else None,
            )
            for part in parts or []:
                if part.error:  # the canary's failed rows, for the monitor's error rate
                    lines += capture_lines(
                        model=scorer.name,
                        model_version=part.version,
                        request_id=self._request_id(),
                        ids=[ids[r] for r in part.rows] if ids else None,
                        features=[features[r] for r in part.rows],
                        predictions=[None] * len(part.rows),
                        probabilities=None,
                        rollout=[
                            {"role": part.role, "scoring_ms": part.scoring_ms, "error": part.error}
                        ]
                        * len(part.rows),
                    )
            self.capture.submit(lines)
        except Exception:  # capture never fails the request
            logger.exception("capture failed")

    def _request_id(self) -> str:
        event = self._current.current_event
        request_id = (event.get("requestContext") or {}).get("requestId")
        if request_id:
            return str(request_id)
        context = getattr(self._current, "lambda_context", None)
        return str(getattr(context, "aws_request_id", None) or self._new_request_id())

    def health(self) -> Response:
        status = self.holder.status()
        if not status.loaded:
            raise ApiError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"no model loaded: {status.reason or 'not loaded yet'}",
            )
        self._request.model_version = status.version
        body: dict[str, Any] = {
            "status": "ok",
            "model": self.model_name,
            "model_version": status.version,
            "alias": self.holder.alias,
            "loaded_at": status.loaded_at.isoformat() if status.loaded_at else None,
            "last_reload_error": status.reason or None,
        }
        canary = self.candidates.canary() if self.candidates is not None else None
        if self.candidates is not None and (candidate := self.candidates.state) is not None:
            body["candidate"] = {
                "model_version": candidate.version,
                "mode": candidate.mode,
                "percent": candidate.percent,
                "loaded": canary is not None,
                "last_load_error": self.candidates.last_error or None,
            }
        return Response(200, _JSON, json.dumps(body))

    def describe_model(self) -> Response:
        scorer = self.holder.current()
        self._request.model_version = scorer.version
        return Response(200, _JSON, json.dumps(scorer.manifest.public()))

    def openapi_document(self) -> str:
        if self._openapi is None:
            extra: dict[str, Any] = {}
            if self.api.auth == "api_key":
                # API Gateway checks the key before the function runs; the document says so.
                from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

                extra = {
                    "security_schemes": {
                        "apiKey": APIKey.model_validate(
                            {"in": APIKeyIn.header, "name": "x-api-key"}
                        )
                    },
                    "security": [{"apiKey": []}],
                }
            self._openapi = self.app.get_openapi_json_schema(
                title="skylift scoring API",
                version="1",
                description=f"Online scoring for model {self.model_name!r}.",
                **extra,
            )
        return self._openapi

    # ---- replies and metrics -----------------------------------------------------------------

    def _error_reply(self, exc: Exception) -> Response:
        # The current event is read only for routing and media-type errors, which come from
        # inside resolve(); before the first resolve() a resolver has none.
        error = api_error_for(exc, getattr(self._current, "current_event", None))
        self._request.error_code = error.code
        return error_response(error)

    def _publish_metrics(self, reply: dict[str, Any], latency_ms: float) -> None:
        try:
            state = self._request
            status = int(reply.get("statusCode", 500))
            metrics = self.metrics
            metrics.add_metric(Metric.REQUESTS, MetricUnit.Count, 1)
            metrics.add_metric(Metric.RECORDS_SCORED, MetricUnit.Count, state.records_scored)
            metrics.add_metric(Metric.LATENCY, MetricUnit.Milliseconds, round(latency_ms, 3))
            metrics.add_metric(Metric.CLIENT_ERRORS, MetricUnit.Count, int(400 <= status < 500))
            metrics.add_metric(Metric.SERVER_ERRORS, MetricUnit.Count, int(status >= 500))
            reload_failures = self.holder.take_reload_failures()
            if reload_failures:
                metrics.add_metric(Metric.MODEL_RELOAD_FAILURES, MetricUnit.Count, reload_failures)
            if self.capture.enabled:
                metrics.add_metric(
                    Metric.CAPTURE_FAILURES, MetricUnit.Count, self.capture.take_failures()
                )
            # Extra dimension sets: the same figures per model version and per error code.
            if state.model_version is not None:
                metrics.add_dimensions(
                    service=self.service_name, model_version=str(state.model_version)
                )
            if state.error_code is not None:
                metrics.add_dimensions(service=self.service_name, error_code=state.error_code)
            if self.candidates is not None:
                failures = self.candidates.take_load_failures()
                if failures:
                    metrics.add_metric(Metric.CANDIDATE_LOAD_FAILURES, MetricUnit.Count, failures)
            metrics.flush_metrics()
            for part in state.parts or []:
                self._publish_version_metrics(part, status)
        except Exception:  # metrics never fail a request
            logger.exception("could not publish metrics")
            self.metrics.clear_metrics()

    def _publish_version_metrics(self, part: VersionPart, status: int) -> None:
        """One EMF document per version that scored rows: per role (the candidate alarm
        watches role=candidate) and per role and version."""
        metrics = self._role_metrics.get(part.role)
        if metrics is None:
            metrics = EphemeralMetrics(namespace=self._namespace, service=self.service_name)
            metrics.set_default_dimensions(model=self.model_name, role=part.role)
            self._role_metrics[part.role] = metrics
        metrics.add_metric(Metric.VERSION_REQUESTS, MetricUnit.Count, 1)
        metrics.add_metric(Metric.VERSION_RECORDS, MetricUnit.Count, len(part.rows))
        failed = bool(part.error) or status >= 500
        metrics.add_metric(Metric.VERSION_ERRORS, MetricUnit.Count, int(failed))
        metrics.add_metric(
            Metric.VERSION_LATENCY, MetricUnit.Milliseconds, round(part.scoring_ms, 3)
        )
        if part.prediction_mean is not None:
            metrics.add_metric(
                Metric.VERSION_PREDICTION_MEAN, MetricUnit.NoUnit, part.prediction_mean
            )
        metrics.add_dimensions(service=self.service_name, model_version=str(part.version))
        metrics.flush_metrics()


def _rollout_tags(parts: list[VersionPart], rows: int) -> list[dict[str, Any]]:
    """Per row: the role and version that answered it and that version's scoring time."""
    tags: list[dict[str, Any]] = [{} for _ in range(rows)]
    for part in parts:
        answered = (
            [r for r in part.rows if not part.error] if part.role != "champion" else part.rows
        )
        for row in answered:
            tags[row] = {
                "role": part.role,
                "model_version": part.version,
                "scoring_ms": part.scoring_ms,
            }
    return tags


MAX_ID_CHARS = 256


def _check_ids(ids: list[Any], id_column: str) -> None:
    """Ids are echoed in full (a cut id would no longer match its record): bound them instead.

    Ids are strings or integers (the schema says so); an integer's digits count too.
    """
    long = [
        Detail(
            number, id_column, f"id is {len(str(value))} characters, the limit is {MAX_ID_CHARS}"
        )
        for number, value in enumerate(ids)
        if value is not None and len(str(value)) > MAX_ID_CHARS
    ]
    if long:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"{len(long)} record(s) have an id longer than {MAX_ID_CHARS} characters; "
            "nothing was scored",
            long,
        )


class _ThreadLimit:
    """The native thread pools' size while scoring, from ``OMP_NUM_THREADS`` at init.

    In Lambda the variable alone does it (read when OpenMP loads); in the local stack the
    libraries were loaded by the same process before the function's environment was set, so
    the limit is applied per request with threadpoolctl, and undone after it.
    """

    def __init__(self) -> None:
        value = os.environ.get("OMP_NUM_THREADS", "").strip()
        self.limit = int(value) if value.isdigit() and int(value) > 0 else None
        self._controller: Any = None

    def __call__(self) -> contextlib.AbstractContextManager[Any]:
        if self.limit is None:
            return contextlib.nullcontext()
        if self._controller is None:
            # Built at the first scoring, when the model has loaded its native libraries.
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        return self._controller.limit(limits=self.limit)
