"""What a replica that leads nothing exports: its leader gauge, and no queue of a registry it does
not keep (a standby replica's, or a stopped operator's, would be stale)."""

from __future__ import annotations

from audio_extract_operator import metrics


def test_standby_and_stopped_operators_export_no_queue() -> None:
    metrics.watch(None, None)
    text = metrics.generate_latest(metrics.REGISTRY).decode()
    assert "audio_extract_operator_leader " in text
    assert "\naudio_extract_operator_jobs{" not in text
