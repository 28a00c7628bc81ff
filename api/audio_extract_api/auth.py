"""API keys: ``X-API-Key`` checked against SHA-256 digests, never plaintext; each key's tenant.

Key store formats (both re-read every ``api_keys_reload_seconds``, so rotation needs no restart):

- a file of lines ``<key-id> <sha256-hex> [scopes] [tenant=<name>]`` (``#`` comments and blank
  lines ignored);
- a directory, e.g. a mounted Secret: one file per key id, holding ``<sha256-hex> [scopes]
  [tenant=<name>]`` (dot-files such as the Secret volume's ``..data`` links are skipped).

Scopes are a comma list of ``read``, ``write`` and ``admin``; absent means ``read,write``. A key
without ``write`` gets 403 FORBIDDEN on the routes that create or cancel work. ``admin`` implies
both and reaches every tenant's work (docs/contract.md §7: it sees and cancels everything).

The tenant is the key's id unless ``tenant=`` names another, so entries written before tenants
existed keep working, each key its own tenant. A tenant name is a label value (it is written into
the batch's ``audioextract.io/tenant`` label): 1-63 letters, digits, ``-``, ``_``, ``.``,
beginning and ending with a letter or digit. An entry whose tenant is not one is ignored, loudly.

Keys are high-entropy random strings, so a fast hash is enough (a slow KDF would add latency to
every request for no gain). The presented key is hashed and compared with ``hmac.compare_digest``
against every digest, so timing reveals neither which key matched nor how much of it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from audio_extract_common.ids import TENANT_RE

from .errors import Forbidden, RateLimited, Unauthorized

log = logging.getLogger(__name__)

SCOPES = frozenset({"read", "write", "admin"})
DEFAULT_SCOPES = frozenset({"read", "write"})
KEY_PREFIX = "axk_"
TENANT_FIELD = "tenant="


@dataclass(frozen=True)
class Principal:
    key_id: str
    scopes: frozenset[str]
    tenant: str

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden()

    def sees(self, tenant: str | None) -> bool:
        """Whether work of ``tenant`` (None: a batch without a tenant label) is this key's to see."""
        return self.admin or (tenant is not None and tenant == self.tenant)


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    digest: bytes
    scopes: frozenset[str]
    tenant: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random key with a recognisable prefix (secret scanners can spot leaks)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _parse_entry(key_id: str, fields: list[str]) -> KeyEntry | None:
    if not fields:
        return None
    hexdigest = fields[0].lower()
    if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        log.warning("api key %r: not a SHA-256 hex digest, ignored", key_id)
        return None
    tenants = [f[len(TENANT_FIELD) :] for f in fields[1:] if f.startswith(TENANT_FIELD)]
    scope_lists = [f.split(",") for f in fields[1:] if not f.startswith(TENANT_FIELD)]
    tenant = tenants[-1] if tenants else key_id
    if not TENANT_RE.match(tenant):
        log.warning(
            "api key %r: tenant %r is not 1-63 letters, digits, '-', '_' or '.' beginning and "
            "ending with a letter or digit; key ignored",
            key_id,
            tenant[:80],
        )
        return None
    named = {s for scopes in scope_lists for s in scopes} if scope_lists else DEFAULT_SCOPES
    scopes = frozenset(s for s in named if s in SCOPES)
    if "admin" in scopes:
        scopes |= DEFAULT_SCOPES
    return KeyEntry(key_id, bytes.fromhex(hexdigest), scopes, tenant)


def parse_keys(path: Path) -> list[KeyEntry]:
    entries: list[KeyEntry] = []
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.name.startswith(".") or not f.is_file():
                continue
            e = _parse_entry(f.name, f.read_text().split())
            if e:
                entries.append(e)
    else:
        for line in path.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                e = _parse_entry(fields[0], fields[1:])
                if e:
                    entries.append(e)
    return entries


class KeyStore:
    """The current set of key digests, re-read when older than ``reload_seconds``."""

    def __init__(self, path: Path | None, reload_seconds: float) -> None:
        self.path = path
        self.reload_seconds = reload_seconds
        self._entries: list[KeyEntry] = []
        self._loaded_at = -math.inf
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._loaded_at < self.reload_seconds:
            return
        with self._lock:
            if now - self._loaded_at < self.reload_seconds:
                return
            if self.path is not None:
                try:
                    self._entries = parse_keys(self.path)
                except OSError as e:
                    # Keep the last good set: a Secret volume swap is briefly in flux.
                    log.warning("cannot read API keys from %s: %s", self.path, e)
            self._loaded_at = now

    def authenticate(self, presented: str | None) -> Principal:
        if not presented:
            raise Unauthorized()
        self._refresh()
        candidate = hashlib.sha256(presented.encode()).digest()
        found: Principal | None = None
        for entry in self._entries:
            # No early exit: every digest is compared.
            if hmac.compare_digest(candidate, entry.digest) and found is None:
                found = Principal(entry.key_id, entry.scopes, entry.tenant)
        if found is None:
            raise Unauthorized()
        return found


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Per-key token bucket, in process (each replica limits on its own: document xreplicas)."""

    per_minute: int
    burst: int = 0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def check(self, key_id: str, now: float | None = None) -> None:
        if self.per_minute <= 0:
            return
        now = time.monotonic() if now is None else now
        size = float(self.burst or self.per_minute)
        rate = self.per_minute / 60.0
        b = self._buckets.get(key_id)
        if b is None:
            b = self._buckets[key_id] = _Bucket(size, now)
        b.tokens = min(size, b.tokens + (now - b.updated) * rate)
        b.updated = now
        if b.tokens < 1.0:
            retry = max(1, math.ceil((1.0 - b.tokens) / rate))
            raise RateLimited(headers={"Retry-After": str(retry)})
        b.tokens -= 1.0
