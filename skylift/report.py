"""A self-contained HTML report: drift per feature, PSI against the threshold, live metrics
and each version's metrics over time. Inline SVG drawn here; no scripts, no CDN: it opens
offline and can be mailed as one file."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, TypeVar

from skylift import aws
from skylift.bundle import Manifest
from skylift.config import SkyliftConfig
from skylift.registry import ModelRegistry
from skylift.reports import FeatureDrift, MonitorReport, RetrainReport

R = TypeVar("R", MonitorReport, RetrainReport)

__all__ = [
    "latest_monitoring_report",
    "latest_report_key",
    "latest_retrain_report",
    "render_report",
    "render_report_file",
]

BASELINE_COLOUR = "#8da0cb"
CURRENT_COLOUR = "#fc8d62"
DRIFT_COLOUR = "#d7301f"
OK_COLOUR = "#1a9850"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


def psi_chart(features: dict[str, FeatureDrift], threshold: float) -> str:
    """Horizontal PSI bars, one per feature, with the threshold as a dashed line."""
    items = [(n, r.psi) for n, r in features.items() if r.psi is not None]
    if not items:
        return "<p>No PSI computed (empty window).</p>"
    items.sort(key=lambda item: -item[1])
    width, bar_left, row = 720, 170, 24
    top = max(max(v for _, v in items), threshold) * 1.1
    scale = (width - bar_left - 60) / top
    height = row * len(items) + 40
    parts = [
        f'<svg class="chart psi" width="{width}" height="{height}" role="img" aria-label="PSI per feature">'
    ]
    for index, (name, value) in enumerate(items):
        y = 10 + index * row
        colour = DRIFT_COLOUR if value > threshold else OK_COLOUR
        parts.append(f'<text x="{bar_left - 8}" y="{y + 15}" text-anchor="end">{_e(name)}</text>')
        parts.append(
            f'<rect x="{bar_left}" y="{y + 3}" width="{max(value * scale, 1):.1f}" height="{row - 8}" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{bar_left + value * scale + 6:.1f}" y="{y + 15}">{value:.3f}</text>'
        )
    x = bar_left + threshold * scale
    parts.append(
        f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 24}" stroke="#333" stroke-dasharray="5,4"/>'
    )
    parts.append(
        f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">threshold {threshold:g}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def distribution_chart(name: str, result: FeatureDrift) -> str:
    """Baseline vs current shares per bin or category, as paired bars."""
    baseline, current = result.baseline or [], result.current or []
    if not baseline:
        return ""
    if result.kind == "categorical":
        labels = [str(c) for c in result.categories or []]
    else:
        edges = result.bins or []
        bounds = ["-inf", *[f"{e:.4g}" for e in edges], "inf"]
        labels = [f"{bounds[i]}..{bounds[i + 1]}" for i in range(len(bounds) - 1)]
    width, height, bottom = 340, 170, 40
    slot = (width - 20) / max(len(baseline), 1)
    top = max(max(baseline), max(current), 1e-9) * 1.1
    scale = (height - bottom - 10) / top
    parts = [
        f'<svg class="chart dist" width="{width}" height="{height}" role="img" aria-label="{_e(name)} distribution">'
    ]
    for index, (b, c) in enumerate(zip(baseline, current, strict=False)):
        x = 10 + index * slot
        for offset, value, colour in ((0.1, b, BASELINE_COLOUR), (0.5, c, CURRENT_COLOUR)):
            h = value * scale
            parts.append(
                f'<rect x="{x + slot * offset:.1f}" y="{height - bottom - h:.1f}" '
                f'width="{slot * 0.4:.1f}" height="{h:.1f}" fill="{colour}"><title>{_e(labels[index] if index < len(labels) else "")}: {value:.3f}</title></rect>'
            )
        if result.kind == "categorical" and len(baseline) <= 6 and index < len(labels):
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 14}" font-size="9" text-anchor="middle">{_e(labels[index][:10])}</text>'
            )
    if result.kind != "categorical" and result.bins:
        edges = result.bins
        parts.append(
            f'<text x="10" y="{height - bottom + 14}" font-size="10">training deciles, '
            f"{edges[0]:.4g} .. {edges[-1]:.4g}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def versions_chart(manifests: list[Manifest], metric: str) -> str:
    """One metric across registered versions, as a line with points."""
    points = [
        (m.version, m.metrics[metric]) for m in manifests if metric in m.metrics and m.version
    ]
    if not points:
        return f"<p>No version has {_e(metric)} yet.</p>"
    width, height, pad = 720, 220, 40
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    coords = [
        (pad + i * step, height - pad - (v - low) / span * (height - 2 * pad))
        for i, (_, v) in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    parts = [
        f'<svg class="chart versions" width="{width}" height="{height}" role="img" aria-label="{_e(metric)} by version">'
    ]
    parts.append(
        f'<polyline points="{path}" fill="none" stroke="{BASELINE_COLOUR}" stroke-width="2"/>'
    )
    for (x, y), (version, value) in zip(coords, points, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{CURRENT_COLOUR}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle" font-size="11">{value:.3f}</text>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle" font-size="11">v{version}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_report(
    config: SkyliftConfig, monitoring: MonitorReport | None, manifests: list[Manifest]
) -> str:
    """The whole page as one HTML string."""
    notes = ["no monitoring report yet"] if monitoring is None else monitoring.notes
    threshold = monitoring.threshold if monitoring else config.monitor.psi_threshold
    features = monitoring.features if monitoring else {}
    live = monitoring.live_metrics if monitoring else None
    drifted = monitoring.drifted_features if monitoring else []
    cards = "".join(
        f'<div class="card"><h3>{_e(name)} <span class="{"drift" if r.drifted else "ok"}">'
        f"PSI {r.psi:.3f}</span></h3>{distribution_chart(name, r)}</div>"
        for name, r in features.items()
        if r.psi is not None
    )
    live_values = live.model_dump(exclude={"rows"}, exclude_none=True) if live else {}
    live_rows = (
        "".join(f"<tr><td>{_e(k)}</td><td>{v:.4f}</td></tr>" for k, v in live_values.items())
        + f"<tr><td>labelled rows</td><td>{live.rows}</td></tr>"
        if live
        else '<tr><td colspan="2">no labels joined in this window</td></tr>'
    )
    version_rows = "".join(
        f"<tr><td>v{m.version}</td><td>{m.created_at:%Y-%m-%d %H:%M}</td>"
        + "".join(
            f"<td>{m.metrics.get(k, float('nan')):.4f}</td>"
            for k in ("roc_auc", "accuracy", "log_loss")
        )
        + "</tr>"
        for m in manifests
    )
    notes_html = "".join(f"<li>{_e(n)}</li>" for n in notes)
    status = (
        f'<span class="drift">{len(drifted)} drifted: {_e(", ".join(drifted))}</span>'
        if drifted
        else '<span class="ok">no feature over the threshold</span>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>skylift report: {_e(config.model.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1100px; }}
h1 {{ margin-bottom: 0.2rem; }} .sub {{ color: #666; margin-top: 0; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: 0.5rem 0.8rem; }}
.card h3 {{ font-size: 0.95rem; margin: 0.2rem 0; }}
.drift {{ color: {DRIFT_COLOUR}; font-weight: 600; }} .ok {{ color: {OK_COLOUR}; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #eee; padding: 0.25rem 0.8rem; text-align: left; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}
svg text {{ font-size: 12px; fill: #333; }}
</style></head><body>
<h1>{_e(config.model.name)}: model health</h1>
<p class="sub">champion v{_e(monitoring.model_version if monitoring else "?")} &middot; window {_e(monitoring.window.start if monitoring else "?")} to {_e(monitoring.window.end if monitoring else "?")} &middot; {_e((monitoring.rows if monitoring else None) or 0)} inputs &middot; {status}</p>
<h2>Drift per feature (PSI)</h2>
{psi_chart(features, threshold)}
<p>Max PSI {_fmt(monitoring.max_psi if monitoring else None)}; prediction PSI {_fmt(monitoring.prediction_psi if monitoring else None)}{_e(f" (P({monitoring.positive_class}))" if monitoring and monitoring.positive_class else "")}.</p>
<h2>Baseline vs current</h2>
<p class="legend"><span style="background:{BASELINE_COLOUR}"></span>baseline (training) <span style="background:{CURRENT_COLOUR}"></span>current window</p>
<div class="cards">{cards or "<p>No inputs in the window.</p>"}</div>
<h2>Live metrics</h2>
<table><tbody>{live_rows}</tbody></table>
<h2>Versions over time</h2>
{versions_chart(manifests, config.retrain.metric)}
<table><thead><tr><th>version</th><th>created (UTC)</th><th>roc_auc</th><th>accuracy</th><th>log_loss</th></tr></thead><tbody>{version_rows}</tbody></table>
<h2>Notes</h2><ul>{notes_html}</ul>
</body></html>
"""


def latest_report_key(config: SkyliftConfig, s3: Any, kind: str) -> str | None:
    """The newest report of ``kind`` ("monitoring", "retrain"): keys are UTC timestamps, so
    the greatest key over every page (a listing returns at most 1,000 keys, ~42 days of
    hourly reports)."""
    prefix = f"{config.storage.reports_prefix}{kind}/"
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=config.storage.bucket, Prefix=prefix
    )
    keys = (o["Key"] for page in pages for o in page.get("Contents", []))
    return max((key for key in keys if key.endswith(".json")), default=None)


def latest_monitoring_report(config: SkyliftConfig, s3: Any) -> MonitorReport | None:
    return _latest(config, s3, "monitoring", MonitorReport)


def latest_retrain_report(config: SkyliftConfig, s3: Any) -> RetrainReport | None:
    return _latest(config, s3, "retrain", RetrainReport)


def _latest(config: SkyliftConfig, s3: Any, kind: str, model: type[R]) -> R | None:
    key = latest_report_key(config, s3, kind)
    if key is None:
        return None
    body = s3.get_object(Bucket=config.storage.bucket, Key=key)["Body"].read()
    return model.model_validate_json(body).model_copy(update={"report_key": key})


def render_report_file(
    config: SkyliftConfig, path: str | Path, s3_client: Any | None = None
) -> Path:
    """Render the latest monitoring report and the registry's versions into ``path``."""
    s3 = s3_client or aws.client("s3")
    manifests = ModelRegistry.from_config(config, s3_client=s3).list_versions()
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_report(config, latest_monitoring_report(config, s3), manifests))
    return output
