"""EBU R128 normalisation: measure with ``ebur128``, then apply one linear gain with ``loudnorm``.

Pass 1 uses the ``ebur128`` filter, several times cheaper than a ``loudnorm`` measuring pass,
which measures at 192 kHz (docs/benchmarks.md, "Encoder and filter choices"). Its summary
gives everything loudnorm's linear mode needs: integrated loudness, its gate threshold, LRA
and true peak.

Pass 2 is ``loudnorm`` with ``linear=true``. loudnorm silently switches to *dynamic* mode (a
compressor that upsamples to 192 kHz) unless all measured values are present and non-zero,
the target LRA covers the measured LRA and the linear gain keeps the true peak at or under
the target (``af_loudnorm.c``, ``init``). :func:`normalize_filter` applies that same rule
before ffmpeg runs, so the fallback never happens unnoticed:
- ``measured_LRA`` 0 (a steady signal) is passed as 0.1: it is only a mode switch in linear
  mode and the gain does not depend on it;
- the target LRA is raised to the measured LRA (it is unused in linear mode);
- when the gain would push the true peak over -1 dBTP, loudnorm cannot be linear: the same
  gain is applied with ``volume`` and the peaks are caught by ``alimiter`` under -1 dBTP
  (with margin, since alimiter limits sample peaks). Limiting lowers the loudness by an amount
  that depends on how much of it sat in the peaks, so the result of this route is measured
  again (``ebur128`` after the filter, a cheap pass) and the gain corrected until it is within
  0.3 LU (:func:`limiter_correction`; at most 3 corrections). Only sources whose peaks stand far
  above their loudness take this route.
- measured values outside loudnorm's option ranges (a source louder than 0 LUFS) take the
  same gain + limiter route, since loudnorm would refuse to start;
- a silent source (integrated loudness at the -70 LUFS gate) is left as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

TARGET_I = -23.0
TARGET_TP = -1.0
DEFAULT_LRA = 7.0
MAX_LRA = 50.0
SILENT_LUFS = -69.5
LIMITER_MARGIN_DB = 1.5
"""Extra headroom below the true-peak target for the sample-peak limiter."""


@dataclass(frozen=True)
class Loudness:
    integrated: float
    """LUFS."""
    threshold: float
    """Relative gate threshold of the integrated measurement, LUFS."""
    lra: float
    """Loudness range, LU."""
    true_peak: float
    """dBTP (dBFS of the 4x oversampled signal)."""


_NUMBER = r"(-?(?:\d+(?:\.\d+)?|inf))"
_SUMMARY = re.compile(
    r"Integrated loudness:\s*I:\s*" + _NUMBER + r"\s*LUFS\s*Threshold:\s*" + _NUMBER + r"\s*LUFS"
    r".*?Loudness range:\s*LRA:\s*" + _NUMBER + r"\s*LU"
    r".*?True peak:\s*Peak:\s*" + _NUMBER + r"\s*dBFS",
    re.DOTALL,
)


def _float(text: str) -> float:
    value = float(text)
    return -99.0 if math.isinf(value) else value


def parse_ebur128(stderr: str) -> Loudness:
    """The summary ffmpeg prints after an ``ebur128=peak=true`` pass (the last one wins)."""
    matches = list(_SUMMARY.finditer(stderr))
    if not matches:
        raise ValueError("no ebur128 summary in ffmpeg's output")
    i, thresh, lra, tp = (_float(g) for g in matches[-1].groups())
    return Loudness(integrated=i, threshold=thresh, lra=lra, true_peak=tp)


MEASURE_FILTER = "ebur128=peak=true:framelog=verbose"
"""``framelog=verbose`` keeps the 10-per-second frame lines out of the info log; only the summary remains."""


def normalize_filter(m: Loudness, correction: float = 0.0) -> str | None:
    """The pass-2 filter that brings ``m`` to -23 LUFS / -1 dBTP, or None for a silent source.

    ``correction`` (dB) is added to the gain of the limiter route, found by measuring its result
    (:func:`limiter_correction`): limiting the peaks lowers the loudness a little, by an amount that
    depends on the material.
    """
    if m.integrated <= SILENT_LUFS:
        return None
    gain = TARGET_I - m.integrated
    measured_lra = max(m.lra, 0.1)
    target_lra = min(max(DEFAULT_LRA, measured_lra), MAX_LRA)
    in_range = (
        -99 <= m.integrated <= 0
        and -99 <= m.threshold <= 0
        and -99 <= m.true_peak <= 99
        and measured_lra <= 99
    )  # loudnorm refuses the run ("out of range") outside these
    if in_range and m.true_peak + gain <= TARGET_TP and measured_lra <= target_lra:
        return (
            f"loudnorm=I={TARGET_I:g}:TP={TARGET_TP:g}:LRA={target_lra:.1f}"
            f":measured_I={m.integrated:.2f}:measured_TP={m.true_peak:.2f}"
            f":measured_LRA={measured_lra:.2f}:measured_thresh={m.threshold:.2f}"
            ":offset=0:linear=true:print_format=none"
        )
    limit = 10 ** ((TARGET_TP - LIMITER_MARGIN_DB) / 20)
    return f"volume={gain + correction:.2f}dB,alimiter=limit={limit:.4f}:attack=1:release=50:level=false"


CORRECTION_TOLERANCE = 0.3
"""LU: the limiter route's result is re-measured until it is this close to the target."""
MAX_CORRECTIONS = 3
MAX_STEP_RATIO = 2.0
"""A correction step is at most this many times the error it corrects."""


def limiter_correction(measure: Callable[[float], float]) -> float:
    """The limiter route's gain correction (dB): ``measure(correction)`` runs the route with that
    correction and returns the integrated loudness of its result.

    Limiting makes loudness rise by less than the gain (down to nothing, or even fall, when sparse
    loud bursts carry the loudness), so each step divides the error by the loudness gained per dB
    over the last two rounds (a secant step: up to ``MAX_STEP_RATIO`` times the error where the
    limiter holds the loudness back, less than the error after an overshoot). A round that lands
    no closer than the best so far ends the search, and the correction returned is always a
    measured one: the closest to the target.
    """
    rounds: list[tuple[float, float]] = []  # (correction, error) of the rounds that came closer
    correction = 0.0
    for _ in range(1 + MAX_CORRECTIONS):
        error = TARGET_I - measure(correction)
        if rounds and abs(error) >= abs(rounds[-1][1]):
            break
        rounds.append((correction, error))
        if abs(error) <= CORRECTION_TOLERANCE:
            break
        slope = 1.0
        if len(rounds) > 1:
            (c0, e0), (c1, e1) = rounds[-2:]
            slope = (e0 - e1) / (c1 - c0)  # > 0: each kept round came closer
        correction += error / max(slope, 1 / MAX_STEP_RATIO)
    return rounds[-1][0]


def is_linear(filter_text: str | None) -> bool:
    return bool(filter_text) and filter_text.startswith("loudnorm=")  # type: ignore[union-attr]
