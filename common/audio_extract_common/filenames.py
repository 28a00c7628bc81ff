"""Output file names: ``options.filename`` is sanitized, never refused (docs/contract.md §2), and the
download's ``Content-Disposition`` carries the name in a form every client reads (RFC 6266).

What sanitizing does, and why:
- Unicode is kept (NFC-normalized, so one name has one spelling on disk and in the header);
- path separators (``/``, ``\\``) join what they separated with ``_``, and ``.``/``..`` components
  go (``../../etc/passwd`` → ``etc_passwd``); the characters Windows refuses in names (``<>:"|?*``)
  become ``_``: a name never leaves its directory, and a downloaded file can be saved anywhere;
- control and format characters (C0/C1, line separators, bidirectional overrides that could
  make ``evil\\u202egpj.mp3`` display as ``evil3pm.jpg``) are removed;
- leading dots and spaces, and trailing dots and spaces, go (no hidden files, no ``..``,
  Windows drops trailing ones anyway);
- a name that is a reserved device name on Windows (``CON``, ``NUL``, ``COM1``…, with or without
  an extension) is dropped, and the default name is used instead;
- a name already ending in the output's extension does not get it twice (``talk.mp3`` → ``talk.mp3``);
- the result is cut to :data:`MAX_NAME_BYTES` of UTF-8, on a character boundary, so the name, its
  extension and the store's temporary suffix fit a 255-byte file-name limit.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

MAX_NAME_BYTES = 200
"""UTF-8 bytes of the name before its extension; the store writes ``.<name>.<ext>.<random>.part``
while a file is written, and file systems take 255 bytes per name."""
MAX_RAW_LENGTH = 1024
"""Characters ``options.filename`` may hold before sanitizing (a bound on input, not a rule on names)."""

_SEPARATORS = re.compile(r"[/\\]+")
_FORBIDDEN = re.compile(r'[<>:"|?*]+')
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
_ATTR_CHARS = "!#$&+-.^_`|~"
"""RFC 5987 ``attr-char`` punctuation: left as is in ``filename*``."""


def _is_reserved(name: str) -> bool:
    stem = name.split(".", 1)[0].rstrip(" ")
    return stem.upper() in _RESERVED


def _cut(name: str, max_bytes: int) -> str:
    encoded = name.encode()
    if len(encoded) <= max_bytes:
        return name
    return encoded[:max_bytes].decode(errors="ignore")


def sanitize(name: str, extension: str = "") -> str:
    """``name`` made safe as a file name (see the module's docstring); "" when nothing usable is left.

    ``extension`` (without the dot): the output's own; a name ending in it loses that ending.
    """
    text = unicodedata.normalize("NFC", name)
    text = "".join(c for c in text if unicodedata.category(c) not in _REMOVED_CATEGORIES)
    text = "_".join(part for part in _SEPARATORS.split(text) if part.strip(" ."))
    text = _FORBIDDEN.sub("_", text)
    if extension and text.lower().endswith(f".{extension.lower()}"):
        text = text[: -len(extension) - 1]
    text = text.strip(" .")
    text = _cut(text, MAX_NAME_BYTES).rstrip(" .")
    if not text or _is_reserved(text):
        return ""
    return text


def ascii_fallback(filename: str) -> str:
    """An ASCII spelling for ``filename="…"``: accents dropped (é → e), other characters → ``_``;
    so are ``"`` and ``\\`` (quoted-string escapes) and ``%`` (some clients percent-decode it)."""
    decomposed = unicodedata.normalize("NFKD", filename)
    out = []
    for c in decomposed:
        if unicodedata.combining(c):
            continue
        out.append(c if " " <= c <= "~" and c not in '"\\%' else "_")
    return "".join(out) or "audio"


def content_disposition(filename: str) -> str:
    """``attachment; filename="…"``, plus ``filename*=UTF-8''…`` (RFC 6266 §4.3, RFC 8187) when the
    name is not plain ASCII: clients that read ``filename*`` get the real name, others the fallback."""
    fallback = ascii_fallback(filename)
    header = f'attachment; filename="{fallback}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe=_ATTR_CHARS)}"
    return header
