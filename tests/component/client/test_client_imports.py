"""The client and the command need no server code: imported in a fresh interpreter where every
server package is refused."""

from __future__ import annotations

import subprocess
import sys


def test_the_client_and_the_command_import_no_server_code() -> None:
    blocked = [
        "fastapi",
        "starlette",
        "kopf",
        "kubernetes",
        "kubernetes_asyncio",
        "aiohttp",
        "uvicorn",
        "audio_extract_api",
        "audio_extract_operator",
        "audio_extract_worker",
    ]
    code = (
        "import sys\n"
        f"blocked = {blocked!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in blocked: raise ImportError('server module ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import audio_extract_client, audio_extract_client.cli.app\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
