"""A dynamic volume provisioner for the local node: every PersistentVolumeClaim of the `local`
StorageClass (the cluster's default) gets a hostPath PersistentVolume at
`<volumes-root>/<namespace>/<claim>`, which the kubelet mounts for that claim. The real
persistentvolume-binder controller then binds the two, so the scheduler's volume checks pass for
pods that use claims, as on any cluster with a default StorageClass.

Access modes are granted as asked (one host directory is ReadWriteMany by nature); the size is
recorded, not enforced. When a claim is deleted its volume is deleted too; the files stay on disk.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

import kubernetes
from kubernetes.client import ApiException

log = logging.getLogger("provisioner")

STORAGE_CLASS = "local"
PROVISIONER = "audioextract.io/local-node"


def storage_class() -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def volume_for(claim: dict, volumes_root: Path) -> dict:
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {
                "path": str(volumes_root / meta["namespace"] / meta["name"]),
                "type": "DirectoryOrCreate",
            },
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


class Provisioner:
    def __init__(
        self, api: kubernetes.client.ApiClient, volumes_root: Path, stopping: threading.Event
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.storage = kubernetes.client.StorageV1Api(api)
        self.volumes_root, self.stopping = volumes_root, stopping

    def ensure_storage_class(self) -> None:
        try:
            self.storage.create_storage_class(storage_class())
        except ApiException as e:
            if e.status != 409:
                raise

    def claim_event(self, claim: dict) -> None:
        meta, spec = claim["metadata"], claim["spec"]
        wanted = spec.get("storageClassName") == STORAGE_CLASS and not spec.get("volumeName")
        if not wanted or meta.get("deletionTimestamp"):
            return
        directory = self.volumes_root / meta["namespace"] / meta["name"]
        directory.mkdir(parents=True, exist_ok=True)
        # pods run as any non-root uid (the worker is 65532): like local-path-provisioner, 0777
        directory.chmod(0o777)
        try:
            self.core.create_persistent_volume(volume_for(claim, self.volumes_root))
            log.info("provisioned a volume for claim %s/%s", meta["namespace"], meta["name"])
        except ApiException as e:
            if e.status != 409:
                raise

    def volume_event(self, volume: dict) -> None:
        annotations = volume["metadata"].get("annotations", {})
        released = volume.get("status", {}).get("phase") in ("Released", "Failed")
        if released and annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER:
            try:
                self.core.delete_persistent_volume(volume["metadata"]["name"])
            except ApiException as e:
                if e.status != 404:
                    raise

    def watch(self, list_func, handle) -> None:
        while not self.stopping.is_set():
            try:
                for event in kubernetes.watch.Watch().stream(list_func, timeout_seconds=60):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handle(event["raw_object"])
            except Exception as e:  # the API server may restart; keep going
                log.warning("provisioner watch: %s", e)
                self.stopping.wait(1)

    def start(self) -> None:
        for list_func, handle in (
            (self.core.list_persistent_volume_claim_for_all_namespaces, self.claim_event),
            (self.core.list_persistent_volume, self.volume_event),
        ):
            threading.Thread(target=self.watch, args=(list_func, handle), daemon=True).start()


def main() -> None:
    """`python -m audio_extract_localcluster.provisioner --kubeconfig K --volumes-root DIR`"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--volumes-root", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    provisioner = Provisioner(api, args.volumes_root, stopping)
    provisioner.ensure_storage_class()
    provisioner.start()
    stopping.wait()


if __name__ == "__main__":
    main()
