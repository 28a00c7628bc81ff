"""HTTP routes: thin handlers that parse, call one function and wrap the result in the envelope."""

from __future__ import annotations

from fastapi import APIRouter

from . import batch, cancel, download, extract, status, uploads


def public_router() -> APIRouter:
    """The contract's routes, mounted under /v1 and /audio-extract/v1."""
    router = APIRouter()
    for module in (batch, extract, status, download, cancel, uploads):
        router.include_router(module.router)
    return router
