"""A real, slow DNS resolver for component tests: ``slow_dns``.

The system resolver (glibc's ``getaddrinfo``, what the address guard calls) reads its servers
from ``/etc/resolv.conf`` and offers no other way to point it elsewhere. So a test that requests
the ``slow_dns`` fixture runs in a child pytest inside new network and mount namespaces
(``unshare``; as root, or with a user namespace otherwise), where ``/etc/resolv.conf`` names
127.0.0.1 with glibc's default timeouts (5 s, 2 attempts) and ``support.slow_dns.SlowDNS`` answers
on 127.0.0.1:53 (which names it answers, and how slowly, is said there).

The outer test passes or fails with the child; where no namespace can be made it is skipped.

Also ``s3_server``: a real S3 server (SeaweedFS) started once per session (``support.s3_server``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.s3_server import S3Server, seaweedfs
from support.slow_dns import INSIDE, SlowDNS, loopback_up, run_sandboxed, sandbox_problem


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if "slow_dns" not in pyfuncitem.fixturenames or os.environ.get(INSIDE):
        return None
    problem = sandbox_problem()
    if problem:
        pytest.skip(f"needs network and mount namespaces for its own DNS server: {problem}")
    child = run_sandboxed(pyfuncitem.nodeid, pyfuncitem.config.rootpath)
    if child.returncode != 0:
        pytest.fail(
            f"in the DNS sandbox (exit {child.returncode}):\n{child.stdout[-6000:]}\n{child.stderr[-2000:]}",
            pytrace=False,
        )
    print(child.stdout[-3000:])  # the child's figures, shown with -s or -rA
    return True


@pytest.fixture
def slow_dns() -> Iterator[SlowDNS | None]:
    """The slow DNS server (inside the sandbox); None in the outer run, which only re-runs the test."""
    if not os.environ.get(INSIDE):
        yield None
        return
    loopback_up()
    server = SlowDNS()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) for the session, with the bucket ``audio-extract``: see
    ``support.s3_server``. Tests keep apart by key prefix: ``s3_server.settings(prefix=...)``."""
    with seaweedfs() as server:
        yield server
