"""The environment's ``monitoring`` keys as the drift monitor takes them: one reading for the
Workflow stack's DriftMonitor, the Serving stack's opt-in Model Monitor and `mlstack local
monitor`, so the program is told the same in AWS and locally (docs/monitoring.md)."""

from __future__ import annotations

from mlstack.config import EnvironmentConfig
from mlstack.constructs.drift_monitor import MonitorSettings


def checked_baseline(config: EnvironmentConfig, baselines: str) -> str:
    """``monitoring.baseline``, which must be a prefix under the data bucket's ``baselines``
    (what the workflow's Baseline data job writes); else the synth fails naming the key."""
    baseline = config.monitoring.baseline
    if not baseline.startswith(baselines):
        raise ValueError(
            f"environment '{config.name}': monitoring.baseline {baseline!r}: expected a prefix "
            f"under '{baselines}' of the data bucket, such as '{baselines}latest/' (see "
            "docs/monitoring.md)"
        )
    return baseline


def monitor_settings(config: EnvironmentConfig) -> MonitorSettings:
    """What the ``monitor`` program is told: the records a window needs, the drift thresholds,
    the quality metric (the problem type's default when the key is left out) and its alarm
    threshold."""
    monitoring = config.monitoring
    return MonitorSettings(
        min_records=monitoring.min_records,
        psi_threshold=monitoring.psi_threshold,
        p_value=monitoring.p_value,
        drifted_share_percent=monitoring.drifted_share_alarm_percent,
        quality_metric=config.quality_metric(),
        quality_threshold=monitoring.quality_threshold,
    )
