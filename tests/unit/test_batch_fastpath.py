"""The batch fast path gives exactly the exact path's bytes: predictions, quarantine, manifest.

Every CSV file the batch tests score (tests/unit/test_batch.py's cases, the file faults of
tests/integration/test_batch_faults.py) and generated files with anomalies sprinkled in are
scored twice, with the fast path and with the exact path forced (``fast_path=False``), and the
outputs compared byte for byte (the manifest without its timestamps and timings).
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skylift.batch import BatchJob
from skylift.batch import fastpath as fastpath_module
from skylift.batch.fastpath import TypedCsv, encode_csv, validate_typed
from skylift.batch.readers import read_chunks
from skylift.bundle import ModelBundle
from skylift.scoring import Scorer
from tests.integration.test_batch_faults import PERMANENT_FAULTS, blank_lines_gz
from tests.unit.test_batch import CASES

RUN_DEPENDENT = ("started_at", "finished_at", "timings")


@pytest.fixture(scope="module")
def scorer(churn_bundle) -> Scorer:
    """The session's churn model as registered version 7 (so model_version is an integer)."""
    manifest = churn_bundle.manifest.model_copy(update={"version": 7})
    return Scorer(ModelBundle(churn_bundle.model, manifest))


@pytest.fixture(scope="module")
def clean_csv(churn_frame) -> str:
    return churn_frame.head(40).drop(columns=["churned"]).to_csv(index=False)


@pytest.fixture(scope="module")
def dirty_csv() -> str:
    """600 rows of the example's dirty export (blanks, typos), drifted so that some values
    are flagged (out of the training range)."""
    from churn_model.data import generate_churn

    return generate_churn(600, seed=5, shift=0.8).drop(columns=["churned"]).to_csv(index=False)


def outputs(config, scorer: Scorer, name: str, body: bytes, *, fast: bool, chunk_rows: int):
    """(predictions, quarantine, manifest without run-dependent fields) of scoring ``body``."""
    changed = config.model_copy(
        update={"batch": config.batch.model_copy(update={"chunk_rows": chunk_rows})}
    )
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / name
        source.write_bytes(body)
        out = Path(folder) / "out"
        manifest = BatchJob(changed, lambda: scorer, fast_path=fast).score_file(source, out)
        predictions = out / manifest.predictions_key
        quarantine = out / manifest.quarantine_key if manifest.quarantine_key else None
        stored = json.loads((out / (manifest.predictions_key + ".manifest.json")).read_text())
        for field in RUN_DEPENDENT:
            stored.pop(field, None)
        stored["input_key"] = Path(stored["input_key"]).name  # the temporary folder differs
        return (
            predictions.read_bytes() if predictions.exists() else None,
            quarantine.read_bytes() if quarantine is not None else None,
            stored,
        )


def assert_same(config, scorer: Scorer, name: str, body: bytes, chunk_rows: int = 50_000):
    fast = outputs(config, scorer, name, body, fast=True, chunk_rows=chunk_rows)
    exact = outputs(config, scorer, name, body, fast=False, chunk_rows=chunk_rows)
    assert fast[2] == exact[2], "manifests differ"
    assert fast[1] == exact[1], "quarantine files differ"
    assert fast[0] == exact[0], "predictions differ"
    return fast


# ---- every file the batch tests score -----------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [50_000, 13])
@pytest.mark.parametrize(
    ("name", "build"), [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_batch_test_cases_give_the_same_bytes(
    churn_config, scorer, clean_csv, name, build, chunk_rows
):
    suffix = ".csv.gz" if name == "gzip" else ".csv"
    assert_same(churn_config, scorer, name.replace(" ", "-") + suffix, build(clean_csv), chunk_rows)


@pytest.mark.parametrize("fault", list(PERMANENT_FAULTS))
def test_the_file_faults_give_the_same_bytes(churn_config, scorer, clean_csv, fault):
    suffix, build, _ = PERMANENT_FAULTS[fault]
    assert_same(churn_config, scorer, "fault" + suffix, build(clean_csv))


def test_the_long_row_unterminated_quote_and_blank_files_give_the_same_bytes(
    churn_config, scorer, clean_csv, churn_frame
):
    text = churn_frame.head(500).drop(columns=["churned"]).to_csv(index=False)
    lines = text.splitlines()
    cells = lines[100].split(",")
    cells[2] = '"' + cells[2]
    lines[100] = ",".join(cells)
    assert_same(churn_config, scorer, "unterminated.csv", ("\n".join(lines) + "\n").encode(), 64)

    lines = clean_csv.splitlines()
    cells = lines[5].split(",")
    cells[4] = '"' + "x" * 200_000 + '"'
    lines[5] = ",".join(cells)
    assert_same(churn_config, scorer, "over-long.csv", ("\n".join(lines) + "\n").encode())

    long_cells = clean_csv.splitlines()[7].split(",")
    long_cells[0] = "C" * 140_000  # unquoted, over csv's field size limit
    lines = clean_csv.splitlines()
    lines[7] = ",".join(long_cells)
    assert_same(churn_config, scorer, "long-id.csv", ("\n".join(lines) + "\n").encode())

    assert_same(churn_config, scorer, "blank.csv.gz", blank_lines_gz(1, clean_csv)[:4000])


def test_the_example_dirty_export_is_read_fast_and_gives_the_same_bytes(
    churn_config, scorer, dirty_csv
):
    _, chunks = read_chunks(
        io.BytesIO(dirty_csv.encode()), "csv", chunk_rows=100, schema=scorer.schema
    )
    assert all(chunk.typed for chunk in chunks)  # the premise: this is the fast path's file
    _, _, manifest = assert_same(churn_config, scorer, "dirty.csv", dirty_csv.encode(), 100)
    assert manifest["rows_scored"] == 600 and manifest["chunks"] == 6 and manifest["flagged"]


# ---- generated files with anomalies sprinkled in ------------------------------------------------

NUMERIC = ["age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]
CATEGORICAL = ["contract", "internet_service", "payment_method", "region", "paperless_billing"]

CELL_ANOMALIES = {
    "numeric": [
        "",
        "True",
        "false",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e400",
        "-0",
        "-0.0",
        " 5",
        "5 ",
        "12.5",
        "3.0",
        "1e3",
        "+4",
        ".5",
        "5.",
        "9007199254740993",
        "abc",
        "1_000",
        "0x10",
        "\t7",
        "7\x00",
        "١٢",
        "-1",
        "100000",
    ],
    "categorical": [
        "",
        " north",
        "north ",
        "nor th",
        "NORTH",
        "nan",
        "None",
        "ñorth",
        "\u00a0north",
        "x" * 40,
        "1",
    ],
    "id": ["", " C1", "C 1", "é", "C1\x0b"],
}
LINE_ANOMALIES = [
    "blank",
    "spaces only",
    "extra field",
    "missing field",
    "quoted comma",
    "quoted newline",
    "lone quote",
    "crlf",
    "cr",
    "invalid utf-8",
    "bom",
    "tab",
    "trailing comma",
]


@st.composite
def anomalous_files(draw, lines: list[str]) -> tuple[bytes, int]:
    header, rows = lines[0], list(lines[1 : draw(st.integers(2, len(lines)))])
    columns = header.split(",")
    for _ in range(draw(st.integers(0, 6))):
        row = draw(st.integers(0, len(rows) - 1))
        kind = draw(st.sampled_from(["numeric", "categorical", "id", "line"]))
        cells = rows[row].split(",")
        if kind == "line":
            anomaly = draw(st.sampled_from(LINE_ANOMALIES))
            rows[row] = _line_anomaly(anomaly, rows[row], cells)
            continue
        names = {"numeric": NUMERIC, "categorical": CATEGORICAL, "id": ["customer_id"]}[kind]
        column = columns.index(draw(st.sampled_from(names)))
        if len(cells) == len(columns):
            cells[column] = draw(st.sampled_from(CELL_ANOMALIES[kind]))
            rows[row] = ",".join(cells)
    if draw(st.booleans()):  # a whole run of a numeric column as booleans (the C engine's 0/1)
        column = columns.index(draw(st.sampled_from(NUMERIC)))
        for row in range(len(rows)):
            cells = rows[row].split(",")
            if len(cells) == len(columns):
                cells[column] = draw(st.sampled_from(["True", "False", "true", "FALSE", ""]))
                rows[row] = ",".join(cells)
    body = (header + "\n" + "\n".join(rows)).encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        body += b"\n"
    if draw(st.integers(0, 9)) == 0:
        body = b"\xef\xbb\xbf" + body  # a BOM before the header
    return body, draw(st.sampled_from([3, 7, 50]))


def _line_anomaly(anomaly: str, line: str, cells: list[str]) -> str:
    return {
        "blank": line + "\n",
        "spaces only": line + "\n   ",
        "extra field": line + ",x",
        "missing field": ",".join(cells[:-1]),
        "quoted comma": ",".join([f'"{cells[0]},x"', *cells[1:]]),
        "quoted newline": ",".join([cells[0], f'"{cells[1]}\nmore"', *cells[2:]]),
        "lone quote": ",".join([cells[0], '"' + cells[1], *cells[2:]]),
        "crlf": line + "\r",
        "cr": line.replace(",", "\r", 1),
        "invalid utf-8": line + "\udcff",
        "bom": "\ufeff" + line,
        "tab": line.replace(",", ",\t", 1),
        "trailing comma": line + ",",
    }[anomaly]


@pytest.fixture(scope="module")
def churn_lines(churn_frame) -> list[str]:
    return churn_frame.head(60).drop(columns=["churned"]).to_csv(index=False).splitlines()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_files_with_anomalies_give_the_same_bytes(
    churn_config, scorer, churn_lines, data
):
    body, chunk_rows = data.draw(anomalous_files(churn_lines))
    assert_same(churn_config, scorer, "generated.csv", body, chunk_rows)


# ---- the pieces, and the comparison itself ------------------------------------------------------


def test_a_clean_chunk_is_typed_and_an_anomalous_one_is_not(scorer, clean_csv):
    lines = clean_csv.splitlines(keepends=True)
    typed = TypedCsv(scorer.schema, lines[0].strip().split(","))
    frame = typed.parse(lines[1:])
    assert frame is not None and len(frame) == 40
    assert frame["age"].dtype == np.float64 and frame["contract"].dtype == object
    for change in [
        lambda line: ",".join([line.split(",")[0], "True", *line.split(",")[2:]]),
        lambda line: line.replace(",", ', "x",', 1),
        lambda line: line + "\n",
        lambda line: line.replace(",", ",,", 1),
    ]:
        assert typed.parse([*lines[1:5], change(lines[5]), *lines[6:]]) is None


@pytest.mark.parametrize(
    "problem", [None, ("support_calls", "2.5"), ("contract", ""), ("tenure_months", "")]
)
def test_typed_validation_is_validate_frame_on_the_strings(scorer, dirty_csv, problem):
    lines = dirty_csv.splitlines(keepends=True)
    columns = lines[0].strip().split(",")
    if problem is not None:
        cells = lines[3].rstrip("\n").split(",")
        cells[columns.index(problem[0])] = problem[1]
        lines[3] = ",".join(cells) + "\n"
    typed = TypedCsv(scorer.schema, columns).parse(lines[1:])
    assert typed is not None
    strings = pd.read_csv(io.StringIO("".join(lines)), dtype=object, keep_default_na=False)
    fast, exact = validate_typed(scorer.schema, typed), scorer.schema.validate_frame(strings)
    pd.testing.assert_frame_equal(fast.valid, exact.valid)
    pd.testing.assert_series_equal(fast.rejected, exact.rejected)
    assert list(fast.flag_counts.items()) == list(exact.flag_counts.items())
    assert len(exact.rejected) == (problem is not None)


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=64)
        | st.sampled_from([1e-5, 1e16, 1e15, 0.0001, 123456789012345678.0, 5e-324]),
        min_size=1,
        max_size=30,
    )
)
def test_the_writer_writes_floats_as_to_csv_does(values):
    frame = pd.DataFrame(
        {"id": [f"C{i}" for i in range(len(values))], "p": values, "v": 3, "k": [1] * len(values)}
    )
    frame["k"] = frame["k"].astype(object)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=True, lineterminator="\n")
    assert encode_csv(frame, header=True) == buffer.getvalue().encode()


def test_the_writer_leaves_what_csv_would_quote_to_to_csv():
    assert encode_csv(pd.DataFrame({"id": ["a,b"], "p": [0.5]}), header=False) is None
    assert encode_csv(pd.DataFrame({"id": ["a"], "p": [np.nan]}), header=False) is None
    assert encode_csv(pd.DataFrame({"id": ["a"], "p": [True]}), header=False) is None


def test_the_comparison_fails_when_the_fast_path_differs(
    churn_config, scorer, clean_csv, monkeypatch
):
    """Without the guard against the C engine's booleans, a column of True/False reads as
    1/0 and scores, where the exact path quarantines it: the comparison must notice."""
    lines = clean_csv.splitlines()
    position = lines[0].split(",").index("support_calls")
    for row in range(1, len(lines)):
        cells = lines[row].split(",")
        cells[position] = "True" if row % 2 else "False"
        lines[row] = ",".join(cells)
    body = ("\n".join(lines) + "\n").encode()
    assert_same(churn_config, scorer, "booleans.csv", body)
    monkeypatch.setattr(fastpath_module, "_BOOLEAN_HINTS", ())
    with pytest.raises(AssertionError, match="differ"):
        assert_same(churn_config, scorer, "booleans.csv", body)


def test_a_gzipped_clean_file_is_read_fast(scorer, clean_csv):
    _, chunks = read_chunks(
        io.BytesIO(gzip.compress(clean_csv.encode())), "csv", gzipped=True, schema=scorer.schema
    )
    assert [chunk.typed for chunk in chunks] == [True]
