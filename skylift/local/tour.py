"""The demo tour: every part of skylift, end to end, on the local stack.

Each step is a small function that does one real thing (over HTTP, through S3 and SQS, or by
firing a schedule) and returns the figures for the summary. ``skylift demo`` runs them in
order with progress, and the local stack is torn down whatever happens.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from skylift.config import SkyliftConfig
from skylift.errors import SkyliftError
from skylift.report import latest_monitoring_report, latest_retrain_report

__all__ = ["StackHandle", "Tour", "TourError"]


class TourError(SkyliftError):
    """A step of the tour did not produce what it should have."""


class StackHandle(Protocol):
    """What the tour needs from a running local stack."""

    endpoint_url: str
    api_url: str
    api_key: str

    def trigger(self, name: str) -> Any: ...

    def wait_for_events(self, timeout: float) -> None: ...


@dataclass
class StepResult:
    name: str
    seconds: float
    outcome: str


class DataGenerator(Protocol):
    """The project's sample data: ``rows`` rows with the target column, reproducible by
    ``seed``; ``shift`` moves the feature distributions (for the drift and retrain steps)."""

    def __call__(self, rows: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame: ...


@dataclass
class Tour:
    config: SkyliftConfig
    stack: StackHandle
    s3: Any
    workdir: Path
    generate: DataGenerator
    rows: int = 5000
    batch_rows: int = 20_000
    progress: Callable[[str], None] = print
    results: list[StepResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def api_scheme(self) -> str:
        return "HTTPS" if self.stack.api_url.startswith("https://") else "HTTP"

    @property
    def bucket(self) -> str:
        return self.config.storage.bucket

    def run(self) -> list[StepResult]:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("train, register, promote", self.train_and_promote),
            (f"score over {self.api_scheme} API", self.score_over_http),
            ("reject a bad request", self.bad_request),
            ("batch-score a CSV via S3 -> SQS", self.batch_score),
            ("upload labels", self.upload_labels),
            ("monitor drift + live accuracy", self.monitor),
            ("HTML report", self.html_report),
            ("drift detected -> retrain", self.drift_answered),
            ("challenger as a canary -> decision", self.canary_rollout),
        ]
        for number, (name, step) in enumerate(steps, start=1):
            self.progress(f"[{number}/{len(steps)}] {name} ...")
            started = time.perf_counter()
            outcome = step()
            seconds = time.perf_counter() - started
            self.results.append(StepResult(name, seconds, outcome))
            self.progress(f"      {outcome} ({seconds:.1f} s)")
        return self.results

    # ---- steps ---------------------------------------------------------------------------------

    def train_and_promote(self) -> str:
        from skylift.registry import ModelRegistry
        from skylift.training import train_and_register

        frame = self.generate(self.rows, seed=0)
        key = f"{self.config.storage.training_prefix}{self.config.model.name}.csv"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=frame.to_csv(index=False).encode())
        registry = ModelRegistry.from_config(self.config, s3_client=self.s3)
        result = train_and_register(
            self.config, registry, f"s3://{self.bucket}/{key}", promote=True, actor="demo"
        )
        manifest = result.bundle.manifest
        self.facts["champion_version"] = manifest.version
        self.facts["champion_metrics"] = manifest.metrics
        return (
            f"version {manifest.version} is champion; holdout ROC AUC "
            f"{manifest.metrics.get('roc_auc', float('nan')):.3f}"
        )

    def _post(self, path: str, body: Any, **headers: str) -> Any:
        import requests

        return requests.post(
            f"{self.stack.api_url.rstrip('/')}{path}",
            data=json.dumps(body) if not isinstance(body, bytes | str) else body,
            headers={
                "x-api-key": self.stack.api_key,
                "content-type": "application/json",
                **headers,
            },
            timeout=30,
        )

    def score_over_http(self) -> str:
        frame = self.generate(5, seed=7).drop(columns=[self.config.model.target])
        records = json.loads(frame.to_json(orient="records"))
        response = self._post("/predict", {"records": records})
        if response.status_code != 200:
            raise TourError(f"POST /predict answered {response.status_code}: {response.text}")
        body = response.json()
        predictions = body.get("predictions", [])
        if len(predictions) != len(records):
            raise TourError(f"POST /predict scored {len(predictions)} of {len(records)} records")
        self.facts["api_version"] = body.get("model_version")
        first = predictions[0]
        return (
            f"HTTP 200, {len(predictions)} records scored by version {body.get('model_version')}; "
            f"{first.get('id')}: churn probability {first['probabilities'].get('1', 0):.2f}"
        )

    def bad_request(self) -> str:
        response = self._post("/predict", {"records": [{"tenure_months": "twelve"}]})
        if response.status_code != 400:
            raise TourError(f"a bad record got HTTP {response.status_code}, expected 400")
        error = response.json()["error"]
        return f"HTTP 400 {error['code']}: {len(error.get('details', []))} field problems named"

    def batch_score(self) -> str:
        frame = self.generate(self.batch_rows, seed=11)
        target, id_column = self.config.model.target, self.config.model.id_column
        self.facts["batch_labels"] = frame[[id_column, target]]
        text = frame.drop(columns=[target]).to_csv(index=False)
        lines = text.splitlines()
        # A few rows as real exports have them: a word where a number belongs, a missing value.
        header = lines[0].split(",")
        for line_number, column, value in ((4, "contract", ""), (6, "tenure_months", "twelve")):
            cells = lines[line_number - 1].split(",")
            cells[header.index(column)] = value
            lines[line_number - 1] = ",".join(cells)
        key = f"{self.config.storage.incoming_prefix}demo/customers 2026-11.csv"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
        manifest_key = (
            f"{self.config.storage.predictions_prefix}"
            f"{key[len(self.config.storage.incoming_prefix) :]}.manifest.json"
        )
        manifest = self._wait_for_json(manifest_key, timeout=90)
        self.facts["batch_manifest"] = manifest
        read = manifest.get("rows_read")
        scored = manifest.get("rows_scored")
        quarantined = manifest.get("rows_quarantined")
        if read != (scored or 0) + (quarantined or 0):
            raise TourError(
                f"batch lost rows: read {read}, scored {scored}, quarantined {quarantined}"
            )
        return f"{read} rows read = {scored} scored + {quarantined} quarantined ({manifest_key})"

    def upload_labels(self) -> str:
        labels: pd.DataFrame = self.facts["batch_labels"].rename(
            columns={self.config.model.target: "label"}
        )
        labels["time"] = pd.Timestamp.now(tz="UTC").isoformat()
        key = f"{self.config.storage.labels_prefix}demo-labels.csv"
        buffer = io.StringIO()
        labels.to_csv(buffer, index=False)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue().encode())
        return f"{len(labels)} ground-truth labels -> s3://{self.bucket}/{key}"

    def monitor(self) -> str:
        result = self.stack.trigger("monitor")
        del result
        report = latest_monitoring_report(self.config, self.s3)
        if report is None:
            raise TourError("the monitor stored no report")
        self.facts["monitoring"] = report
        drift = report.max_psi
        parts = [f"max PSI {drift:.3f}" if drift is not None else "drift computed"]
        live = report.live_metrics
        if live is not None and live.accuracy is not None:
            parts.append(f"live accuracy {live.accuracy:.3f} on {live.rows} labelled rows")
        return ", ".join(parts)

    def html_report(self) -> str:
        from skylift import report as report_module

        path = self.workdir / "skylift-report.html"
        render = getattr(report_module, "render_report_file", None)
        if render is None:
            raise TourError("skylift.report has no render_report_file()")
        render(self.config, path, s3_client=self.s3)
        self.facts["report_path"] = str(path)
        return f"wrote {path} ({path.stat().st_size // 1024} KiB)"

    def drift_answered(self) -> str:
        """Customers change: a shifted batch is scored, new training data lands, the monitor
        finds drift and publishes the drift event, and its rule starts the retrain."""
        shifted = self.generate(self.rows, seed=5, shift=1.0)
        key = f"{self.config.storage.training_prefix}{self.config.model.name}.csv"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=shifted.to_csv(index=False).encode())
        batch = self.generate(self.batch_rows * 2, seed=13, shift=1.0)
        incoming = f"{self.config.storage.incoming_prefix}demo/customers 2026-12.csv"
        text = batch.drop(columns=[self.config.model.target]).to_csv(index=False)
        self.s3.put_object(Bucket=self.bucket, Key=incoming, Body=text.encode())
        self._wait_for_json(
            f"{self.config.storage.predictions_prefix}"
            f"{incoming[len(self.config.storage.incoming_prefix) :]}.manifest.json",
            timeout=90,
        )
        self.stack.trigger("monitor")
        self.stack.wait_for_events(timeout=600)
        monitoring = latest_monitoring_report(self.config, self.s3)
        if monitoring is None or not monitoring.drifted_features:
            raise TourError("the monitor found no drift in the shifted data")
        if not monitoring.drift_event_published:
            raise TourError(f"the drift event was not published: {monitoring.notes}")
        report = latest_retrain_report(self.config, self.s3)
        if report is None or report.trigger != "drift":
            raise TourError("the drift event started no retrain")
        self.facts["retrain"] = report
        verdict = "promoted" if report.decision.promoted else "not promoted"
        return (
            f"max PSI {monitoring.max_psi or 0:.2f} ({len(monitoring.drifted_features)} features "
            f"drifted) -> drift event -> retrain: challenger {verdict}: {report.decision.reason}"
        )

    def canary_rollout(self) -> str:
        """A challenger retrained on this month's data answers 30% of the customers (the score
        function picks the candidate alias up without a redeploy); its answers are captured
        tagged with its version, and the monitor's rollout decision promotes or aborts it."""
        from skylift.registry import ModelRegistry
        from skylift.rollout import start_candidate
        from skylift.rollout_decision import decide_rollout
        from skylift.training import train_and_register

        registry = ModelRegistry.from_config(self.config, s3_client=self.s3)
        key = f"{self.config.storage.training_prefix}{self.config.model.name}.csv"
        challenger = train_and_register(
            self.config, registry, f"s3://{self.bucket}/{key}", promote=False, actor="demo"
        ).bundle.manifest.version
        champion = registry.resolve()
        start_candidate(registry, challenger or 0, "canary", percent=30, actor="demo")
        self._wait_for_canary(timeout=self.config.api.model_refresh_seconds + 30)
        frame = self.generate(300, seed=21, shift=1.0).drop(columns=[self.config.model.target])
        records = json.loads(frame.to_json(orient="records"))
        answered: dict[Any, int] = {}
        for start in range(0, len(records), 50):
            reply = self._post("/predict", {"records": records[start : start + 50]})
            if reply.status_code != 200:
                raise TourError(f"/predict answered {reply.status_code}: {reply.text[:300]}")
            for prediction in reply.json()["predictions"]:
                version = prediction.get("model_version")
                answered[version] = answered.get(version, 0) + 1
        on_canary = answered.get(challenger, 0)
        self._wait_for_capture(challenger, timeout=60)
        # the demo's policy: decide now (a deployment holds for [rollout].hold_hours)
        policy = self.config.rollout.model_copy(
            update={
                "min_requests": min(50, max(on_canary, 1)),
                "hold_hours": 1e-6,
                "auto_promote": True,
            }
        )
        config = self.config.model_copy(update={"rollout": policy})
        report = decide_rollout(config, self.s3, registry=registry)
        if report is None:
            raise TourError("no active candidate to decide about")
        self.facts["rollout"] = report
        now = registry.resolve()
        return (
            f"challenger v{challenger} answered {on_canary} of {len(records)} customers "
            f"(30% canary beside champion v{champion}) -> {report.decision}: "
            f"{report.reasons[-1] if report.reasons else ''}; champion is v{now}"
        )

    def _wait_for_canary(self, timeout: float) -> None:
        """Until the score function has loaded the canary (it re-checks the candidate alias
        every [api].model_refresh_seconds), as its /health says."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = requests.get(
                f"{self.stack.api_url.rstrip('/')}/health",
                headers={"x-api-key": self.stack.api_key},
                timeout=30,
            ).json()
            if (health.get("candidate") or {}).get("loaded"):
                return
            time.sleep(1.0)
        raise TourError(f"the score function did not load the canary within {timeout:.0f} s")

    def _wait_for_capture(self, version: int | None, timeout: float) -> None:
        """Until some capture line of ``version`` (the canary's) has reached S3."""
        deadline = time.monotonic() + timeout
        prefix = self.config.storage.capture_prefix
        while time.monotonic() < deadline:
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                    if (
                        f'"model_version":{version}'.encode() in body
                        and b'"role":"candidate"' in body
                    ):
                        return
            time.sleep(0.5)
        raise TourError(f"no capture of the canary (version {version}) within {timeout:.0f} s")

    # ---- helpers -------------------------------------------------------------------------------

    def _wait_for_json(self, key: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                return json.loads(body)
            except self.s3.exceptions.NoSuchKey:
                time.sleep(0.25)
        raise TourError(f"s3://{self.bucket}/{key} did not appear within {timeout:.0f} s")
