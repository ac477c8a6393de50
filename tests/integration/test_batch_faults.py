"""Batch scoring under injected faults, against a real moto server over HTTP.

Faults go in through botocore's own event hooks, so botocore's real code turns them into the
exceptions S3 would cause: a body stream that resets, times out or ends early (``after-call``
wraps the response's raw urllib3 stream), a request that never gets a reply (``before-send``).
Each test drives the batch Lambda module as deployed (SQS event in, partial batch response
out) and then reads what is left in the bucket. The fault -> outcome table is in README's
"Batch scoring" section.
"""

from __future__ import annotations

import copy
import gzip
import importlib
import io
import json
import logging
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError

from skylift.batch import output_keys
from tests.helpers import create_signing_key, load_event

pytestmark = pytest.mark.usefixtures("isolated_logging")


# ---- the moto server, the bucket, the champion and the handler module ---------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from skylift.local.server import local_aws

    # moto's backends are per process: start from nothing, whatever ran before in the worker.
    with local_aws(set_environ=False) as local:
        yield local.endpoint_url


@pytest.fixture(scope="module")
def bucket(endpoint, churn_config, churn_bundle) -> str:
    """The data bucket, versioned as the stack's is, with a champion registered."""
    from skylift.registry import ModelRegistry

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    name = churn_config.storage.bucket
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    create_signing_key(churn_config, endpoint)
    registry = ModelRegistry.from_config(churn_config, s3_client=s3, endpoint_url=endpoint)
    registry.promote(registry.register(churn_bundle).version or 0)
    return name


@pytest.fixture
def s3(endpoint, bucket) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture(scope="module")
def warm_holders() -> dict[str, Any]:
    return {}


@pytest.fixture
def app(endpoint, bucket, churn_config, monkeypatch, warm_holders) -> Iterator[Any]:
    """functions/batch/app.py as Lambda loads it: config from the env, S3 over HTTP. Its
    model holder is kept from one test to the next, as a warm Lambda keeps it (loading the
    model again for every test would only be slow)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("SKYLIFT_CONFIG", str(churn_config.config_path))
    sys.modules.pop("functions.batch.app", None)
    module = importlib.import_module("functions.batch.app")
    module.service.holder = warm_holders.setdefault("holder", module.service.holder)
    yield module
    sys.modules.pop("functions.batch.app", None)


def one_attempt_client(endpoint: str) -> Any:
    """A client that does not retry, so a fault reaches the job at once (production's client
    retries it 5 times first: tests/unit/test_batch.py covers that)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


# ---- inputs and events -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_csv(churn_frame) -> str:
    return churn_frame.head(40).drop(columns=["churned"]).to_csv(index=False)


def upload(s3: Any, bucket: str, key: str, body: bytes) -> dict[str, Any]:
    """Put an object; returns its S3 event record's ``object`` part (what S3 would send)."""
    response = s3.put_object(Bucket=bucket, Key=key, Body=body)
    record = {"key": key, "size": len(body), "eTag": response["ETag"].strip('"')}
    if response.get("VersionId"):
        record["versionId"] = response["VersionId"]
    record["sequencer"] = "0A1B2C3D4E5F678901"
    return record


def sqs_event(bucket: str, *objects: dict[str, Any], body: str | None = None) -> dict[str, Any]:
    """An SQS event with one message per S3 object (or one message with ``body`` as is)."""
    template = load_event("sqs_s3_object_created.json")["Records"][0]
    messages = []
    for number, obj in enumerate(objects or [None]):
        message = copy.deepcopy(template)
        message["messageId"] = f"message-{number}"
        if body is not None:
            message["body"] = body
        else:
            notification = json.loads(message["body"])
            record = notification["Records"][0]
            record["s3"]["bucket"]["name"] = bucket
            record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
            record["s3"]["object"] = {**obj, "key": obj["key"].replace(" ", "+")}  # type: ignore[index]
            message["body"] = json.dumps(notification)
        messages.append(message)
    return {"Records": messages}


def failures(reply: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in reply["batchItemFailures"]]


def manifest_of(s3: Any, bucket: str, config: Any, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=output_keys(config, key).manifest)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)  # type: ignore[no-any-return]


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def logged_exceptions(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The skylift log records that carry an exception (Powertools prints them as JSON with
    an "exception" field; caplog sees the same records)."""
    return [r for r in caplog.records if r.name.startswith("skylift") and r.exc_info]


# ---- fault injection -----------------------------------------------------------------------------


class FaultyRawStream:
    """The urllib3 body of a GetObject response, failing after ``after`` bytes.

    ``fault`` is an exception to raise, or None to end the stream early (the connection
    closed before Content-Length bytes: botocore raises IncompleteReadError).
    """

    def __init__(self, raw: Any, after: int, fault: BaseException | None) -> None:
        self._raw = raw
        self._left = after
        self._fault = fault

    def read(self, amt: int | None = None) -> bytes:
        if self._left <= 0:
            if self._fault is None:
                return b""
            raise self._fault
        data = self._raw.read(self._left if amt is None else min(amt, self._left))
        self._left -= len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def stream(self, amt: int = 1024, **_: Any) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


def break_body(s3: Any, key: str, after: int, fault: BaseException | None, times: int = 1):
    """Make the next ``times`` GetObject bodies of ``key`` fail after ``after`` bytes."""
    state = {"left": times}

    def hook(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if state["left"] > 0 and "Body" in parsed and key in http_response.url:
            state["left"] -= 1
            body = parsed["Body"]
            body._raw_stream = FaultyRawStream(body._raw_stream, after, fault)

    s3.meta.events.register("after-call.s3.GetObject", hook)
    return state


def fail_requests(s3: Any, operation: str, match: Callable[[Any], bool], fault: BaseException):
    """Make every ``operation`` request that ``match``es raise ``fault`` instead of being sent."""
    state = {"hits": 0}

    def hook(request: Any, **kwargs: Any) -> None:
        if match(request):
            state["hits"] += 1
            raise fault

    s3.meta.events.register(f"before-send.s3.{operation}", hook)
    return state


READ_FAULTS = {
    "connection reset": ProtocolError(
        "Connection broken", ConnectionResetError(104, "Connection reset by peer")
    ),
    "read timeout": URLLib3ReadTimeoutError(None, None, "Read timed out."),  # type: ignore[arg-type]
    "incomplete read": None,
    "OSError from the body stream": ConnectionResetError(104, "Connection reset by peer"),
}


# ---- 1. transient faults leave nothing final and go back to SQS -----------------------------------


@pytest.mark.parametrize("gzipped", [False, True], ids=["csv", "csv.gz"])
@pytest.mark.parametrize("fault", list(READ_FAULTS), ids=list(READ_FAULTS))
def test_transient_read_fault_leaves_nothing_and_the_redelivery_scores(
    app, s3, bucket, churn_config, clean_csv, fault, gzipped
):
    key = f"incoming/faults/read-{fault.replace(' ', '-')}.csv" + (".gz" if gzipped else "")
    body = gzip.compress(clean_csv.encode()) if gzipped else clean_csv.encode()
    event = sqs_event(bucket, upload(s3, bucket, key, body))
    state = break_body(app.service.s3, key, after=len(body) // 2, fault=READ_FAULTS[fault])
    assert failures(app.handler(event, None)) == ["message-0"]  # SQS will redeliver it
    assert state["left"] == 0
    assert manifest_of(s3, bucket, churn_config, key) is None  # nothing final
    assert keys_under(s3, bucket, output_keys(churn_config, key).predictions) == []
    assert failures(app.handler(event, None)) == []  # the redelivery
    manifest = manifest_of(s3, bucket, churn_config, key)
    assert manifest is not None and manifest["status"] == "succeeded"
    assert manifest["rows_scored"] == 40


@pytest.mark.parametrize(
    ("stage", "operation", "match"),
    [
        (
            "write predictions",
            "PutObject",
            lambda r: "/predictions/" in r.url and ".manifest" not in r.url,
        ),
        ("commit manifest", "PutObject", lambda r: r.url.endswith(".manifest.json")),
        ("read the manifest", "GetObject", lambda r: r.url.endswith(".manifest.json")),
    ],
    ids=["write", "commit", "manifest read"],
)
def test_transient_write_or_commit_fault_is_retried_not_failed(
    app, s3, endpoint, bucket, churn_config, clean_csv, stage, operation, match
):
    key = f"incoming/faults/{stage.replace(' ', '-')}.csv"
    event = sqs_event(bucket, upload(s3, bucket, key, clean_csv.encode()))
    client = one_attempt_client(endpoint)
    fault = ConnectionClosedError(endpoint_url=endpoint)
    state = fail_requests(client, operation, match, fault)
    production, app.service.s3 = app.service.s3, client
    try:
        assert failures(app.handler(event, None)) == ["message-0"]
    finally:
        app.service.s3 = production
    assert state["hits"] == 1
    assert manifest_of(s3, bucket, churn_config, key) is None
    assert failures(app.handler(event, None)) == []
    manifest = manifest_of(s3, bucket, churn_config, key)
    assert manifest is not None and (manifest["status"], manifest["rows_scored"]) == (
        "succeeded",
        40,
    )


def test_unreachable_s3_is_retried(app, s3, endpoint, bucket, churn_config, clean_csv):
    key = "incoming/faults/unreachable.csv"
    event = sqs_event(bucket, upload(s3, bucket, key, clean_csv.encode()))
    client = one_attempt_client(endpoint)
    fail_requests(
        client, "HeadObject", lambda r: True, EndpointConnectionError(endpoint_url=endpoint)
    )
    fail_requests(
        client, "GetObject", lambda r: True, EndpointConnectionError(endpoint_url=endpoint)
    )
    production, app.service.s3 = app.service.s3, client
    try:
        assert failures(app.handler(event, None)) == ["message-0"]
    finally:
        app.service.s3 = production
    assert manifest_of(s3, bucket, churn_config, key) is None


# ---- 2. faults in the file itself: permanent, with a reason; every exception logged ---------------


def corrupt_deflate(data: bytes) -> bytes:
    """A gzip member whose header is fine and whose deflate stream is not."""
    packed = bytearray(gzip.compress(data))
    for position in range(20, min(len(packed) - 8, 60)):
        packed[position] ^= 0x5A
    with pytest.raises(zlib.error):  # the premise: this is the fault the test is about
        gzip.decompress(bytes(packed))
    return bytes(packed)


def repeat_header(csv_text: str, column: str) -> str:
    lines = csv_text.splitlines()
    header = lines[0].split(",")
    position = header.index(column)
    lines = [",".join([*line.split(","), line.split(",")[position]]) for line in lines]
    return "\n".join(lines) + "\n"


PERMANENT_FAULTS = {
    "corrupt deflate": (".csv.gz", lambda c: corrupt_deflate(c.encode()), "corrupt"),
    "truncated gzip": (".csv.gz", lambda c: gzip.compress(c.encode())[:-200], "ends early"),
    "not gzip": (".csv.gz", lambda c: c.encode(), "not a gzip file"),
    "repeated feature header": (
        ".csv",
        lambda c: repeat_header(c, "age").encode(),
        "the header repeats column 'age'",
    ),
    "repeated id header": (
        ".csv",
        lambda c: repeat_header(c, "customer_id").encode(),
        "the header repeats column 'customer_id'",
    ),
}


@pytest.mark.parametrize("fault", list(PERMANENT_FAULTS), ids=list(PERMANENT_FAULTS))
def test_faults_in_the_file_are_permanent_with_a_reason_and_logged(
    app, s3, bucket, churn_config, clean_csv, caplog, fault
):
    suffix, build, reason = PERMANENT_FAULTS[fault]
    key = f"incoming/faults/permanent-{fault.replace(' ', '-')}{suffix}"
    event = sqs_event(bucket, upload(s3, bucket, key, build(clean_csv)))
    assert failures(app.handler(event, None)) == []  # not retried: retrying cannot help
    manifest = manifest_of(s3, bucket, churn_config, key)
    assert manifest is not None and manifest["status"] == "failed"
    assert reason in manifest["reason"]
    logged = logged_exceptions(caplog)
    assert len(logged) == 1 and key in logged[0].getMessage(), logged


def test_a_transient_fault_is_logged_with_its_traceback(
    app, s3, bucket, churn_config, clean_csv, caplog
):
    key = "incoming/faults/logged-reset.csv"
    event = sqs_event(bucket, upload(s3, bucket, key, clean_csv.encode()))
    break_body(app.service.s3, key, after=100, fault=READ_FAULTS["connection reset"])
    assert failures(app.handler(event, None)) == ["message-0"]
    logged = logged_exceptions(caplog)
    assert len(logged) == 1, logged
    assert key in logged[0].getMessage() and "retried" in logged[0].getMessage()
    assert "Connection reset by peer" in logging.Formatter().formatException(logged[0].exc_info)  # type: ignore[arg-type]


# ---- 6. a malformed SQS message: logged, kept for the DLQ ------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("this is not JSON", "not JSON"),
        ('{"Records": [{"s3": {}}]}', "not an S3 event notification"),
        ('["a list"]', "not an S3 event notification"),
    ],
    ids=["not JSON", "no S3 fields", "not an object"],
)
def test_a_malformed_message_is_logged_and_left_for_the_dlq(app, bucket, caplog, body, problem):
    event = sqs_event(bucket, body=body)
    assert failures(app.handler(event, None)) == ["message-0"]  # to the DLQ after the last try
    logged = [r for r in caplog.records if r.name.startswith("skylift") and r.levelname == "ERROR"]
    assert len(logged) == 1, logged
    assert "message-0" in logged[0].getMessage() and problem in logged[0].getMessage()
    assert logged[0].sqs_body == body  # as it came, for whoever reads the DLQ


# ---- 4. a failed multipart completion aborts the upload ----------------------------------------


def open_uploads(s3: Any, bucket: str, key: str) -> list[str]:
    listing = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)
    return [upload["UploadId"] for upload in listing.get("Uploads", [])]


@pytest.mark.parametrize(
    ("operation", "fault_on_part"),
    [("CompleteMultipartUpload", None), ("UploadPart", 2)],
    ids=["completion", "last part"],
)
def test_a_failed_multipart_commit_aborts_its_upload(
    s3, endpoint, bucket, operation, fault_on_part
):
    from skylift.batch.writers import PART_BYTES, MultipartWriter

    key = f"predictions/faults/multipart-{operation}.csv"
    client = one_attempt_client(endpoint)
    writer = MultipartWriter(client, bucket, key, "text/csv")
    writer.write(b"x" * PART_BYTES)  # part 1 goes up now
    writer.write(b"y")  # part 2 at commit
    assert len(open_uploads(s3, bucket, key)) == 1

    def match(request: Any) -> bool:
        return fault_on_part is None or f"partNumber={fault_on_part}" in request.url

    fail_requests(client, operation, match, ConnectionClosedError(endpoint_url=endpoint))
    with pytest.raises(ConnectionClosedError):
        writer.commit()
    assert open_uploads(s3, bucket, key) == []  # aborted, not left for the lifecycle rule
    assert keys_under(s3, bucket, key) == []  # and nothing visible
    writer.abort()  # the job's own abort after the failed commit: a no-op, no error


# ---- 3. exactly the version the event names, once ------------------------------------------------

UNVERSIONED = "skylift-faults-unversioned"


@pytest.fixture(params=["versioned", "unversioned"])
def data_bucket(request, s3, bucket) -> str:
    """The stack's versioned bucket, or an unversioned one (the event has no versionId)."""
    if request.param == "versioned":
        return bucket
    if UNVERSIONED not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=UNVERSIONED)
    return UNVERSIONED


def test_a_stale_event_is_skipped_and_the_manifest_names_the_bytes_scored(
    app, s3, data_bucket, churn_config, clean_csv, caplog
):
    key = "incoming/faults/stale.csv"
    first = upload(s3, data_bucket, key, clean_csv.encode())
    longer = clean_csv + clean_csv.splitlines()[1] + "\n"
    second = upload(s3, data_bucket, key, longer.encode())  # 41 rows, before event 1 is read
    assert failures(app.handler(sqs_event(data_bucket, first), None)) == []
    assert manifest_of(s3, data_bucket, churn_config, key) is None  # not 41 rows under ETag 1
    assert any("stale" in r.getMessage() and key in r.getMessage() for r in caplog.records)
    assert failures(app.handler(sqs_event(data_bucket, second), None)) == []
    manifest = manifest_of(s3, data_bucket, churn_config, key)
    assert manifest is not None and manifest["rows_read"] == 41
    head = s3.head_object(Bucket=data_bucket, Key=key)
    assert manifest["input_etag"] == head["ETag"] == f'"{second["eTag"]}"'
    assert manifest["input_version_id"] == second.get("versionId")
    assert manifest["input_size"] == head["ContentLength"] == len(longer.encode())


def test_a_new_version_with_the_same_bytes_is_not_a_duplicate(
    app, s3, bucket, churn_config, clean_csv
):
    key = "incoming/faults/same-bytes.csv"
    first = upload(s3, bucket, key, clean_csv.encode())
    assert failures(app.handler(sqs_event(bucket, first), None)) == []
    assert manifest_of(s3, bucket, churn_config, key)["input_version_id"] == first["versionId"]  # type: ignore[index]
    again = upload(s3, bucket, key, clean_csv.encode())  # same ETag, a new version
    assert again["eTag"] == first["eTag"] and again["versionId"] != first["versionId"]
    assert failures(app.handler(sqs_event(bucket, again), None)) == []
    assert manifest_of(s3, bucket, churn_config, key)["input_version_id"] == again["versionId"]  # type: ignore[index]
    redelivered = manifest_of(s3, bucket, churn_config, key)
    assert failures(app.handler(sqs_event(bucket, again), None)) == []  # now it is a duplicate
    assert manifest_of(s3, bucket, churn_config, key) == redelivered


def test_a_manifest_committed_for_another_version_meanwhile_is_not_a_duplicate(
    app, s3, bucket, churn_config, clean_csv
):
    """Two uploads of one key scored at once: the worker for the old one commits first."""
    key = "incoming/faults/race.csv"
    manifest_key = output_keys(churn_config, key).manifest
    first = upload(s3, bucket, key, clean_csv.encode())
    assert failures(app.handler(sqs_event(bucket, first), None)) == []
    old_manifest = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=manifest_key)
    longer = clean_csv + clean_csv.splitlines()[1] + "\n"
    second = upload(s3, bucket, key, longer.encode())
    state = {"raced": False}

    def racing_worker_commits_first(request: Any, **kwargs: Any) -> None:
        if request.url.endswith(".manifest.json") and not state["raced"]:
            state["raced"] = True
            s3.put_object(Bucket=bucket, Key=manifest_key, Body=old_manifest)

    app.service.s3.meta.events.register("before-send.s3.PutObject", racing_worker_commits_first)
    assert failures(app.handler(sqs_event(bucket, second), None)) == ["message-0"]  # retried
    assert state["raced"]
    assert manifest_of(s3, bucket, churn_config, key)["input_etag"] == f'"{first["eTag"]}"'  # type: ignore[index]
    assert failures(app.handler(sqs_event(bucket, second), None)) == []  # the redelivery
    manifest = manifest_of(s3, bucket, churn_config, key)
    assert manifest is not None and manifest["input_version_id"] == second["versionId"]
    assert manifest["rows_read"] == 41


def test_an_upload_landing_mid_read_makes_the_event_stale(app, s3, bucket, churn_config, clean_csv):
    key = "incoming/faults/mid-read.csv"
    first = upload(s3, bucket, key, clean_csv.encode())
    longer = clean_csv + clean_csv.splitlines()[1] + "\n"
    landed: dict[str, Any] = {}

    def upload_lands(http_response: Any, **kwargs: Any) -> None:
        if key in http_response.url and not landed:
            landed.update(upload(s3, bucket, key, longer.encode()))

    app.service.s3.meta.events.register("after-call.s3.GetObject", upload_lands)
    assert failures(app.handler(sqs_event(bucket, first), None)) == []
    assert landed and manifest_of(s3, bucket, churn_config, key) is None  # not committed
    assert keys_under(s3, bucket, output_keys(churn_config, key).predictions) == []  # aborted
    assert failures(app.handler(sqs_event(bucket, landed), None)) == []
    assert manifest_of(s3, bucket, churn_config, key)["rows_read"] == 41  # type: ignore[index]


# ---- 5. malformed CSV keeps counting physical rows; bounded files -------------------------------


def batch_job(app: Any, config: Any, clock: Callable[[], float] | None = None, **batch: Any) -> Any:
    from skylift.batch import BatchJob

    changed = config.model_copy(update={"batch": config.batch.model_copy(update=batch)})
    if clock is None:
        return BatchJob(changed, app.service.scorer)
    return BatchJob(changed, app.service.scorer, clock=clock)


def test_an_unterminated_quote_is_named_and_every_physical_row_counted(
    app, s3, bucket, churn_config, churn_frame
):
    text = churn_frame.head(500).drop(columns=["churned"]).to_csv(index=False)
    lines = text.splitlines()
    cells = lines[100].split(",")
    cells[2] = '"' + cells[2]  # data row 100 (physical line 101) opens a quote, never closes it
    lines[100] = ",".join(cells)
    key = "incoming/faults/unterminated.csv"
    upload(s3, bucket, key, ("\n".join(lines) + "\n").encode())
    manifest = batch_job(app, churn_config, chunk_rows=64).score_s3_object(
        app.service.s3, bucket, key
    )
    assert (manifest.rows_read, manifest.rows_scored, manifest.rows_quarantined) == (500, 499, 1)
    import pandas as pd

    body = s3.get_object(Bucket=bucket, Key=manifest.quarantine_key)["Body"].read().decode()
    row = pd.read_csv(io.StringIO(body)).iloc[0]
    assert row["line"] == 101 and row["row"] == lines[100]  # the row as it came
    assert row["reason"].startswith("unterminated quoted field starting at line 101")


def test_a_quarantined_over_long_row_keeps_its_content(app, s3, bucket, churn_config, clean_csv):
    lines = clean_csv.splitlines()
    cells = lines[5].split(",")
    cells[4] = '"' + "x" * 200_000 + '"'  # over csv's field size limit (131,072)
    lines[5] = ",".join(cells)
    key = "incoming/faults/over-long.csv"
    upload(s3, bucket, key, ("\n".join(lines) + "\n").encode())
    manifest = batch_job(app, churn_config).score_s3_object(app.service.s3, bucket, key)
    assert (manifest.rows_read, manifest.rows_scored, manifest.rows_quarantined) == (40, 39, 1)
    body = s3.get_object(Bucket=bucket, Key=manifest.quarantine_key)["Body"].read().decode()
    import pandas as pd

    row = pd.read_csv(io.StringIO(body)).iloc[0]
    assert row["line"] == 6 and row["row"].startswith(",".join(cells[:4]) + ',"xxx')
    from skylift.batch.job import QUARANTINED_ROW_CHARS

    assert len(row["row"]) == QUARANTINED_ROW_CHARS
    assert (
        "field larger than field limit" in row["reason"] and "row cut to its first" in row["reason"]
    )


def blank_lines_gz(megabytes: int, clean_csv: str) -> bytes:
    header = clean_csv.splitlines()[0].encode()
    return gzip.compress(header + b"\n" * (megabytes * 1024 * 1024))


def test_a_gzip_bomb_fails_for_good_past_max_decompressed_bytes(
    app, s3, bucket, churn_config, clean_csv
):
    key = "incoming/faults/bomb.csv.gz"
    body = blank_lines_gz(4, clean_csv)
    assert len(body) < 10_000  # a few KB that decompress to 4 MB
    upload(s3, bucket, key, body)
    job = batch_job(app, churn_config, max_decompressed_bytes=1024 * 1024)
    manifest = job.score_s3_object(app.service.s3, bucket, key)
    assert manifest.status == "failed"
    assert "larger than [batch].max_decompressed_bytes = 1,048,576 bytes" in (manifest.reason or "")


def test_a_file_over_its_time_budget_fails_for_good(app, s3, bucket, churn_config, clean_csv):
    key = "incoming/faults/slow.csv.gz"
    upload(s3, bucket, key, blank_lines_gz(1, clean_csv))
    ticks = iter(range(1_000_000))  # one second per look at the clock: no real waiting

    def clock() -> float:
        return float(next(ticks))

    job = batch_job(app, churn_config, clock=clock, max_seconds=5)
    manifest = job.score_s3_object(app.service.s3, bucket, key)
    assert manifest.status == "failed"
    assert "takes longer than [batch].max_seconds = 5 s" in (manifest.reason or "")


def test_the_default_time_budget_leaves_a_minute_to_commit(churn_config):
    assert churn_config.batch.max_seconds is None
    assert churn_config.batch.file_seconds == churn_config.batch.timeout_seconds - 60


def test_an_event_for_a_deleted_object_is_skipped_not_retried(
    app, s3, bucket, churn_config, clean_csv, caplog
):
    key = "incoming/faults/deleted.csv"
    event = sqs_event(bucket, upload(s3, bucket, key, clean_csv.encode()))
    s3.delete_object(Bucket=bucket, Key=key)
    assert failures(app.handler(event, None)) == []
    assert manifest_of(s3, bucket, churn_config, key) is None
    assert any("no longer exists" in r.getMessage() for r in caplog.records)
