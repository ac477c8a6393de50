"""Batch scoring on mocked S3: every row accounted for, duplicates skipped, faults survived."""

from __future__ import annotations

import gzip
import io
import json

import pandas as pd
import pytest

from skylift.batch import BatchJob, output_keys
from skylift.batch.readers import read_chunks
from skylift.scoring import Scorer
from tests.helpers import fail_first


@pytest.fixture
def champion(registry, churn_bundle):
    registry.register(churn_bundle)
    registry.promote(1)
    return Scorer(registry.load_alias())


@pytest.fixture
def job(churn_config, champion):
    return BatchJob(churn_config, lambda: champion)


@pytest.fixture(scope="module")
def clean_csv(churn_frame) -> str:
    return churn_frame.head(40).drop(columns=["churned"]).to_csv(index=False)


def put(s3, config, key: str, body: bytes) -> str:
    s3.put_object(Bucket=config.storage.bucket, Key=key, Body=body)
    return key


def read_text(s3, config, key: str) -> str:
    return s3.get_object(Bucket=config.storage.bucket, Key=key)["Body"].read().decode()


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def with_line(csv_text: str, number: int, change) -> str:
    lines = csv_text.splitlines()
    lines[number - 1] = change(lines[number - 1])
    return "\n".join(lines) + "\n"


def set_field(column: int, value: str):
    def change(line: str) -> str:
        cells = line.split(",")
        cells[column] = value
        return ",".join(cells)

    return change


# (name, body builder, expected scored, expected quarantined, blank lines, reason fragment)
CASES = [
    ("clean", lambda c: c.encode(), 40, 0, 0, None),
    (
        "wrong type",
        lambda c: with_line(c, 3, set_field(2, "twelve")).encode(),
        39,
        1,
        0,
        "tenure_months: not a number",
    ),
    (
        "missing required value",
        lambda c: with_line(c, 4, set_field(3, "")).encode(),
        39,
        1,
        0,
        "contract: missing value",
    ),
    (
        "extra field on a row",
        lambda c: with_line(c, 5, lambda line: line + ",x").encode(),
        39,
        1,
        0,
        "expected 11 fields, got 12",
    ),
    (
        "missing field on a row",
        lambda c: with_line(c, 6, lambda line: line.rsplit(",", 1)[0]).encode(),
        39,
        1,
        0,
        "expected 11 fields, got 10",
    ),
    (
        "bad quoting",
        lambda c: with_line(c, 7, lambda line: line.replace(",", ',"oops', 1)).encode(),
        39,
        1,
        0,
        "unterminated quoted field starting at line 7",
    ),
    ("blank lines", lambda c: c.replace("\n", "\n\n", 3).encode(), 40, 0, 3, None),
    ("UTF-8 BOM", lambda c: ("\ufeff" + c).encode(), 40, 0, 0, None),
    ("CRLF", lambda c: c.replace("\n", "\r\n").encode(), 40, 0, 0, None),
    (
        "invalid UTF-8 bytes",
        lambda c: c.encode() + b"C9,\xff\xfe,1,one-year,dsl,credit-card,north,yes,50,50,1\n",
        40,
        1,
        0,
        "invalid UTF-8",
    ),
    ("header only", lambda c: c.splitlines()[0].encode() + b"\n", 0, 0, 0, None),
    (
        "extra column",
        lambda c: (
            "\n".join(line + ",1" for line in c.splitlines()).replace(",1", ",extra", 1).encode()
        ),
        40,
        0,
        0,
        None,
    ),
    ("gzip", lambda c: gzip.compress(c.encode()), 40, 0, 0, None),
]


@pytest.mark.parametrize(
    ("name", "build", "scored", "quarantined", "blank", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_every_row_is_scored_or_quarantined(
    s3, churn_config, job, clean_csv, name, build, scored, quarantined, blank, reason
):
    key = put(
        s3,
        churn_config,
        f"incoming/cases/{name}.csv" + (".gz" if name == "gzip" else ""),
        build(clean_csv),
    )
    manifest = job.score_s3_object(s3, churn_config.storage.bucket, key)
    assert manifest.status == "succeeded", manifest.reason
    assert manifest.rows_read == manifest.rows_scored + manifest.rows_quarantined
    if scored is not None:
        assert (manifest.rows_scored, manifest.rows_quarantined) == (scored, quarantined)
    else:  # bad quoting swallows following lines into one field: whatever the parse, nothing is lost
        assert manifest.rows_quarantined >= 1
    assert manifest.blank_lines_skipped == blank
    predictions = read_text(s3, churn_config, manifest.predictions_key)
    assert len(lines_of(predictions)) == manifest.rows_scored + 1  # + header
    if manifest.rows_quarantined:
        quarantine = pd.read_csv(io.StringIO(read_text(s3, churn_config, manifest.quarantine_key)))
        assert len(quarantine) == manifest.rows_quarantined
        assert list(quarantine.columns) == ["line", "row", "reason"]
        if reason:
            assert reason in quarantine["reason"].iloc[0]
    else:
        assert manifest.quarantine_key is None


def test_quarantine_names_the_physical_line(s3, churn_config, job, clean_csv):
    body = with_line(clean_csv, 10, set_field(2, "ten")).replace("\n", "\n\n", 2)  # 2 blanks before
    key = put(s3, churn_config, "incoming/lines.csv", body.encode())
    manifest = job.score_s3_object(s3, churn_config.storage.bucket, key)
    quarantine = pd.read_csv(io.StringIO(read_text(s3, churn_config, manifest.quarantine_key)))
    assert quarantine["line"].tolist() == [12]  # header is line 1; two blank lines before it


def test_predictions_carry_id_probabilities_and_version(
    s3, churn_config, job, clean_csv, churn_frame
):
    key = put(s3, churn_config, "incoming/ok.csv", clean_csv.encode())
    manifest = job.score_s3_object(s3, churn_config.storage.bucket, key)
    frame = pd.read_csv(io.StringIO(read_text(s3, churn_config, manifest.predictions_key)))
    assert list(frame.columns) == [
        "customer_id",
        "prediction",
        "probability_0",
        "probability_1",
        "model_version",
    ]
    assert frame["customer_id"].tolist() == churn_frame["customer_id"].head(40).tolist()
    assert (frame["model_version"] == 1).all()
    assert ((frame["probability_0"] + frame["probability_1"]).round(9) == 1).all()


@pytest.mark.parametrize("problem", ["empty", "missing columns", "unsupported", "corrupt gzip"])
def test_permanent_problems_write_a_failed_manifest(s3, churn_config, job, clean_csv, problem):
    key, body = {
        "empty": ("incoming/empty.csv", b""),
        "missing columns": (
            "incoming/cols.csv",
            pd.read_csv(io.StringIO(clean_csv))
            .drop(columns=["contract"])
            .to_csv(index=False)
            .encode(),
        ),
        "unsupported": ("incoming/data.xlsx", b"PK..."),
        "corrupt gzip": ("incoming/bad.csv.gz", b"not gzip at all"),
    }[problem]
    put(s3, churn_config, key, body)
    manifest = job.score_s3_object(s3, churn_config.storage.bucket, key)
    assert manifest.status == "failed" and manifest.reason
    stored = json.loads(read_text(s3, churn_config, output_keys(churn_config, key)[2]))
    assert stored["status"] == "failed"
    assert manifest.rows_read == manifest.rows_scored + manifest.rows_quarantined


def test_jsonl_rows_are_checked_line_by_line(s3, churn_config, job, churn_frame):
    good = churn_frame.head(5).drop(columns=["churned"]).to_json(orient="records", lines=True)
    body = good.strip() + '\n[1, 2]\n{"age": NaN}\nnot json\n\n'
    key = put(s3, churn_config, "incoming/records.jsonl", body.encode())
    manifest = job.score_s3_object(s3, churn_config.storage.bucket, key)
    assert (manifest.rows_read, manifest.rows_scored, manifest.rows_quarantined) == (8, 5, 3)
    assert manifest.predictions_key.endswith(".jsonl")
    lines = [
        json.loads(line)
        for line in read_text(s3, churn_config, manifest.quarantine_key).splitlines()
    ]
    assert [entry["line"] for entry in lines] == [6, 7, 8]


def test_parquet_is_read(s3, churn_config, job, churn_frame):
    buffer = io.BytesIO()
    churn_frame.head(30).drop(columns=["churned"]).to_parquet(buffer)
    key = put(s3, churn_config, "incoming/table.parquet", buffer.getvalue())
    manifest = job.score_s3_object(s3, churn_config.storage.bucket, key)
    assert (manifest.status, manifest.rows_scored) == ("succeeded", 30)
    assert manifest.predictions_key == "predictions/table.csv"


def test_duplicate_event_is_not_rescored(s3, churn_config, job, clean_csv):
    key = put(s3, churn_config, "incoming/dup.csv", clean_csv.encode())
    first = job.score_s3_object(s3, churn_config.storage.bucket, key)
    manifest_key = output_keys(churn_config, key)[2]
    before = s3.head_object(Bucket=churn_config.storage.bucket, Key=manifest_key)["ETag"]
    second = job.score_s3_object(s3, churn_config.storage.bucket, key)
    assert second.duplicate and not first.duplicate
    assert s3.head_object(Bucket=churn_config.storage.bucket, Key=manifest_key)["ETag"] == before
    put(
        s3, churn_config, key, (clean_csv + clean_csv.splitlines()[1] + "\n").encode()
    )  # new upload
    third = job.score_s3_object(s3, churn_config.storage.bucket, key)
    assert not third.duplicate and third.rows_read == 41


def test_crash_mid_file_leaves_nothing_visible_and_retry_completes(
    s3, churn_config, champion, churn_frame
):
    config = churn_config.model_copy(
        update={"batch": churn_config.batch.model_copy(update={"chunk_rows": 10})}
    )
    calls = {"n": 0}

    class CrashingScorer(Scorer):
        def score_frame(self, features):
            calls["n"] += 1
            if calls["n"] == 2:
                raise MemoryError("simulated crash in chunk 2")
            return super().score_frame(features)

    key = put(
        s3,
        config,
        "incoming/crash.csv",
        churn_frame.head(35).drop(columns=["churned"]).to_csv(index=False).encode(),
    )
    crashing = CrashingScorer(champion.bundle)
    with pytest.raises(MemoryError):
        BatchJob(config, lambda: crashing).score_s3_object(s3, config.storage.bucket, key)
    listed = s3.list_objects_v2(Bucket=config.storage.bucket, Prefix="predictions/")
    assert listed.get("KeyCount", 0) == 0  # no partial output, no manifest
    manifest = BatchJob(config, lambda: champion).score_s3_object(s3, config.storage.bucket, key)
    assert (manifest.rows_scored, manifest.chunks) == (35, 4)
    assert len(read_text(s3, config, manifest.predictions_key).splitlines()) == 36


@pytest.mark.parametrize(("faults", "scored"), [(5, True), (6, False)])
def test_transient_s3_faults_are_retried_by_skylifts_client(
    s3, churn_config, job, clean_csv, faults, scored
):
    """The client the batch function builds (skylift.aws: standard mode, 5 retries, so 6
    attempts) rides out 5 server errors; a 6th reaches the job, which leaves it to SQS.
    (500s, not throttling: their backoff starts at 50 ms instead of 1 s.)"""
    from botocore.exceptions import ClientError

    from skylift import aws

    client = aws.client("s3")
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 6}
    key = put(s3, churn_config, "incoming/flaky.csv", clean_csv.encode())
    hook, state = fail_first(faults, code=500, error="InternalError")
    client.meta.events.register("before-send.s3.GetObject", hook)
    if scored:
        manifest = job.score_s3_object(client, churn_config.storage.bucket, key)
        assert state["left"] == 0 and manifest.rows_scored == 40
    else:
        with pytest.raises(ClientError, match="InternalError"):
            job.score_s3_object(client, churn_config.storage.bucket, key)


def test_byte_ranges_cover_every_line_once(clean_csv):
    data = clean_csv.encode()
    cut = len(data) // 2
    seen = []
    for start, end in ((0, cut), (cut, len(data))):
        columns, chunks = read_chunks(io.BytesIO(data), "csv", start=start, end=end, chunk_rows=7)
        assert columns[0] == "customer_id"
        seen += [row for chunk in chunks for row in chunk.frame["customer_id"]]
    expected = pd.read_csv(io.StringIO(clean_csv))["customer_id"].tolist()
    assert seen == expected
