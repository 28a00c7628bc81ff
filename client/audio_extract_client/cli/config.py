"""Where the API is and which key to use: flags, then the environment, then ``.local/dev.env``.

``make dev`` writes ``.local/dev.env`` (``KEY=value`` lines, ``#`` comments) in the repository; the
command finds it from the current directory or any directory above, so it works anywhere in a
checkout with nothing to export.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

URL_VAR = "AUDIO_EXTRACT_API_URL"
KEY_VAR = "AUDIO_EXTRACT_API_KEY"
DEV_ENV = Path(".local") / "dev.env"


class ConfigError(Exception):
    """The API's URL or key is nowhere to be found."""


@dataclass(frozen=True)
class Config:
    api_url: str
    api_key: str


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines (optionally ``export``-ed or quoted); comments, blank lines and values that
    refer to other variables (``PATH=...:$PATH``, a shell's business) are left out."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif "$" in value:
            continue
        out[key.strip()] = value
    return out


def find_dev_env(start: Path) -> Path | None:
    """``.local/dev.env`` in ``start`` or the nearest directory above it that has one."""
    for directory in (start, *start.parents):
        candidate = directory / DEV_ENV
        if candidate.is_file():
            return candidate
    return None


def resolve(
    api_url: str | None,
    api_key: str | None,
    environ: Mapping[str, str],
    dev_env: Mapping[str, str],
) -> Config:
    """Each value from the first place that has it: the flag, the environment, ``dev.env``."""
    url = api_url or environ.get(URL_VAR) or dev_env.get(URL_VAR)
    key = api_key or environ.get(KEY_VAR) or dev_env.get(KEY_VAR)
    missing = [
        name
        for name, value in ((f"--api-url or {URL_VAR}", url), (f"--api-key or {KEY_VAR}", key))
        if not value
    ]
    if missing:
        raise ConfigError(f"set {' and '.join(missing)} (or run `make dev`, which writes {DEV_ENV})")
    assert url and key
    return Config(url.rstrip("/"), key)


def load(api_url: str | None, api_key: str | None, env_file: Path | None = None) -> Config:
    """``resolve`` with this process's environment and the ``dev.env`` found from the current directory."""
    path = env_file or find_dev_env(Path.cwd())
    dev_env = parse_env_file(path.read_text()) if path and path.is_file() else {}
    return resolve(api_url, api_key, os.environ, dev_env)
