"""``options.filename`` is sanitized, never refused; downloads name the file per RFC 6266."""

from __future__ import annotations

import pytest

from audio_extract_common.filenames import MAX_NAME_BYTES, content_disposition, sanitize


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "etc_passwd"),  # never leaves its directory
        ("a/b\\c", "a_b_c"),
        ("/", ""),
        ("..", ""),
        ("...", ""),
        (".hidden", "hidden"),
        ("My Video (final)", "My Video (final)"),  # spaces and punctuation stay
        ("Café \u2013 日本語の歌", "Café \u2013 日本語の歌"),  # Unicode stays
        ("Cafe\u0301", "Café"),  # one spelling (NFC)
        ("a\x00b\x1fc\x7fd\u0085e", "abcde"),  # C0 and C1 control characters go
        ("line\nbreak\r\n", "linebreak"),
        ("evil\u202egpj.exe", "evilgpj.exe"),  # a bidirectional override could disguise the extension
        ('x:y?z*<>|"', "x_y_z_"),  # refused by Windows: replaced
        ("  trailing dots... ", "trailing dots"),
        ("CON", ""),
        ("nul.txt", ""),
        ("Com1", ""),
        ("LPT9", ""),  # reserved device names
        ("console", "console"),
        ("CONTROL.mp3", "CONTROL.mp3"),
        ("-rf", "-rf"),  # harmless: ffmpeg gets an absolute file: path, never a bare name
    ],
)
def test_sanitize(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


@pytest.mark.parametrize(
    ("raw", "ext", "clean"),
    [
        ("talk.mp3", "mp3", "talk"),
        ("talk.MP3", "mp3", "talk"),
        ("talk.mp3", "flac", "talk.mp3"),
        ("talk.mp3.mp3", "mp3", "talk.mp3"),
        (".mp3", "mp3", ""),
        ("mp3", "mp3", "mp3"),
    ],
)
def test_a_name_ending_in_the_outputs_extension_keeps_one(raw: str, ext: str, clean: str) -> None:
    assert sanitize(raw, ext) == clean


def test_long_names_are_cut_on_a_character_boundary() -> None:
    assert sanitize("a" * 1000) == "a" * MAX_NAME_BYTES
    cut = sanitize("日" * 100)  # 3 bytes each
    assert cut == "日" * (MAX_NAME_BYTES // 3) and len(cut.encode()) <= MAX_NAME_BYTES
    assert len(f".{cut}.mp3.0123456789.part".encode()) <= 255  # the store's temporary name fits


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("talk.mp3", 'attachment; filename="talk.mp3"'),  # plain ASCII: as the contract shows it
        ("My Talk (v2).mp3", 'attachment; filename="My Talk (v2).mp3"'),
        (
            "Café 日本.mp3",
            "attachment; filename=\"Cafe __.mp3\"; filename*=UTF-8''Caf%C3%A9%20%E6%97%A5%E6%9C%AC.mp3",
        ),
        ("100% sure.mp3", "attachment; filename=\"100_ sure.mp3\"; filename*=UTF-8''100%25%20sure.mp3"),
    ],
)
def test_content_disposition(name: str, header: str) -> None:
    assert content_disposition(name) == header
