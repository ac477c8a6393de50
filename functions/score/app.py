"""Score Lambda: API Gateway proxy (REST API, or HTTP API payload 2.0) -> Powertools resolver
-> skylift Scorer.

The service (resolver, routes, error mapping, model holder, capture, metrics) lives in
:mod:`skylift.serving`; this module builds it once per execution environment, which loads the
champion during init, and hands each event to it. Import never fails: without a config or a
model the service answers 503 ``model_unavailable`` and the init log says why.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from skylift.observability import service_name
from skylift.serving import create_service, lambda_tracer

# Powertools' Logger is the stdlib logger named after the service; with the service named
# "skylift" it is the parent of skylift.*'s loggers, so their records get its JSON format too.
logger = Logger(service=service_name())
tracer = lambda_tracer(service_name())  # Powertools Tracer when X-Ray tracing is on, else None

service = create_service()
app = service.app  # the APIGatewayRestResolver (service.http_app serves HTTP API events)


def handler(event: Any, context: Any) -> dict[str, Any]:
    # Any JSON can be invoked directly: the service answers what is not a proxy event.
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = request_context.get("requestId") if isinstance(request_context, dict) else None
    logger.set_correlation_id(request_id if isinstance(request_id, str) else None)
    # A plain context stand-in (local stack, `skylift invoke`) may lack Lambda's attributes.
    function = getattr(context, "function_name", None)
    if function:
        logger.append_keys(function_name=function)
    return service.handle(event, context)


if tracer is not None:
    handler = tracer.capture_lambda_handler(handler)
