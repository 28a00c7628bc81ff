"""Value rules shared by the ExtractionBatch spec and the API's request bodies: what a URL, a
sample rate, a channel count or a number of seconds may be, each with the CEL rule or JSON Schema
the CRD carries for it, so the API server refuses what the models refuse."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt
from pydantic.config import JsonValue

from .formats import CHANNELS, SAMPLE_RATES

MAX_URL_LENGTH = 2048
_URL_RE = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)
_PORT_RANGE = "0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# Written once for both the model (Python's re) and the CRD (CEL's RE2): the same text in both.
_HAS_PORT = "(?i)^https?://[^/?#]*:[0-9]+([/?#].*)?$"
_PORT_IN_RANGE = f"(?i)^https?://[^/?#]*:{_PORT_RANGE}([/?#].*)?$"


def check_url_syntax(url: str) -> str:
    """http(s) only, at most 2048 characters, no credentials: the URL's text only. Where its host
    resolves to is the address guard's check (``address_policy.resolve_url_checked``)."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL is longer than {MAX_URL_LENGTH} characters")
    if not _URL_RE.match(url):
        raise ValueError("URL must be http:// or https:// with a host")
    authority = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
    if "@" in authority:
        raise ValueError("URL must not contain credentials")
    if re.match(_HAS_PORT, url) and not re.match(_PORT_IN_RANGE, url):
        raise ValueError("URL port must be 1 to 65535")
    return url


HttpUrl = Annotated[str, AfterValidator(check_url_syntax), Field(max_length=MAX_URL_LENGTH)]

URL_CEL: list[JsonValue] = [
    {"rule": "self.matches('^(?i)https?://[^\\\\s/?#]+')", "message": "must be an http:// or https:// URL"},
    {"rule": "!self.matches('^[^:]+://[^/?#]*@')", "message": "must not contain credentials"},
    {
        "rule": f"!self.matches('{_HAS_PORT}') || self.matches('{_PORT_IN_RANGE}')",
        "message": "port must be 1 to 65535",
    },
]


class SpecModel(BaseModel):
    """A model of the spec: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def one_of(allowed: tuple[int, ...]) -> AfterValidator:
    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return AfterValidator(check)


# Strict: a JSON `true` or `"44100"` is not a number of anything.
SampleRate = Annotated[StrictInt, one_of(SAMPLE_RATES), Field(json_schema_extra={"enum": list(SAMPLE_RATES)})]
Channels = Annotated[StrictInt, one_of(CHANNELS), Field(json_schema_extra={"enum": list(CHANNELS)})]
Seconds = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]
