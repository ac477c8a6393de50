"""The fan-out on one machine (``skylift batch score FILE --workers N``): the same plan, range
scorer and commit as the state machine, with a pool of worker processes for the map.

Processes, not threads: validation and pandas hold the GIL. Workers are spawned (not forked:
forking after OpenMP has started can hang) and get the config and the scorer once each.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from skylift.batch.assemble import LocalAssembler
from skylift.batch.fanout import RangeOutcome, Staging, commit_ranges, score_range
from skylift.batch.job import BatchJob
from skylift.batch.manifest import BatchManifest, output_keys
from skylift.batch.plan import ByteRange, plan_ranges
from skylift.batch.readers import detect_format
from skylift.batch.sinks import LocalSink
from skylift.bundle import ModelBundle
from skylift.config import SkyliftConfig
from skylift.scoring import Scorer

__all__ = ["score_file_fanned"]


def score_file_fanned(
    config: SkyliftConfig,
    scorer: Scorer,
    path: Path,
    output_dir: Path,
    *,
    ranges: int,
    workers: int = 1,
) -> BatchManifest:
    """Score a local file in ``ranges`` ranges on ``workers`` processes (1: in this one)."""
    started = datetime.now(UTC)
    key = f"{config.storage.incoming_prefix}{path.name}"
    keys = output_keys(config, key)
    fmt, gzipped = detect_format(key)
    with path.open("rb") as stream:
        planned = plan_ranges(stream, fmt, path.stat().st_size, ranges=ranges, gzipped=gzipped)
    staging = Staging(f".fanout-{started.strftime('%Y%m%dT%H%M%S%f')}")
    try:
        if workers <= 1:
            _init(config, scorer)
            outcomes = [_score(path, key, output_dir, staging.root, r) for r in planned]
        else:
            with ProcessPoolExecutor(
                max_workers=workers,
                mp_context=get_context("spawn"),
                initializer=_init_from_artifact,
                initargs=(
                    config,
                    scorer.bundle.artifact,
                    scorer.manifest.model_dump_json(),
                    config.model.allow_version_skew,
                ),
            ) as pool:
                outcomes = list(
                    pool.map(
                        _score,
                        [path] * len(planned),
                        [key] * len(planned),
                        [output_dir] * len(planned),
                        [staging.root] * len(planned),
                        planned,
                    )
                )
        base: dict[str, Any] = {
            "input_bucket": "local",
            "input_key": str(path),
            "predictions_key": keys.predictions,
            "model": scorer.name,
            "model_version": scorer.version,
            "started_at": started,
        }
        manifest = commit_ranges(outcomes, LocalAssembler(output_dir), keys, staging, base)
    finally:
        shutil.rmtree(output_dir / staging.root, ignore_errors=True)
    LocalSink(output_dir).write_manifest(keys.manifest, manifest, None)
    return manifest


_worker: dict[str, Any] = {}


def _init(config: SkyliftConfig, scorer: Scorer) -> None:
    _worker["job"] = BatchJob(config, lambda: scorer)
    _worker["scorer"] = scorer


def _init_from_artifact(
    config: SkyliftConfig, artifact: bytes, manifest: str, allow_version_skew: bool
) -> None:
    # The artifact is verified against its manifest's hash before it is unpickled, as the
    # registry does; a Scorer itself does not pickle (its schema builds classes at run time).
    bundle = ModelBundle.load(
        artifact, manifest, allow_version_skew=allow_version_skew, source="parent process"
    )
    # N processes share the cores: one BLAS/OpenMP thread each, or they oversubscribe them.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    _init(config, Scorer(bundle))


def _score(
    path: Path, key: str, output_dir: Path, staging_root: str, byte_range: ByteRange
) -> RangeOutcome:
    staging = Staging(staging_root.rstrip("/"), prefix="")
    with path.open("rb") as stream:
        return score_range(
            _worker["job"],
            _worker["scorer"],
            stream,
            key,
            byte_range,
            LocalSink(output_dir),
            staging,
        )
