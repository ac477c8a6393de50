"""The online scoring service behind ``functions/score/app.py``.

* :class:`~skylift.model_holder.ModelHolder` (shared with batch) keeps the champion in memory
  and re-checks the alias at most every ``[api].model_refresh_seconds``.
* :class:`ScoringService` owns a Powertools ``APIGatewayRestResolver`` with validation on:
  ``POST /predict`` (``records``, or MLflow's ``dataframe_records`` / ``dataframe_split``),
  ``GET /health``, ``GET /model``, ``GET /openapi.json``. Every error, whatever raised it, is
  shaped in one place (:meth:`ScoringService._error_reply`) into the contract of
  :mod:`skylift.api_errors`. It publishes the EMF metrics the alarms are built on.
* :func:`create_service` builds all of that from the config and never raises: without a
  config, bucket or model the service still answers, with 503 ``model_unavailable``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from botocore.config import Config
from pydantic import BaseModel, ConfigDict, Field, model_validator

from skylift.api_capture import CaptureSink, FirehoseCapture, NullCapture, capture_lines
from skylift.api_errors import ApiError, Detail, ErrorCode, strict_json_loads
from skylift.model_holder import ModelHolder, ModelStatus, ModelUnavailableError
from skylift.scoring import Scorer
from skylift.snapstart import register_snapstart_hooks

if TYPE_CHECKING:
    from skylift.config import ApiConfig, SkyliftConfig

__all__ = [
    "DataframeSplit",
    "ModelHolder",
    "ModelStatus",
    "PredictRequest",
    "ScoringService",
    "build_service",
    "create_service",
    "lambda_tracer",
    "tracing_enabled",
]

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "Skylift"
DEFAULT_SERVICE = "skylift"
_JSON = content_types.APPLICATION_JSON


# ---- request envelope ---------------------------------------------------------------------


class DataframeSplit(BaseModel):
    """MLflow's ``dataframe_split``: column names once, then rows of values."""

    model_config = ConfigDict(extra="forbid")
    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: exactly one of the three input formats.

    Records are checked against the model's feature schema after this envelope is parsed,
    because the schema travels with the model, not with the deployment.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"records": [{"customer_id": "c-1", "age": 42, "contract": "month-to-month"}]},
                {"dataframe_split": {"columns": ["age", "contract"], "data": [[42, "two-year"]]}},
            ]
        },
    )
    records: list[Any] | None = Field(
        default=None, description="One JSON object per record: feature name -> value."
    )
    dataframe_records: list[Any] | None = Field(
        default=None, description="MLflow scoring format: same as records."
    )
    dataframe_split: DataframeSplit | None = Field(
        default=None, description="MLflow scoring format: columns and rows."
    )

    @model_validator(mode="after")
    def _exactly_one_format(self) -> PredictRequest:
        given = [
            name
            for name in ("records", "dataframe_records", "dataframe_split")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "send exactly one of 'records', 'dataframe_records' or 'dataframe_split'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def __repr__(self) -> str:
        # Powertools formats the route arguments into a debug message on every request, even
        # with debug logging off: repr of 1,000 records would cost more than scoring them.
        counts = {
            name: len(value.data) if isinstance(value, DataframeSplit) else len(value)
            for name in ("records", "dataframe_records", "dataframe_split")
            if (value := getattr(self, name)) is not None
        }
        return f"PredictRequest({', '.join(f'{k}=<{n} rows>' for k, n in counts.items())})"

    def to_records(self) -> list[Any]:
        """The records, whichever format they came in (split rows become objects)."""
        if self.records is not None:
            return self.records
        if self.dataframe_records is not None:
            return self.dataframe_records
        split = self.dataframe_split
        assert split is not None  # the validator guarantees one format
        width = len(split.columns)
        if len(set(split.columns)) != width:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                "dataframe_split.columns names a column twice",
                [Detail(None, "dataframe_split.columns", "column names must be unique")],
            )
        bad = [
            Detail(row, "dataframe_split.data", f"row has {len(values)} values, expected {width}")
            for row, values in enumerate(split.data)
            if len(values) != width
        ]
        if bad:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"{len(bad)} row(s) of dataframe_split.data do not match its columns",
                bad,
            )
        return [dict(zip(split.columns, values, strict=True)) for values in split.data]


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]]


class ErrorReply(BaseModel):
    """Every non-2xx reply."""

    error: ErrorInfo


class Prediction(BaseModel):
    id: Any | None = Field(default=None, description="The record's id (schemas with an id).")
    prediction: Any
    probabilities: dict[str, float] | None = Field(
        default=None, description="Class -> probability (classification)."
    )


class PredictReply(BaseModel):
    model: str
    model_version: int
    predictions: list[Prediction]
    warnings: list[dict[str, Any]] = Field(
        description="Allowed but unusual inputs: out of the training range, unseen category."
    )


# ---- the service --------------------------------------------------------------------------


@dataclass
class _RequestState:
    """What one request did, for its metrics."""

    records_scored: int = 0
    model_version: int | None = None
    error_code: str | None = None


class ScoringService:
    """The resolver, its routes and error mapping, the model holder, capture and metrics."""

    def __init__(
        self,
        *,
        model_name: str,
        holder: ModelHolder,
        api: ApiConfig,
        capture: CaptureSink | None = None,
        namespace: str | None = None,
        service_name: str | None = None,
        new_request_id: Callable[[], str] | None = None,
    ) -> None:
        self.model_name = model_name
        self.holder = holder
        self.api = api
        self.capture: CaptureSink = capture or NullCapture()
        self.service_name = (
            service_name or os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
        )
        self.metrics = EphemeralMetrics(
            namespace=namespace
            or os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
            or DEFAULT_NAMESPACE,
            service=self.service_name,
        )
        self.metrics.set_default_dimensions(model=model_name)
        self._new_request_id = new_request_id or (lambda: str(uuid.uuid4()))
        self._request = _RequestState()
        # Powertools' resolver keeps the current event on itself: one request at a time per
        # service (Lambda gives us that anyway; the local stack may serve from threads).
        self._lock = threading.Lock()
        self._openapi: str | None = None
        self._routes: dict[str, set[str]] = {}
        self.app = self._build_app()

    # ---- entry point -------------------------------------------------------------------------

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Serve one API Gateway REST proxy event; always returns a proxy reply."""
        started = time.perf_counter()
        with self._lock:
            self._request = _RequestState()
            try:
                screened = self._screen(event)
                if screened is not None:
                    reply = self._proxy_reply(self._error_reply(screened))
                else:
                    reply = self.app.resolve(event, context)
            except Exception as exc:  # a bug of ours or an event that is not a proxy event
                logger.exception("unhandled error serving request")
                reply = self._proxy_reply(self._error_reply(exc))
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
        self.flush()

    def after_restore(self) -> None:
        """Each restored copy may start hours after the snapshot, beside many others: check
        the champion alias now, open fresh connections, and stop sharing the RNG state."""
        self.holder.after_restore()
        self.capture.after_restore()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait for queued capture records (a process about to exit calls this)."""
        return self.capture.flush(timeout)

    # ---- transport-level checks (before anything parses the body) ---------------------------

    def _screen(self, event: dict[str, Any]) -> ApiError | None:
        body = event.get("body")
        if not body:
            return None
        limit = self.api.max_body_bytes
        if event.get("isBase64Encoded"):
            if len(body) * 3 // 4 > limit + 3:
                return self._too_large(len(body) * 3 // 4)
            try:
                raw = base64.b64decode(body, validate=True)
                raw.decode("utf-8")
            except (binascii.Error, ValueError):
                return ApiError(
                    ErrorCode.INVALID_BODY,
                    "the body is flagged base64 but is not valid base64-encoded UTF-8 text",
                )
            size = len(raw)
        elif len(body) > limit:
            size = len(body)
        elif len(body) * 4 <= limit:
            return None  # even all 4-byte characters would fit: skip encoding
        else:
            size = len(body.encode("utf-8", "surrogatepass"))
        return self._too_large(size) if size > limit else None

    def _too_large(self, size: int) -> ApiError:
        return ApiError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"request body is {size} bytes, the limit is {self.api.max_body_bytes} "
            "([api].max_body_bytes); split the records over several requests",
        )

    # ---- routes ------------------------------------------------------------------------------

    def _build_app(self) -> APIGatewayRestResolver:
        app = APIGatewayRestResolver(
            enable_validation=True, json_body_deserializer=strict_json_loads
        )
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

        self._routes = {"/predict": {"POST"}, "/health": {"GET"}, "/model": {"GET"}}
        self._routes["/openapi.json"] = {"GET"}

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
        if not self._json_content_type():
            # Powertools also parses form posts, and "records=1" fits the envelope.
            raise self._unsupported_media_type()
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
        assert validation.frame is not None
        scores = scorer.score(validation.frame)
        ids = validation.ids if scorer.schema.id_column else None
        predictions = scores.to_records(ids)
        self._request.records_scored = len(predictions)
        reply = {
            "model": scorer.name,
            "model_version": scorer.version,
            "predictions": predictions,
            "warnings": [flag.as_dict() for flag in validation.flags],
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
            lines = capture_lines(
                model=scorer.name,
                model_version=scorer.version,
                request_id=self._request_id(),
                ids=ids,
                features=[{name: record.get(name) for name in names} for record in records],
                predictions=[p["prediction"] for p in predictions],
                probabilities=(
                    [p["probabilities"] for p in predictions]
                    if predictions and "probabilities" in predictions[0]
                    else None
                ),
            )
            self.capture.submit(lines)
        except Exception:  # capture never fails the request
            logger.exception("capture failed")

    def _request_id(self) -> str:
        event = self.app.current_event
        request_id = (event.get("requestContext") or {}).get("requestId")
        if request_id:
            return str(request_id)
        context = getattr(self.app, "lambda_context", None)
        return str(getattr(context, "aws_request_id", None) or self._new_request_id())

    def health(self) -> Response:
        status = self.holder.status()
        if not status.loaded:
            raise ApiError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"no model loaded: {status.reason or 'not loaded yet'}",
            )
        self._request.model_version = status.version
        body = {
            "status": "ok",
            "model": self.model_name,
            "model_version": status.version,
            "alias": self.holder.alias,
            "loaded_at": status.loaded_at.isoformat() if status.loaded_at else None,
            "last_reload_error": status.reason or None,
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

    # ---- errors: the one place an exception becomes a reply ---------------------------------

    def _error_reply(self, exc: Exception) -> Response:
        error = self._as_api_error(exc)
        self._request.error_code = error.code
        if error.status >= 500:
            logger.error("%s: %s", error.code, error.message)
        return Response(
            error.status,
            _JSON,
            json.dumps(error.body(), separators=(",", ":")),
            headers=error.headers or None,
        )

    def _as_api_error(self, exc: Exception) -> ApiError:
        if isinstance(exc, ApiError):
            return exc
        if isinstance(exc, ModelUnavailableError):
            return ApiError(ErrorCode.MODEL_UNAVAILABLE, str(exc))
        if isinstance(exc, NotFoundError):
            return self._route_error()
        if isinstance(exc, RequestUnsupportedContentType):
            return self._unsupported_media_type()
        if isinstance(exc, RequestValidationError):
            return self._validation_error(exc)
        logger.error("internal error: %s", exc, exc_info=exc)
        return ApiError(ErrorCode.INTERNAL_ERROR, "internal error; it has been logged")

    def _route_error(self) -> ApiError:
        event = self.app.current_event
        path, method = event.path, event.http_method.upper()
        allowed = self._routes.get(path)
        if allowed:
            return ApiError(
                ErrorCode.METHOD_NOT_ALLOWED,
                f"{method} is not allowed on {path}; use {', '.join(sorted(allowed))}",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        return ApiError(
            ErrorCode.NOT_FOUND,
            f"no route {method} {path}; routes: "
            + ", ".join(f"{m} {p}" for p, ms in self._routes.items() for m in sorted(ms)),
        )

    def _unsupported_media_type(self) -> ApiError:
        given = self.app.current_event.headers.get("content-type", "")
        return ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {given!r} is not supported; send application/json",
        )

    def _json_content_type(self) -> bool:
        """JSON, or no Content-Type at all (Powertools reads that as JSON too)."""
        given = self.app.current_event.headers.get("content-type", "").strip().lower()
        return not given or given.startswith("application/json")

    def _validation_error(self, exc: RequestValidationError) -> ApiError:
        if not self._json_content_type():
            # Powertools parses form posts; this API speaks JSON only.
            return self._unsupported_media_type()
        errors = list(exc.errors())
        invalid = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if invalid is not None:
            problem = str((invalid.get("ctx") or {}).get("error", "")) or "not JSON"
            loc = tuple(invalid.get("loc", ()))
            if len(loc) > 1 and isinstance(loc[1], int) and loc[1] > 0:
                problem = f"{problem} (at character {loc[1]})"
            return ApiError(
                ErrorCode.INVALID_JSON,
                f"the body is not valid JSON: {problem}",
                [Detail(None, "body", problem)],
            )
        if any(
            error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",)
            for error in errors
        ):
            return ApiError(
                ErrorCode.EMPTY_INPUT,
                'the body is empty; send {"records": [{"<feature>": <value>, ...}]}',
            )
        details = [_detail_from_pydantic(error) for error in errors]
        return ApiError(
            ErrorCode.VALIDATION_ERROR,
            "the request body does not have the expected shape: "
            + "; ".join(f"{d.field or 'body'}: {d.problem}" for d in details[:3]),
            details,
        )

    # ---- replies and metrics -----------------------------------------------------------------

    @staticmethod
    def _proxy_reply(response: Response) -> dict[str, Any]:
        """The REST proxy reply Powertools would give (headers as multiValueHeaders)."""
        headers = {"Content-Type": response.content_type or _JSON}
        headers.update({k: v for k, v in response.headers.items() if isinstance(v, str)})
        return {
            "statusCode": response.status_code,
            "body": response.body,
            "isBase64Encoded": False,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
        }

    def _publish_metrics(self, reply: dict[str, Any], latency_ms: float) -> None:
        try:
            state = self._request
            status = int(reply.get("statusCode", 500))
            metrics = self.metrics
            metrics.add_metric("Requests", MetricUnit.Count, 1)
            metrics.add_metric("RecordsScored", MetricUnit.Count, state.records_scored)
            metrics.add_metric("Latency", MetricUnit.Milliseconds, round(latency_ms, 3))
            metrics.add_metric("ClientErrors", MetricUnit.Count, int(400 <= status < 500))
            metrics.add_metric("ServerErrors", MetricUnit.Count, int(status >= 500))
            reload_failures = self.holder.take_reload_failures()
            if reload_failures:
                metrics.add_metric("ModelReloadFailures", MetricUnit.Count, reload_failures)
            if self.capture.enabled:
                metrics.add_metric(
                    "CaptureFailures", MetricUnit.Count, self.capture.take_failures()
                )
            # Extra dimension sets: the same figures per model version and per error code.
            if state.model_version is not None:
                metrics.add_dimensions(
                    service=self.service_name, model_version=str(state.model_version)
                )
            if state.error_code is not None:
                metrics.add_dimensions(service=self.service_name, error_code=state.error_code)
            metrics.flush_metrics()
        except Exception:  # metrics never fail a request
            logger.exception("could not publish metrics")
            self.metrics.clear_metrics()


def _detail_from_pydantic(error: dict[str, Any]) -> Detail:
    loc = [part for part in error.get("loc", ()) if part != "body"]
    record = next((part for part in loc if isinstance(part, int)), None)
    field = ".".join(str(part) for part in loc if not isinstance(part, int))
    return Detail(record, field, str(error.get("msg") or error.get("type") or "invalid"))


# ---- construction ---------------------------------------------------------------------------


def tracing_enabled() -> bool:
    """Powertools' own rule: tracing only inside Lambda and unless switched off."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower()
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and disabled not in (
        "1",
        "true",
        "yes",
    )


def lambda_tracer(service_name: str) -> Any | None:
    """A Powertools Tracer when tracing is on, else None.

    Creating a Tracer imports the X-Ray SDK, whose recorder builds a botocore client: about
    0.2 s of cold start for nothing when tracing is off (locally, or a stack without X-Ray).
    """
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=service_name)


# Capture must not hold a request or a worker for long: short timeouts, a single attempt (the
# sink resends what Firehose reports as failed once, and counts the rest).
CAPTURE_CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}
)


def _firehose_client() -> Any:
    session = boto3.session.Session()
    return session.client(
        "firehose", region_name=session.region_name or "us-east-1", config=CAPTURE_CLIENT_CONFIG
    )


def build_service(
    config: SkyliftConfig,
    holder: ModelHolder,
    capture: CaptureSink | None = None,
    **kwargs: Any,
) -> ScoringService:
    """A service from parts (tests build isolated instances this way)."""
    return ScoringService(
        model_name=config.model.name, holder=holder, api=config.api, capture=capture, **kwargs
    )


def create_service(
    config: SkyliftConfig | None = None,
    *,
    s3_client: Any | None = None,
    firehose_client_factory: Callable[[], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    load: bool = True,
) -> ScoringService:
    """The service as the Lambda runs it: config from ``$SKYLIFT_CONFIG``, champion loaded now.

    Never raises: a missing config, bucket or model leaves a service that answers 503 and
    says why (in the reply and in the log), so the cause is visible instead of an init crash.
    """
    from skylift.config import ApiConfig, load_config
    from skylift.registry import ModelRegistry

    if config is None:
        try:
            config = load_config()
        except Exception as exc:
            logger.error("scoring service has no config: %s", exc)
            return ScoringService(
                model_name=os.environ.get("SKYLIFT_MODEL__NAME", "unknown"),
                holder=ModelHolder.unavailable(f"configuration error: {exc}"),
                api=ApiConfig(),
            )
    try:
        registry = ModelRegistry.from_config(config, s3_client=s3_client)
        holder = ModelHolder(
            registry,
            config.api.model_refresh_seconds,
            clock=clock,
            allow_version_skew=config.model.allow_version_skew,
        )
    except Exception as exc:
        logger.error("scoring service cannot reach its registry: %s", exc)
        holder = ModelHolder.unavailable(f"registry error: {exc}")
    if load:
        holder.maybe_refresh()
    service = build_service(config, holder, _capture_sink(config, firehose_client_factory))
    register_snapstart_hooks(service.before_snapshot, service.after_restore)
    return service


def _capture_sink(config: SkyliftConfig, client_factory: Callable[[], Any] | None) -> CaptureSink:
    if not (config.api.capture_stream and config.api.capture_sample_rate > 0):
        return NullCapture()
    return FirehoseCapture(
        config.api.capture_stream,
        config.api.capture_sample_rate,
        client_factory=client_factory or _firehose_client,
    )
