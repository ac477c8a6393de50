"""LocalStack: the whole local stack, composed from its parts and provisioned from the topology.

``with LocalStack(config) as stack:`` starts an embedded moto server, provisions from
:func:`skylift.topology.describe` what the CDK stacks declare (bucket, batch queue + DLQ, the S3
notification, the capture delivery stream, the schedule rules), serves the score function as
API Gateway would (:mod:`skylift.local.gateway`), routes S3 events through SQS to the batch
function (:mod:`skylift.local.poller`) and fires the schedules (:mod:`skylift.local.scheduler`).
Handlers run in-process and are imported on their first event, each with its environment set
only while its code runs (:mod:`skylift.local.environment`). The process itself keeps only the
connection to moto (``AWS_ENDPOINT_URL`` and test credentials, :mod:`skylift.local.server`)
while the stack runs: a handler's background thread (the score function's capture sender)
makes its boto3 client outside any invocation, and botocore finds an endpoint only there.
:meth:`LocalStack.stop` (also on an exception or Ctrl-C) stops every thread, closes every port
and puts those variables back. The state file for other processes is :mod:`skylift.local.state`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3

from skylift.config import SkyliftConfig, use_source_dir
from skylift.local.events import LocalEventBus
from skylift.local.functions import HandlerUnavailable, LocalFunction
from skylift.local.gateway import (
    ApiGatewayEventConverter,
    ApiKeyCheck,
    GatewayReply,
    GatewayServer,
    LocalGateway,
    RouteMatcher,
)
from skylift.local.poller import SqsPoller
from skylift.local.provision import (
    LOCAL_ACCOUNT,
    Action,
    Clients,
    granted_puts,
    names_for,
    provision,
)
from skylift.local.scheduler import ScheduledJob, Scheduler, UnknownScheduleError
from skylift.local.server import local_aws
from skylift.local.state import LocalStackError, StackState
from skylift.topology import Topology, describe

__all__ = ["LocalStack", "LocalStackError"]

logger = logging.getLogger(__name__)

STAGE = "prod"
# Set for the in-process functions only, not part of what a deployed function is given:
# there is no X-Ray daemon locally (Lambda's runtime variables AWS_* are the other such keys).
LOCAL_RUNTIME_ENV = {"POWERTOOLS_TRACE_DISABLED": "true"}


def _code_root() -> Path:
    """Where ``functions/`` lives (the code asset's root in Lambda)."""
    spec = importlib.util.find_spec("functions")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve().parent
    return Path(__file__).resolve().parents[2]


class LocalStack:
    """The local stack for one config; a context manager (see the module docstring)."""

    def __init__(
        self,
        config: SkyliftConfig,
        *,
        api_key: str | None = None,
        port: int = 0,
        aws_port: int = 0,
        poll: bool = True,
        clocks: bool = True,
        region: str = "us-east-1",
        handlers: Mapping[str, str] | None = None,
    ) -> None:
        if config.config_path is None:
            raise LocalStackError(
                "the local stack needs a config read from a file (its functions load it "
                "through SKYLIFT_CONFIG)"
            )
        self.config = config
        self.topology: Topology = describe(config)
        self.handlers = dict(handlers or {})  # function name -> handler string override
        unknown = set(self.handlers) - set(self.topology.functions)
        if unknown:
            raise LocalStackError(f"no function named {', '.join(sorted(unknown))} to override")
        self.names = names_for(self.topology)
        self.region = region
        self.port = port
        self.aws_port = aws_port
        self.poll = poll
        self.clocks = clocks
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.control_token = secrets.token_urlsafe(24)
        self.endpoint_url = ""
        self.api_url = ""
        self.control_url = ""
        self.provisioned: list[Action] = []
        self.functions: dict[str, LocalFunction] = {}
        self.matcher = RouteMatcher((r.method, r.path) for r in self.topology.routes)
        self.gateway: LocalGateway | None = None
        self.poller: SqsPoller | None = None
        self.fanout: Any = None  # LocalFanoutRunner, once started
        self.scheduler: Scheduler | None = None
        self.events: LocalEventBus | None = None
        self._event_targets: dict[str, Any] = {}
        self._exit = ExitStack()
        self._started = False

    # ---- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        local = self._exit.enter_context(local_aws(port=self.aws_port))
        self.endpoint_url = local.endpoint_url
        if str(_code_root()) not in sys.path:
            sys.path.insert(0, str(_code_root()))
        use_source_dir(self.config)  # the handlers unpickle the user's pipeline
        self.provisioned = provision(self.topology, self.clients())
        for name, action in ((a.kind, a) for a in self.provisioned):
            logger.info("provisioned: %s %s", name, action.target)
        # EventBridge events are delivered by the local bus, not moto (see skylift.local.events).
        self.events = LocalEventBus(
            self.client("events"),
            self._event_targets,
            region=self.region,
            account=LOCAL_ACCOUNT,
        )
        self.events.start()
        self._exit.callback(self.events.stop)
        base_env = {
            **local.env,
            **LOCAL_RUNTIME_ENV,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self.events.url,
        }
        for spec in self.topology.functions.values():
            if spec.name in self.handlers:
                spec = replace(spec, handler=self.handlers[spec.name])
            environment = {
                **spec.environment,
                **base_env,
                # The file itself, not its place in the code asset.
                "SKYLIFT_CONFIG": str(self.config.config_path.resolve()),  # type: ignore[union-attr]
                "SKYLIFT_STORAGE__BUCKET": self.topology.bucket,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            }
            self.functions[spec.name] = LocalFunction(spec, environment, self.region)
            self._event_targets[spec.name] = self.functions[spec.name].invoke
        self._exit.callback(self._unload_functions)
        self._start_fanout()

        score = self.functions["score"]
        self.gateway = LocalGateway(
            invoke=lambda event, context: score.invoke(event, context),
            matcher=self.matcher,
            api_key_check=ApiKeyCheck(self.api_key if self.config.api.auth == "api_key" else None),
            converter=ApiGatewayEventConverter(stage=STAGE, region=self.region),
            control=self._control,
            control_token=self.control_token,
        )
        server = GatewayServer(self.gateway, port=self.port)
        server.start()
        self._exit.callback(server.stop)
        self.api_url = f"{server.url}/{STAGE}"
        self.control_url = f"{server.url}/_skylift"

        batch = self.functions["batch"]
        sqs = self.client("sqs")
        self.poller = SqsPoller(
            sqs,
            sqs.get_queue_url(QueueName=self.names.queue)["QueueUrl"],
            self.names.queue_arn(self.region, self.names.queue),
            invoke=batch.invoke,
            batch_size=self.topology.sqs_batch_size,
            region=self.region,
            ready=batch.findable,
        )
        if self.poll:
            self.poller.start()
            self._exit.callback(self.poller.stop)

        jobs = [
            ScheduledJob(
                schedule=schedule,
                rule_arn=self.names.rule_arn(self.region, schedule.name),
                invoke=self.functions[schedule.function].invoke,
            )
            for schedule in self.topology.schedules
        ]
        self.scheduler = Scheduler(jobs, region=self.region, account=LOCAL_ACCOUNT)
        if self.clocks:
            self.scheduler.start()
            self._exit.callback(self.scheduler.stop)

    def _start_fanout(self) -> None:
        """The batch fan-out's state machine in moto, and the runner that executes it."""
        import json

        from skylift.batch.state_machine import definition
        from skylift.local.fanout_runner import LocalFanoutRunner, invoke_function
        from skylift.local.state_machine import LocalStateMachine

        sfn = self.client("stepfunctions")
        described = definition(self.topology)
        arn = sfn.create_state_machine(
            name=self.topology.fanout_state_machine,
            definition=json.dumps(described),
            roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/skylift-local-fanout",
        )["stateMachineArn"]
        self.functions["batch"].environment["SKYLIFT_FANOUT_STATE_MACHINE_ARN"] = arn
        machine = LocalStateMachine(
            described, invoke_function(self.functions["fanout"].invoke), self.client("s3")
        )
        self.fanout = LocalFanoutRunner(sfn, arn, machine)
        if self.poll:
            self.fanout.start()
            self._exit.callback(self.fanout.stop)

    def stop(self) -> None:
        """Stop threads, close ports, restore the connection variables; safe to call twice."""
        self._exit.close()

    def _unload_functions(self) -> None:
        for function in self.functions.values():
            function.unload()

    # ---- use -----------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client for the moto server."""
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )

    def clients(self) -> Clients:
        return Clients(
            s3=self.client("s3"),
            sqs=self.client("sqs"),
            firehose=self.client("firehose"),
            events=self.client("events"),
            region=self.region,
            kms=self.client("kms"),
        )

    @property
    def env(self) -> dict[str, str]:
        """Environment for boto3, the AWS CLI or a shell talking to this stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            # PutEvents goes to the local bus, which delivers to the rules' targets.
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self.events.url if self.events else self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "SKYLIFT_API_URL": self.api_url,
            "SKYLIFT_API_KEY": self.api_key,
        }

    def state(self) -> StackState:
        return StackState(
            pid=os.getpid(),
            endpoint_url=self.endpoint_url,
            api_url=self.api_url,
            api_key=self.api_key,
            control_url=self.control_url,
            control_token=self.control_token,
        )

    def trigger(self, name: str) -> Any:
        """Fire schedule ``name`` (``retrain``/``monitor``) now; runs in the caller's thread."""
        if self.scheduler is None:
            raise LocalStackError("the local stack is not running")
        return self.scheduler.trigger(name)

    def wait_for_events(self, timeout: float = 300.0) -> None:
        """Until every EventBridge event put so far has reached its targets (and they ran)."""
        if self.events is None:
            raise LocalStackError("the local stack is not running")
        try:
            self.events.wait_idle(timeout)
        except TimeoutError as exc:
            raise LocalStackError(str(exc)) from None

    def wait_for_object(self, key: str, timeout: float = 60.0, interval: float = 0.2) -> bytes:
        """The object's bytes once it exists in the bucket; LocalStackError after ``timeout``."""
        s3 = self.client("s3")
        deadline = time.monotonic() + timeout
        while True:
            try:
                return s3.get_object(Bucket=self.names.bucket, Key=key)["Body"].read()  # type: ignore[no-any-return,unused-ignore]
            except s3.exceptions.NoSuchKey:
                if time.monotonic() >= deadline:
                    raise LocalStackError(
                        f"s3://{self.names.bucket}/{key} did not appear within {timeout:.0f} s"
                    ) from None
                time.sleep(interval)

    def wait_for_json(self, key: str, timeout: float = 60.0) -> Any:
        return json.loads(self.wait_for_object(key, timeout))

    def wait_until_queue_empty(self, timeout: float = 60.0) -> None:
        """Until the batch queue holds no visible or in-flight message."""
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=self.names.queue)["QueueUrl"]
        deadline = time.monotonic() + timeout
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        while time.monotonic() < deadline:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            if all(attributes.get(n) == "0" for n in names):
                return
            time.sleep(0.2)
        raise LocalStackError(f"queue {self.names.queue} not empty after {timeout:.0f} s")

    def wiring(self) -> dict[str, Any]:
        """What the running stack serves and holds, read back from moto (for the parity test)."""
        clients = self.clients()
        notification = clients.s3.get_bucket_notification_configuration(Bucket=self.names.bucket)
        queues = []
        for item in notification.get("QueueConfigurations", []):
            rules = item.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            queues.append(
                {
                    "events": sorted(item["Events"]),
                    "prefix": next(
                        (r["Value"] for r in rules if r["Name"].lower() == "prefix"), ""
                    ),
                }
            )
        url = clients.sqs.get_queue_url(QueueName=self.names.queue)["QueueUrl"]
        attributes = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
        schedules = sorted(
            clients.events.describe_rule(Name=rule)["ScheduleExpression"]
            for rule in self.names.rules.values()
        )
        puts = granted_puts(self.topology, self.names)
        return {
            "routes": sorted(self.matcher.declared()),
            "notifications": queues,
            "queue": {
                "visibility_timeout": int(attributes["VisibilityTimeout"]),
                "max_receive_count": int(redrive.get("maxReceiveCount", 0)),
            },
            "schedules": schedules,
            "functions": {
                name: {
                    "handler": function.spec.handler,
                    # What Lambda would get; AWS_* are the local runtime's own.
                    "environment": sorted(
                        key
                        for key in function.environment
                        if not key.startswith("AWS_") and key not in LOCAL_RUNTIME_ENV
                    ),
                    "puts": puts[name],
                }
                for name, function in self.functions.items()
            },
        }

    # ---- control endpoint ----------------------------------------------------------------------

    def _control(self, method: str, path: str) -> GatewayReply:
        verb, _, name = path.partition("/")
        if verb != "trigger" or not name:
            return GatewayReply.json(404, {"message": f"unknown control path /_skylift/{path}"})
        if method != "POST":
            return GatewayReply.json(405, {"message": "use POST"})
        started = time.perf_counter()
        try:
            result = self.trigger(name)
        except UnknownScheduleError as exc:
            return GatewayReply.json(404, {"message": str(exc.args[0])})
        except HandlerUnavailable as exc:  # already logged with its reason
            return GatewayReply.json(503, {"message": str(exc)})
        except Exception as exc:
            logger.exception("triggered %s failed", name)
            return GatewayReply.json(
                500, {"message": f"{name} failed: {type(exc).__name__}: {exc}"}
            )
        payload = {"schedule": name, "seconds": round(time.perf_counter() - started, 3)}
        payload["result"] = json.loads(json.dumps(result, default=str))
        return GatewayReply.json(200, payload)
