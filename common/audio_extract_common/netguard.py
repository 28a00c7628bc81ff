"""The address guard, by the names it had before it was split by what each part needs:
``address_policy`` (the rules; standard library only), ``httpx_guard`` (httpx clients and URL
checks) and ``aiohttp_guard`` (aiohttp sessions). Import from those. A name is loaded from its
module when asked for, so that importing this one loads neither HTTP client by itself."""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    **dict.fromkeys(
        (
            "AllowList",
            "BlockedAddress",
            "IPAddress",
            "IPNetwork",
            "METADATA_ADDRESSES",
            "NetguardError",
            "ResolveError",
            "UnsupportedURL",
            "embedded_ipv4",
            "is_allowed",
            "is_public_address",
            "resolve_checked",
        ),
        "address_policy",
    ),
    **dict.fromkeys(
        (
            "GuardedTransport",
            "ascii_host",
            "default_port",
            "guarded_async_client",
            "guarded_client",
            "parse_url",
            "resolve_url_checked",
        ),
        "httpx_guard",
    ),
    **dict.fromkeys(("GuardedResolver", "Lookup", "guarded_session"), "aiohttp_guard"),
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __package__), name)
