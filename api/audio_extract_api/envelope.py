"""The success envelope (failures are rendered by ``errors``)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


def ok(
    data: Any, status_code: int = 200, message: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "data": data}
    if message:
        body["message"] = message
    return JSONResponse(body, status_code=status_code, headers=headers)
