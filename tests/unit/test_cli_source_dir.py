"""``[model].source_dir`` is on sys.path for every command and function before a model is
unpickled: a pipeline that pickles the user's own function (a FunctionTransformer of a function
in their package) loads in `skylift batch score`, `skylift retrain` and the handlers, each
started as a fresh process would be (the package neither imported nor on sys.path)."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import uuid

import pytest
from click.testing import CliRunner

from skylift.cli import cli
from tests.helpers import RECORD, FakeContext, predict_event

pytestmark = pytest.mark.usefixtures("isolated_logging")

FEATURES = """
    NUMERIC = ["age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]


    def numeric_part(frame):
        return frame[NUMERIC].astype("float64").fillna(0.0)
"""

TRAIN = """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from {package}.features import NUMERIC, numeric_part


    def train(frame):
        model = Pipeline(
            [
                ("numeric", FunctionTransformer(numeric_part)),
                ("classifier", LogisticRegression(max_iter=500)),
            ]
        )
        return model.fit(frame[NUMERIC], frame["churned"])
"""


@pytest.fixture
def project(tmp_path, churn_config):
    """A user's project: skylift.toml beside src/<package>/ (a name no other test imports)."""
    package = f"user_model_{uuid.uuid4().hex[:8]}"
    source = tmp_path / "src" / package
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "features.py").write_text(textwrap.dedent(FEATURES))
    (source / "train.py").write_text(textwrap.dedent(TRAIN.format(package=package)))
    config = tmp_path / "skylift.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [model]
            name = "churn"
            task = "classification"
            target = "churned"
            id_column = "customer_id"
            entry_point = "{package}.train:train"
            source_dir = "src"

            [storage]
            bucket = "{churn_config.storage.bucket}"
            """
        )
    )
    yield config, package, str(tmp_path / "src")
    forget(package, str(tmp_path / "src"))


def forget(package: str, source: str) -> None:
    """As a new process starts: the package not imported, its folder not on sys.path."""
    while source in sys.path:
        sys.path.remove(source)
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]


def test_commands_and_handlers_load_a_pipeline_pickling_the_users_function(
    project, s3, churn_config, churn_frame, tmp_path, monkeypatch
):
    config, package, source = project
    data = tmp_path / "churn.csv"
    churn_frame.to_csv(data, index=False)
    runner = CliRunner()

    def run(*args: str):
        forget(package, source)
        return runner.invoke(cli, ["-c", str(config), *args], catch_exceptions=False)

    trained = run("train", "--data", str(data), "--promote")
    assert trained.exit_code == 0, trained.output

    batch_input = tmp_path / "customers.csv"
    churn_frame.head(50).drop(columns=["churned"]).to_csv(batch_input, index=False)
    scored = run("batch", "score", str(batch_input), "--output", str(tmp_path / "out"))
    assert scored.exit_code == 0, scored.output
    assert "scored 50" in scored.output

    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key=f"{churn_config.storage.training_prefix}churn.csv",
        Body=data.read_bytes(),
    )
    retrained = run("retrain")
    assert retrained.exit_code == 0, retrained.output
    assert "challenger v2" in retrained.output

    # The score function, imported as Lambda imports it (config from the environment).
    forget(package, source)
    monkeypatch.setenv("SKYLIFT_CONFIG", str(config))
    monkeypatch.setenv("SKYLIFT_API__CAPTURE_STREAM", "")
    sys.modules.pop("functions.score.app", None)
    try:
        app = importlib.import_module("functions.score.app")
        reply = app.handler(predict_event({"records": [RECORD]}), FakeContext())
    finally:
        sys.modules.pop("functions.score.app", None)
    assert reply["statusCode"] == 200, reply["body"]
    assert len(json.loads(reply["body"])["predictions"]) == 1
