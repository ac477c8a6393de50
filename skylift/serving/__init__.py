"""The online scoring service behind ``functions/score/app.py``.

* :mod:`~skylift.serving.contracts`: the request envelopes and replies (the wire contract).
* :mod:`~skylift.serving.service`: :class:`ScoringService`, the Powertools resolvers and routes.
* :mod:`~skylift.serving.payloads`: REST API (1.0) or HTTP API (2.0) event, and reply formats.
* :mod:`~skylift.serving.error_mapping`: every exception -> one JSON error reply.
* :mod:`~skylift.serving.screening`: size, encoding (base64, gzip, UTF-8) checks before parsing.
* :mod:`~skylift.serving.factory`: :func:`create_service`, as the Lambda init runs it.
* :class:`~skylift.model_holder.ModelHolder` (shared with batch) keeps the champion loaded.
"""

from __future__ import annotations

from skylift.model_holder import ModelHolder, ModelStatus
from skylift.serving.contracts import DataframeSplit, PredictRequest
from skylift.serving.factory import build_service, create_service, lambda_tracer, tracing_enabled
from skylift.serving.service import ScoringService

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
