"""How the score function builds its service: config from ``$SKYLIFT_CONFIG``, the champion
loaded during init, capture to Firehose when configured, SnapStart hooks on a snap-start init.
:func:`create_service` never raises: without a config, bucket or model the service still
answers, with 503 ``model_unavailable`` and the reason."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from skylift.api_capture import CaptureSink, FirehoseCapture, NullCapture
from skylift.candidate_holder import CandidateHolder
from skylift.model_holder import ModelHolder
from skylift.serving.service import ScoringService
from skylift.snapstart import register_snapstart_hooks

if TYPE_CHECKING:
    from skylift.config import SkyliftConfig

__all__ = ["build_service", "create_service", "lambda_tracer", "tracing_enabled"]

logger = logging.getLogger(__name__)


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
                model_name="unknown",  # settings come from the config, which is broken
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
            runtime=config.deploy.runtime,
        )
        candidates: CandidateHolder | None = CandidateHolder(
            registry,
            config.api.model_refresh_seconds,
            clock=clock,
            load_options=holder.load_options,
        )
    except Exception as exc:
        logger.error("scoring service cannot reach its registry: %s", exc)
        holder = ModelHolder.unavailable(f"registry error: {exc}")
        candidates = None
    if load:
        holder.maybe_refresh()
        if candidates is not None:
            candidates.maybe_refresh()
    service = build_service(
        config, holder, _capture_sink(config, firehose_client_factory), candidates=candidates
    )
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
