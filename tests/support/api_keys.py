"""The API keys of the API's in-process tests and how a keys file names them (its SHA-256 digest).
Tenants: main (``KEY``, ``READ_ONLY_KEY``, ``SIBLING_KEY``), other (``OTHER_KEY``), ops (``ADMIN_KEY``)."""

from __future__ import annotations

import hashlib

KEY = "axk_component-test-key"
READ_ONLY_KEY = "axk_read-only-key"
OTHER_KEY = "axk_second-key"
SIBLING_KEY = "axk_main-tenant-ci-key"
ADMIN_KEY = "axk_admin-key"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
