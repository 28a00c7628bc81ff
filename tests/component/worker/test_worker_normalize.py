"""EBU R128 normalisation: the output lands at -23 LUFS (±1 LU) and under the true-peak ceiling."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_extract_worker import job
from audio_extract_worker.loudness import normalize_filter
from support.media_files import Media, ffmpeg, loudness
from support.worker_runs import InProcess, job_spec

NOISE = "{a}*(random(0)*2-1){extra}|{a}*(random(1)*2-1){extra}"
# Noise low-passed at 6 kHz, closer to programme material than full-band white noise, whose
# energy above the lossy encoders' low-pass would be cut after measuring.
MUSICLIKE = ",lowpass=f=6000"
SOURCES = {
    # name: (aevalsrc expression, post filter, output format, pass-2 filter kind)
    "quiet": (NOISE.format(a=0.01, extra=""), MUSICLIKE, "mp3", "loudnorm"),
    "loud": (NOISE.format(a=0.6, extra=""), MUSICLIKE, "opus", "loudnorm"),
    # louder than 0 LUFS: outside loudnorm's measured_I range, so gain + limiter
    "very_loud": (NOISE.format(a=0.9, extra=""), "", "flac", "volume"),
    # quiet noise with sharp clicks: +gain would push the peaks over -1 dBTP, so loudnorm could
    # not stay linear; the worker switches to gain + limiter and must still hit the target
    "peaky": (NOISE.format(a=0.01, extra="+0.9*lt(mod(t\\,1)\\,0.0001)"), MUSICLIKE, "aac", "volume"),
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_normalize_reaches_target(name: str, media: Media, worker: InProcess) -> None:
    expr, post, fmt, kind = SOURCES[name]
    source = media.loudness_source(name, expr, post)
    before = loudness(source)
    assert abs(before.integrated + 23) > 5, before  # the source really is off target
    assert normalize_filter(before).startswith(kind)  # type: ignore[union-attr]
    run = worker.run(job_spec(worker.upload(source), {"format": fmt, "normalize": True}))
    assert run.result.output is not None, run.result.error
    assert run.result.output.transcoded is True
    after = loudness(run.output_path)
    assert abs(after.integrated - -23.0) <= 1.0, (name, before, after)
    assert after.true_peak <= -0.5, (name, before, after)  # -1 dBTP target; lossy coding adds a little


REMIX = {
    # name: (channel layout, channels asked for); each channel its own noise
    "surround_to_stereo": ("5.1", None),
    "stereo_to_mono": ("stereo", 1),
    "mono_to_stereo": ("mono", 2),
}


@pytest.mark.parametrize("name", list(REMIX))
def test_normalize_measures_the_remixed_channels(name: str, tmp_path: Path, worker: InProcess) -> None:
    """A downmix or upmix changes the loudness: what is measured and gained is the output's layout."""
    layout, channels = REMIX[name]
    count = {"mono": 1, "stereo": 2, "5.1": 6}[layout]
    expr = "|".join(f"0.03*(random({i})*2-1)" for i in range(count))
    source = tmp_path / f"{name}.mka"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"aevalsrc='{expr}':s=48000:d=4:c={layout}{MUSICLIKE}",
        "-c:a",
        "flac",
        str(source),
    )
    output = {"format": "flac", "normalize": True, **({"channels": channels} if channels else {})}
    run = worker.run(job_spec(worker.upload(source), output))
    assert run.result.output is not None, run.result.error
    assert run.result.output.channels == (channels or 2)
    after = loudness(run.output_path)
    assert abs(after.integrated - -23.0) <= 1.0, (name, loudness(source), after)
    assert after.true_peak <= -0.5, (name, after)


# a quiet 100 Hz tone with a 5 ms near-full-scale bump every 3 s: the bumps carry the loudness,
# and how much limiting them takes away does not follow the gain smoothly
BUMPS = "0.0097*sin(2*PI*100*t)+0.95*lt(mod(t\\,3)\\,0.005)*cos(2*PI*5*t)"


def test_limiter_route_outputs_a_measured_round(
    tmp_path: Path, worker: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limiter route's output is the round measured closest to the target, never a correction
    no pass measured."""
    measured: list[float] = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = measure(*args, **kwargs)
        if args[3] is not None:  # a round of the limiter route (not pass 1)
            measured.append(result.integrated)
        return result

    measure = job._measure
    monkeypatch.setattr(job, "_measure", spy)
    source = tmp_path / "bumps.flac"
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc='{BUMPS}':s=48000:d=9", "-c:a", "flac", str(source))
    assert normalize_filter(loudness(source)).startswith("volume")  # type: ignore[union-attr]
    run = worker.run(job_spec(worker.upload(source), {"format": "flac", "normalize": True}))
    assert run.result.output is not None, run.result.error
    best = min(measured, key=lambda lufs: abs(lufs + 23))
    after = loudness(run.output_path).integrated
    assert abs(after - best) <= 0.2, (measured, after)
