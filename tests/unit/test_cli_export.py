"""`skylift export onnx|sql` and the exports in `skylift models describe`, on mocked S3."""

from __future__ import annotations

import duckdb
import numpy as np
import onnxruntime
import pytest
from click.testing import CliRunner

from skylift.cli import cli


@pytest.fixture
def run(s3, churn_config):
    runner = CliRunner()
    config = str(churn_config.config_path)

    def invoke(*args: str):
        return runner.invoke(cli, ["--config", config, *args], catch_exceptions=False)

    return invoke


@pytest.fixture
def versions(registry, churn_onnx_bundle, churn_bundle):
    portable = registry.register(churn_onnx_bundle).version
    example = registry.register(churn_bundle).version
    registry.promote(portable)
    return portable, example


def test_describe_shows_each_export(run, versions):
    portable, example = versions
    shown = run("models", "describe", str(portable)).output
    assert "export onnx" in shown and "export sql" in shown
    assert shown.count("verified; max |diff|") == 2
    shown = run("models", "describe", str(example)).output
    assert "not available: does not convert" in shown


def test_export_onnx_writes_the_verified_model(run, versions, tmp_path, churn_onnx_bundle):
    target = tmp_path / "churn.onnx"
    result = run("export", "onnx", "-o", str(target))  # champion by default
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == churn_onnx_bundle.onnx
    onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])


def test_export_of_a_version_without_the_export_is_a_one_line_error(run, versions, tmp_path):
    _, example = versions
    result = run("export", "onnx", str(example), "-o", str(tmp_path / "x.onnx"))
    assert result.exit_code == 2
    assert "no verified ONNX export" in result.output and "Traceback" not in result.output
    result = run("export", "sql", str(example), "--table", "customers")
    assert result.exit_code == 2 and "has no SQL export" in result.output


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake", "bigquery"])
def test_export_sql_for_each_dialect(run, versions, dialect):
    result = run("export", "sql", "--dialect", dialect, "--table", "customers")
    assert result.exit_code == 0, result.output
    assert "customers" in result.output and "customer_id" in result.output


def test_exported_duckdb_sql_scores_the_table_like_the_pipeline(
    run, versions, tmp_path, churn_onnx_bundle
):
    from churn_model.data import generate_churn

    target = tmp_path / "score.sql"
    assert run("export", "sql", "--table", "customers", "-o", str(target)).exit_code == 0
    customers = generate_churn(300, seed=9).drop(columns=["churned"])
    assert customers.isna().any(axis=1).sum() > 0
    connection = duckdb.connect()
    connection.register("customers", customers)
    scored = connection.execute(target.read_text()).df().set_index("customer_id")
    expected = churn_onnx_bundle.model.predict_proba(customers)[:, 1]
    actual = scored.loc[customers["customer_id"], "output_probability.1"].to_numpy()
    assert np.abs(actual - expected).max() <= 1e-9


def test_promote_refuses_a_version_the_onnx_runtime_cannot_serve(
    s3, churn_config, versions, monkeypatch
):
    _portable, example = versions
    monkeypatch.setenv("SKYLIFT_DEPLOY__RUNTIME", "onnx")
    result = CliRunner().invoke(
        cli, ["--config", str(churn_config.config_path), "models", "promote", str(example)]
    )
    assert result.exit_code == 2, result.output
    assert f"version {example} has no verified ONNX export" in result.output
    assert "Traceback" not in result.output
