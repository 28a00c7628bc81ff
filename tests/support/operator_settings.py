"""The operator's settings named as their environment variables are, for the tests and benchmarks.

A field of a settings group is ``<group>__<field>`` (``admission__max_running`` is
``AUDIO_EXTRACT_OPERATOR_ADMISSION__MAX_RUNNING``), a top-level one just its name, so a test
names a setting the same way whether it builds ``Settings`` in process (``operator_settings``)
or starts the operator as a subprocess (``environment``). A name the settings do not have fails
at once instead of being ignored as an unknown variable would be.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel

from audio_extract_operator.settings import ENV_PREFIX, NESTED, Settings


def _check(name: str) -> None:
    model: type[BaseModel] = Settings
    parts = name.split(NESTED)
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            raise KeyError(f"the operator has no setting {name!r}")
        if depth < len(parts) - 1:
            models = [t for t in (field.annotation, *get_args(field.annotation)) if _is_model(t)]
            if not models:
                raise KeyError(f"the operator's setting {NESTED.join(parts[: depth + 1])!r} is not a group")
            model = models[0]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def nested(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``{"admission__max_running": 2}`` as ``Settings`` takes it: ``{"admission": {"max_running": 2}}``."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        _check(name)
        *groups, leaf = name.split(NESTED)
        target = out
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = value
    return out


def operator_settings(**fields: Any) -> Settings:
    """``Settings`` from these fields only (and the environment's ``AUDIO_EXTRACT_OPERATOR_*``)."""
    return Settings(**nested(fields))


def environment(fields: Mapping[str, Any]) -> dict[str, str]:
    """The environment variables that set these fields (None: left unset)."""
    env: dict[str, str] = {}
    for name, value in fields.items():
        _check(name)
        if value is None:
            continue
        env[ENV_PREFIX + name.upper()] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return env
