"""The contract tests of test_e2e_api.py again, on a release whose store is a volume: clients see
the same behaviour whichever store the chart is given (the other modules run on the S3 store)."""

from __future__ import annotations

from test_e2e_api import *  # noqa: F403 - the same tests, collected again with this module's release

STORE = "volume"
