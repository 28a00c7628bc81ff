"""How the node agent maps a pod spec to a local process (pure; no cluster needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from audio_extract_localcluster.podspec import CannotRun, expand, prepare, rewrite_paths


def test_expand_follows_kubernetes_rules():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(A) is escaped, $$ too", env) == "$(A) is escaped, $ too"


def test_rewrite_paths_replaces_whole_components_only():
    mapping = {"/data": "/tmp/x/data", "/dev/termination-log": "/tmp/x/term"}
    assert rewrite_paths("/data", mapping) == "/tmp/x/data"
    assert rewrite_paths("--out=/data/a.mp3", mapping) == "--out=/tmp/x/data/a.mp3"
    assert rewrite_paths("/database /data2 /x/data", mapping) == "/database /data2 /x/data"
    assert rewrite_paths("/dev/termination-log", mapping) == "/tmp/x/term"
    assert rewrite_paths('{"root": "/data"}', mapping) == '{"root": "/tmp/x/data"}'


def pod(container: dict, volumes: list[dict] | None = None) -> dict:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "img", **container}],
            "volumes": volumes or [],
        },
    }


def test_prepare_maps_volumes_env_args_and_python(tmp_path: Path):
    spec = pod(
        {
            "command": ["python", "-m", "worker"],
            "args": ["--store", "/data", "--scratch=/scratch/tmp", "--name", "$(POD)"],
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "RESULT", "value": "/dev/termination-log"},
                {"name": "STORE", "value": "/data/$(POD)"},
            ],
            "workingDir": "/scratch",
            "volumeMounts": [
                {"name": "store", "mountPath": "/data"},
                {"name": "scratch", "mountPath": "/scratch"},
            ],
        },
        [
            {"name": "store", "persistentVolumeClaim": {"claimName": "media"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    argv, env, cwd, term = prepare(spec, tmp_path / "pod", tmp_path / "volumes", files=None)  # type: ignore[arg-type]

    store, scratch = tmp_path / "volumes" / "ns" / "media", tmp_path / "pod" / "volumes" / "scratch"
    assert argv == [
        sys.executable,
        "-m",
        "worker",
        "--store",
        str(store),
        f"--scratch={scratch}/tmp",
        "--name",
        "p",
    ]
    assert env["RESULT"] == str(term) and env["STORE"] == f"{store}/p"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert cwd == scratch and store.is_dir() and term.exists()


def test_prepare_refuses_a_container_without_command(tmp_path: Path):
    with pytest.raises(CannotRun, match="no command"):
        prepare(pod({}), tmp_path, tmp_path, files=None)  # type: ignore[arg-type]
