"""Every format and tier through the worker on real ffmpeg; overrides, copy path, metadata."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest

from audio_extract_common.formats import Format, Quality
from audio_extract_worker.quality import QUALITY, VORBIS_ABR_KBPS
from support.media_files import (
    SOURCE_SECONDS,
    Media,
    audio_payload_kbps,
    decoded_seconds,
    ffmpeg,
    ffprobe_json,
)
from support.worker_runs import InProcess, Run, job_spec

CODEC = {"mp3": "mp3", "aac": "aac", "flac": "flac", "wav": "pcm_s16le", "ogg": "vorbis", "opus": "opus"}
CONTAINER = {"mp3": "mp3", "aac": "aac", "flac": "flac", "wav": "wav", "ogg": "ogg", "opus": "ogg"}


def probe_output(run: Run) -> tuple[dict, dict]:
    data = ffprobe_json(run.output_path, "-show_format", "-show_streams")
    (stream,) = data["streams"]
    return data["format"], stream


@pytest.mark.parametrize("quality", list(Quality))
@pytest.mark.parametrize("fmt", list(Format))
def test_format_and_tier(fmt: Format, quality: Quality, media: Media, worker: InProcess) -> None:
    run = worker.run(job_spec(worker.upload(media.pcm_mkv), {"format": fmt.value, "quality": quality.value}))
    assert run.result.error is None, run.result.error
    out = run.result.output
    assert out is not None and out.transcoded is (fmt != Format.wav)  # pcm_s16le → wav is a copy
    assert out.filename == f"{run.result.output.path.split('/')[-1]}" == f"job_00c0ffee00c0ffee.{fmt.value}"
    container, stream = probe_output(run)
    assert stream["codec_name"] == CODEC[fmt.value]
    assert container["format_name"] == CONTAINER[fmt.value]
    assert abs(decoded_seconds(run.output_path) - SOURCE_SECONDS) <= 0.1
    assert abs(out.duration - SOURCE_SECONDS) <= 0.1  # type: ignore[operator]
    tier = QUALITY[fmt][quality]
    if tier.nominal_kbps:
        kbps = audio_payload_kbps(run.output_path)
        assert tier.min_kbps <= kbps <= tier.max_kbps, f"{fmt}/{quality}: {kbps:.1f} kbps"  # type: ignore[operator]
    if fmt == Format.wav:
        assert int(stream["bit_rate"]) == 48000 * 2 * 16
    assert run.store_files() == [run.output_path]
    assert run.scratch_files() == []


@pytest.mark.parametrize(
    ("fmt", "bitrate", "codec"),
    [
        ("mp3", "128k", "mp3"),
        ("aac", "64k", "aac"),
        ("ogg", "100k", "vorbis"),
        ("opus", "48k", "opus"),
    ],
)
def test_bitrate_override(fmt: str, bitrate: str, codec: str, media: Media, worker: InProcess) -> None:
    run = worker.run(
        job_spec(worker.upload(media.pcm_mkv), {"format": fmt, "quality": "extreme", "bitrate": bitrate})
    )
    _, stream = probe_output(run)
    assert stream["codec_name"] == codec
    target = int(bitrate[:-1])
    kbps = audio_payload_kbps(run.output_path)
    assert abs(kbps - target) <= 0.15 * target, f"{fmt} {bitrate}: {kbps:.1f} kbps"


def test_copy_path_aac_in_mp4(media: Media, worker: InProcess) -> None:
    """AAC 256k in MP4 → .aac: copied (transcoded false), same audio packets, ADTS container."""
    run = worker.run(job_spec(worker.upload(media.aac_mp4), {"format": "aac", "quality": "high"}))
    out = run.result.output
    assert out is not None and out.transcoded is False
    container, stream = probe_output(run)
    assert (container["format_name"], stream["codec_name"]) == ("aac", "aac")
    source_packets = ffprobe_json(media.aac_mp4, "-select_streams", "a:0", "-show_entries", "packet=size")
    output_packets = ffprobe_json(run.output_path, "-select_streams", "a:0", "-show_entries", "packet=size")
    adts_header = 7  # each ADTS frame is the MP4 sample plus a 7-byte header
    assert [int(p["size"]) - adts_header for p in output_packets["packets"]] == [
        int(p["size"]) for p in source_packets["packets"]
    ]
    assert abs(decoded_seconds(run.output_path) - SOURCE_SECONDS) <= 0.1


def test_copy_path_when_source_meets_tier(media: Media, worker: InProcess) -> None:
    run = worker.run(job_spec(worker.upload(media.aac_low_mp4), {"format": "aac", "quality": "low"}))
    assert run.result.output is not None and run.result.output.transcoded is False


@pytest.mark.parametrize(
    ("source", "output"),
    [
        ("aac_low_mp4", {"format": "aac", "quality": "medium"}),  # 96k source, 128k tier: re-encode
        ("aac_mp4", {"format": "aac", "quality": "medium", "normalize": True}),
        ("aac_mp4", {"format": "aac", "bitrate": "160k"}),
    ],
)
def test_copy_path_not_taken(source: str, output: dict, media: Media, worker: InProcess) -> None:
    run = worker.run(job_spec(worker.upload(getattr(media, source)), output))
    assert run.result.output is not None and run.result.output.transcoded is True
    _, stream = probe_output(run)
    assert stream["codec_name"] == "aac"
    nominal = int(output.get("bitrate", "128k")[:-1])
    assert abs(audio_payload_kbps(run.output_path) - nominal) <= 0.1 * nominal


@pytest.mark.parametrize("preserve", [True, False])
def test_preserve_metadata(preserve: bool, media: Media, worker: InProcess) -> None:
    run = worker.run(job_spec(worker.upload(media.aac_mp4), {"format": "mp3", "preserveMetadata": preserve}))
    data = ffprobe_json(run.output_path, "-show_entries", "format_tags:stream_tags")
    tags = {**data["format"].get("tags", {}), **data["streams"][0].get("tags", {})}
    assert (tags.get("title") == "Source Title") is preserve


def test_filename_option_and_rerun_leaves_one_file(media: Media, worker: InProcess) -> None:
    spec = job_spec(worker.upload(media.aac_mp4), {"format": "opus"}, {"filename": "episode-01"})
    first = worker.run(spec)
    second = worker.run(spec)  # a pod that runs twice
    assert first.result.output and second.result.output
    assert second.result.output.path == "job_00c0ffee00c0ffee/episode-01.opus"
    assert second.store_files() == [second.output_path]


@pytest.mark.parametrize("rate", [None, 22050])  # a copy and an encode
def test_small_wav_stays_plain_riff(rate: int | None, media: Media, worker: InProcess) -> None:
    """RF64 is only written past 4 GiB: a small output keeps a RIFF header any reader takes."""
    run = worker.run(job_spec(worker.upload(media.pcm_mkv), {"format": "wav", "sampleRate": rate}))
    assert run.result.output is not None, run.result.error
    head = run.output_path.read_bytes()[:12]
    assert head[:4] == b"RIFF" and head[8:] == b"WAVE"
    assert int.from_bytes(head[4:8], "little") == run.output_path.stat().st_size - 8
    with wave.open(str(run.output_path)) as w:
        assert abs(w.getnframes() / w.getframerate() - SOURCE_SECONDS) <= 0.01


@pytest.mark.parametrize(
    ("rate", "channels", "output"),
    [
        (8000, 1, {"format": "ogg", "bitrate": "45k"}),  # libvorbis: 8-42k at 8 kHz mono
        (8000, 1, {"format": "ogg", "bitrate": "500k"}),
        (22050, 2, {"format": "ogg", "bitrate": "192k"}),  # 30-180k at 22.05 kHz stereo
        (48000, 2, {"format": "ogg", "bitrate": "320k", "channels": 1}),  # 32-240k at 48 kHz mono
        (48000, 2, {"format": "ogg", "bitrate": "128k", "sampleRate": 8000}),  # 12-84k at 8 kHz stereo
        (8000, 1, {"format": "opus", "bitrate": "510k"}),  # libopus: at most 256k a channel
    ],
)
def test_bitrate_override_the_encoder_cannot_take_is_clamped(
    rate: int, channels: int, output: dict, tmp_path: Path, worker: InProcess
) -> None:
    """The API checks a bitrate before the source is probed: the encoder's range at the output's
    rate and channel count is narrower."""
    source = tmp_path / "noise.wav"
    ffmpeg("-f", "lavfi", "-i", f"anoisesrc=r={rate}:d=2:a=0.3", "-ac", str(channels), str(source))
    run = worker.run(job_spec(worker.upload(source), output))
    assert run.result.output is not None, run.result.error
    assert run.result.output.bitrate is not None


def test_vorbis_abr_table_is_what_libvorbis_takes() -> None:
    def takes(channels: int, rate: int, kbps: int) -> bool:
        args = ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", f"anoisesrc=r={rate}:d=0.1"]
        args += ["-ac", str(channels), "-c:a", "libvorbis", "-b:a", f"{kbps}k", "-f", "null", "-"]
        return subprocess.run(args, capture_output=True, timeout=30).returncode == 0

    for channels, rates in VORBIS_ABR_KBPS.items():
        for rate, (low, high) in rates.items():
            assert takes(channels, rate, low) and takes(channels, rate, high), (channels, rate)
            assert not takes(channels, rate, low - 1), (channels, rate)
            assert not takes(channels, rate, high + 1), (channels, rate)
