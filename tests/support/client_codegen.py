"""A Python client generated from the API's OpenAPI document by openapi-python-client (a widely
used generator), built and imported the way a client of the API would: the component tests
generate it from the app's document, the end-to-end tests from the installed release's.

    client = generate(doc, tmp_path)          # the package, imported
    client.AuthenticatedClient(base_url=..., token=key, prefix="", auth_header_name="X-API-Key")
    client.op("get_status").sync_detailed(job_id, client=c)
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import yaml

from audio_extract_common.formats import FORMATS

PACKAGE = "audio_extract_client"

# The generator reads JSON and bytes bodies only: the download's audio types are bytes to it.
CONFIG = {
    "post_hooks": [],  # no formatter run: the test needs the code, not its style
    "content_type_overrides": {info.media_type: "application/octet-stream" for info in FORMATS.values()},
}


class GeneratedClient:
    def __init__(self, package: ModuleType, doc: dict[str, Any]) -> None:
        self.package = package
        self.doc = doc
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.AuthenticatedClient = package.AuthenticatedClient
        self.Client = package.Client

    def authenticated(self, base_url: str, key: str, timeout: float = 10, **httpx_args: Any) -> Any:
        """A client sending ``key`` as X-API-Key; ``httpx_args`` go to its httpx client (e.g. transport)."""
        return self.AuthenticatedClient(
            base_url=base_url,
            token=key,
            prefix="",
            auth_header_name="X-API-Key",
            timeout=httpx.Timeout(timeout),
            httpx_args=httpx_args,
            raise_on_unexpected_status=True,
        )

    def op(self, operation_id: str) -> ModuleType:
        """The generated module of an operation (its functions: sync_detailed, asyncio_detailed...)."""
        for item in self.doc["paths"].values():
            for op in item.values():
                if isinstance(op, dict) and op.get("operationId") == operation_id:
                    return importlib.import_module(f"{PACKAGE}.api.{op['tags'][0]}.{operation_id}")
        raise KeyError(operation_id)


def generate(doc: dict[str, Any], workdir: Path) -> GeneratedClient:
    """Generate the client (any generator warning fails) into ``workdir`` and import it."""
    spec, config, out = workdir / "openapi.json", workdir / "config.yaml", workdir / "client"
    spec.write_text(json.dumps(doc))
    config.write_text(yaml.safe_dump(CONFIG))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec),
            "--config",
            str(config),
            "--output-path",
            str(out),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"the client generator failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    # --meta none writes the package itself into `out`; import it from its parent, fresh.
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    sys.path.insert(0, str(out.parent))
    try:
        out.rename(out.parent / PACKAGE)
        package = importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out.parent))
    return GeneratedClient(package, doc)
