"""The object store's settings alone, without a server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audio_extract_common.objectstore import S3Settings


def test_keys_come_in_pairs():
    with pytest.raises(ValidationError, match="both"):
        S3Settings(bucket="b", access_key_id="id")
