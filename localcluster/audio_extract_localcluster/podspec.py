"""From a pod spec to a local process: the node agent's translation of one container (command,
args, env, volumes, working directory, termination-message path) into an argv, an environment and
local directories. Kubernetes' own rules where they apply (`$(VAR)` expansion, env sources,
volume sources); paths inside the container become local paths by rewriting.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import time
from pathlib import Path

import kubernetes
from kubernetes.client import ApiException

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MISSING_REF_WAIT = 10.0  # seconds to wait for a referenced ConfigMap/Secret to appear (kubelet retries)


class CannotRun(Exception):
    """The pod asks for something this agent cannot do; it fails (or waits) with this reason."""

    def __init__(self, message: str, reason: str = "ContainerCannotRun") -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: unknown references stay as written, `$$` escapes `$`."""
    return VAR_REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def rewrite_paths(text: str, mapping: dict[str, str]) -> str:
    """Replace each container path in `text` by its local path, as whole path components only
    (`/data` → local in `/data/x` and `--out=/data`, but not in `/database`)."""
    for container_path in sorted(mapping, key=len, reverse=True):
        pattern = r"(?<![\w./-])" + re.escape(container_path.rstrip("/")) + r"(?=/|$|[^\w.-])"
        text = re.sub(pattern, lambda _m, p=container_path: mapping[p], text)
    return text


def field_value(pod: dict, path: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return meta.get(m.group(1), {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1], {})
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise CannotRun(f"fieldRef {path} is not supported by the local node agent")


class PodFiles:
    """Reads the ConfigMaps, Secrets and tokens a pod refers to (retrying briefly, like a kubelet)."""

    def __init__(self, core: kubernetes.client.CoreV1Api, pod: dict) -> None:
        self.core, self.pod, self.ns = core, pod, pod["metadata"]["namespace"]

    def _read(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        deadline = time.monotonic() + MISSING_REF_WAIT
        while True:
            try:
                if kind == "configmap":
                    cm = self.core.read_namespaced_config_map(name, self.ns)
                    data = {k: v.encode() for k, v in (cm.data or {}).items()}
                    data |= {k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()}
                else:
                    secret = self.core.read_namespaced_secret(name, self.ns)
                    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
                return data
            except ApiException as e:
                if e.status != 404:
                    raise
                if optional:
                    return None
                if time.monotonic() > deadline:
                    raise CannotRun(f"{kind} {self.ns}/{name} not found", "CreateContainerConfigError") from e
                time.sleep(0.5)

    def key(self, ref: dict, kind: str) -> str | None:
        data = self._read(kind, ref["name"], ref.get("optional", False))
        if data is None:
            return None
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise CannotRun(f"key {ref['key']} not in {kind} {ref['name']}", "CreateContainerConfigError")
        return data[ref["key"]].decode()

    def files(self, kind: str, src: dict) -> dict[str, bytes]:
        data = (
            self._read(kind, src.get("name") or src.get("secretName", ""), src.get("optional", False)) or {}
        )
        if src.get("items"):
            return {item["path"]: data[item["key"]] for item in src["items"] if item["key"] in data}
        return data

    def downward(self, src: dict) -> dict[str, bytes]:
        return {
            i["path"]: field_value(self.pod, i["fieldRef"]["fieldPath"]).encode()
            for i in src.get("items", [])
        }

    def token(self, src: dict) -> dict[str, bytes]:
        meta = self.pod["metadata"]
        request = {
            "spec": {
                "audiences": [src["audience"]] if src.get("audience") else [],
                "expirationSeconds": src.get("expirationSeconds", 3600),
                "boundObjectRef": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            }
        }
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        token = self.core.create_namespaced_service_account_token(sa, self.ns, request).status.token
        return {src["path"]: token.encode()}


def source_files(files: PodFiles, src: dict) -> dict[str, bytes]:
    """The files of one volume source (a volume's own, or one of a projected volume's sources)."""
    if "configMap" in src:
        return files.files("configmap", src["configMap"])
    if "secret" in src:
        return files.files("secret", src["secret"])
    if "downwardAPI" in src:
        return files.downward(src["downwardAPI"])
    if "serviceAccountToken" in src:
        return files.token(src["serviceAccountToken"])
    return {}


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def prepare(
    pod: dict, pod_dir: Path, volumes_root: Path, files: PodFiles
) -> tuple[list[str], dict, Path, Path]:
    """Lay out the pod's volumes and compute (argv, env, cwd, termination-message file)."""
    spec = pod["spec"]
    if spec.get("initContainers") or len(spec["containers"]) != 1:
        raise CannotRun("the local node agent runs pods with exactly one container and no init containers")
    c = spec["containers"][0]
    if not c.get("command"):
        raise CannotRun(
            f"container {c['name']} has no command; the local node agent cannot read image "
            f"entrypoints (image {c.get('image')} is not pulled)"
        )
    ns = pod["metadata"]["namespace"]
    volumes: dict[str, Path] = {}
    for v in spec.get("volumes", []):
        local = pod_dir / "volumes" / v["name"]
        if "persistentVolumeClaim" in v:
            local = volumes_root / ns / v["persistentVolumeClaim"]["claimName"]
        elif "hostPath" in v:
            local = Path(v["hostPath"]["path"])
        elif "projected" in v:
            for src in v["projected"].get("sources", []):
                write_files(local, source_files(files, src))
        elif {"configMap", "secret", "downwardAPI"} & set(v):
            write_files(local, source_files(files, v))
        elif "emptyDir" not in v:
            raise CannotRun(f"volume {v['name']}: type {sorted(set(v) - {'name'})} is not supported")
        local.mkdir(parents=True, exist_ok=True)
        volumes[v["name"]] = local

    mapping: dict[str, str] = {}
    for m in c.get("volumeMounts", []):
        local = volumes[m["name"]] / m.get("subPath", "")
        local.mkdir(parents=True, exist_ok=True)
        mapping[m["mountPath"]] = str(local)
    termination_file = pod_dir / "termination-log"
    termination_file.write_bytes(b"")
    mapping[c.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH] = str(termination_file)

    venv_bin = str(Path(sys.executable).parent)
    env = {"HOME": str(pod_dir), "HOSTNAME": pod["metadata"]["name"], "PATH": os.environ.get("PATH", "")}
    for src in c.get("envFrom", []):
        kind, ref = (
            ("configmap", src["configMapRef"]) if "configMapRef" in src else ("secret", src["secretRef"])
        )
        data = files._read(kind, ref["name"], ref.get("optional", False)) or {}
        env |= {src.get("prefix", "") + k: v.decode() for k, v in data.items()}
    for e in c.get("env", []):
        value: str | None
        if "valueFrom" not in e:
            value = expand(e.get("value", ""), env)
        elif "fieldRef" in e["valueFrom"]:
            value = field_value(pod, e["valueFrom"]["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in e["valueFrom"]:
            value = files.key(e["valueFrom"]["configMapKeyRef"], "configmap")
        elif "secretKeyRef" in e["valueFrom"]:
            value = files.key(e["valueFrom"]["secretKeyRef"], "secret")
        else:
            raise CannotRun(f"env {e['name']}: {sorted(e['valueFrom'])} is not supported")
        if value is not None:
            env[e["name"]] = value
    argv = [expand(a, env) for a in [*c["command"], *c.get("args", [])]]
    env = {k: rewrite_paths(v, mapping) for k, v in env.items()}
    env["PATH"] = venv_bin + os.pathsep + env["PATH"]
    argv = [rewrite_paths(a, mapping) for a in argv]
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    cwd = Path(rewrite_paths(c["workingDir"], mapping)) if c.get("workingDir") else pod_dir
    cwd.mkdir(parents=True, exist_ok=True)
    return argv, env, cwd, termination_file
