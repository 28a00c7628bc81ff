"""The Dockerfile cannot be built here (no Docker); what the chart relies on is checked in its text:
every import root of the distribution is copied, the processes the chart starts exist in the
package, and the image runs as the numeric non-root user the pods' securityContext names."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest
import yaml
from render import REPO, render

pytestmark = pytest.mark.chart

DOCKERFILE = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())  # continuation lines joined


def instructions(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.*)$", DOCKERFILE, re.M)


def test_every_import_root_is_copied_into_the_build() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    roots = {p.split("/")[0] for p in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}
    copied = {c.split()[0].rstrip("/") for c in instructions("COPY") if not c.startswith("--from")}
    assert roots <= copied
    assert {"pyproject.toml", "README.md"} <= set(instructions("COPY")[0].split()[:-1])
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not roots & set(ignored)


def test_image_user_matches_the_pods_and_the_root_filesystem_can_be_read_only() -> None:
    values = yaml.safe_load((REPO / "charts" / "audio-extract" / "values.yaml").read_text())
    uid, gid = values["podSecurityContext"]["runAsUser"], values["podSecurityContext"]["runAsGroup"]
    assert instructions("USER") == [f"{uid}:{gid}"]
    from audio_extract_operator.jobs import NONROOT_UID

    assert uid == NONROOT_UID  # the worker Jobs' pods run as the same user
    env = " ".join(instructions("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # no .pyc writes into the read-only image
    assert "HOME=/tmp" in env  # the only writable place besides the mounted volumes
    assert "ffmpeg" in DOCKERFILE


def test_the_commands_the_chart_runs_exist() -> None:
    commands = [c["command"] for o in render() if o["kind"] == "Deployment"
                for c in o["spec"]["template"]["spec"]["containers"]]
    from audio_extract_operator.jobs import WORKER_COMMAND

    commands.append(WORKER_COMMAND)
    for command in commands:
        assert command[:2] == ["python", "-m"], command
        assert importlib.util.find_spec(f"{command[2]}.__main__") is not None, command
    assert instructions("CMD") == ['["python", "-m", "audio_extract_api"]']
