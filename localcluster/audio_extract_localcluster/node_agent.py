"""The local node agent: the kubelet's part of running pods, as local processes, for dev and tests.

    python -m audio_extract_localcluster.node_agent --kubeconfig K --node-name N [--slots S]
        [--volumes-root DIR] [--state-dir DIR]

What it does:
- registers Node N as Ready with capacity/allocatable (cpu, memory, `pods` = slots) and renews
  its Lease in `kube-node-lease`, as a kubelet does, so the node lifecycle controller keeps it;
- watches the pods the (real) kube-scheduler bound to N and runs each pod's container
  `command + args` as a local process in its own process group. `$(VAR)` references are
  expanded; `python`/`python3` as command[0] is this venv's interpreter and the venv's bin is on
  PATH. Env: literal values, fieldRef (metadata.*, spec.nodeName/serviceAccountName,
  status.podIP/hostIP), configMapKeyRef, secretKeyRef, envFrom. Volumes become local
  directories: emptyDir → a per-pod directory, persistentVolumeClaim → `<volumes-root>/<ns>/<claim>`
  (the same directory for every pod, which is how a ReadWriteMany volume behaves), hostPath →
  itself, configMap/secret/downwardAPI/projected (incl. serviceAccountToken) → files. Each
  mount path, and the terminationMessagePath, is rewritten wherever it occurs in env values,
  args and workingDir (`podspec.py`). stdout/stderr go to
  `<state-dir>/pods/<ns>/<pod>-<uid>/{stdout,stderr}.log`;
- writes pod status: Pending → Running → Succeeded/Failed, containerStatuses with exit code,
  reason, the termination message (the remapped terminationMessagePath file, ≤ 4096 bytes) and
  start/finish times; restarts containers for restartPolicy OnFailure/Always with back-off;
- provisions a hostPath volume for every claim of the default `local` StorageClass
  (`provisioner.py`), so pods with claims pass the scheduler's volume checks;
- on deletion (deletionTimestamp) or when the pod's activeDeadlineSeconds passes: TERM the
  process group, wait the grace period, KILL, then confirm the deletion (grace period 0).

What it does not do: pull or unpack images (the image is only recorded; the command runs from the
host, so a container without `command` cannot run and its pod fails with ContainerCannotRun),
run more than one container or init containers, probes (started containers are Ready at once),
network namespaces or pod IPs (every pod is 127.0.0.1 and shares the host's network), resource
limits, user/security contexts, `kubectl logs`/`exec` (there is no kubelet API; read the log
files), and the in-cluster service-account path /var/run/secrets/... only exists if mounted as a
volume (it is then rewritten like any mount path).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import kubernetes
from kubernetes.client import ApiException

from .podspec import CannotRun, PodFiles, prepare
from .processes import die_with_parent
from .provisioner import Provisioner

log = logging.getLogger("node-agent")

SMP = "application/strategic-merge-patch+json"
LEASE_SECONDS, RENEW_SECONDS = 40, 10  # the kubelet's defaults
MESSAGE_LIMIT = 4096  # bytes of termination message the kubelet keeps


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- one pod ------------------------------------------------------------------------------------


class PodRunner(threading.Thread):
    def __init__(self, agent: NodeAgent, pod: dict) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent, self.pod = agent, pod
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.container = pod["spec"]["containers"][0]
        self.dir = agent.state_dir / "pods" / self.ns / f"{self.name}-{self.uid[:8]}"
        self.stop_event = threading.Event()
        self.grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.proc: subprocess.Popen | None = None
        self.start_time = now()

    def request_stop(self, grace: int | None) -> None:
        if grace is not None:
            self.grace = grace
        self.stop_event.set()

    # status ------------------------------------------------------------------------------------

    def patch(self, status: dict) -> None:
        status |= {
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
        }
        try:
            self.agent.core.patch_namespaced_pod_status(
                self.name, self.ns, {"status": status}, _content_type=SMP
            )
        except ApiException as e:
            if e.status != 404:
                log.warning("status of %s/%s: %s", self.ns, self.name, e.reason)

    def container_status(self, state: dict, restarts: int, ready: bool = False) -> dict:
        c = self.container
        return {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "state": state,
            "ready": ready,
            "started": "running" in state,
            "restartCount": restarts,
            **({"containerID": f"local://{self.proc.pid}"} if self.proc else {}),
        }

    @staticmethod
    def conditions(ready: bool, reason: str | None = None) -> list[dict]:
        t = now()
        flag = "True" if ready else "False"
        return [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            *(
                {"type": k, "status": flag, "lastTransitionTime": t, **({"reason": reason} if reason else {})}
                for k in ("ContainersReady", "Ready")
            ),
        ]

    def cannot_run(self, err: CannotRun) -> None:
        log.warning("pod %s/%s cannot run: %s", self.ns, self.name, err.message)
        if self.pod["spec"].get("restartPolicy", "Always") == "Always":
            # a kubelet keeps such pods Pending; failing them would make a ReplicaSet spin
            state = {"waiting": {"reason": err.reason, "message": err.message}}
            self.patch({"phase": "Pending", "containerStatuses": [self.container_status(state, 0)]})
            return
        t = now()
        state = {
            "terminated": {
                "exitCode": 128,
                "reason": err.reason,
                "message": err.message,
                "startedAt": t,
                "finishedAt": t,
            }
        }
        self.patch(
            {
                "phase": "Failed",
                "reason": err.reason,
                "message": err.message,
                "conditions": self.conditions(False, "PodFailed"),
                "containerStatuses": [self.container_status(state, 0)],
            }
        )

    # lifecycle ---------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.run_pod()
        finally:
            if self.stop_event.is_set():  # deleted, whenever that happened: the process is gone now
                self.agent.confirm_deletion(self.ns, self.name, self.uid)

    def run_pod(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            argv, env, cwd, term_file = prepare(
                self.pod, self.dir, self.agent.volumes_root, PodFiles(self.agent.core, self.pod)
            )
        except CannotRun as e:
            self.cannot_run(e)
            return
        except Exception as e:
            log.exception("preparing %s/%s", self.ns, self.name)
            self.cannot_run(CannotRun(f"node agent error: {e}", "CreateContainerError"))
            return
        policy = self.pod["spec"].get("restartPolicy", "Always")
        deadline_s = self.pod["spec"].get("activeDeadlineSeconds")
        deadline = time.monotonic() + deadline_s if deadline_s else None
        restarts = 0
        if self.stop_event.is_set():  # deleted while its volumes were being prepared
            return
        while True:
            try:
                code, started, finished, why = self.run_once(argv, env, cwd, term_file, restarts, deadline)
            except CannotRun as e:
                self.cannot_run(e)
                return
            message = self.termination_message(term_file, code)
            reason = "Completed" if code == 0 else "Error"
            state = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": started,
                    "finishedAt": finished,
                    "containerID": f"local://{self.proc.pid}",
                    **({"message": message} if message else {}),
                }
            }
            again = why is None and (policy == "Always" or (policy == "OnFailure" and code != 0))
            if not again:
                break
            restarts += 1
            backoff = min(10 * 2 ** (restarts - 1), 300)
            waiting = self.container_status({"waiting": {"reason": "CrashLoopBackOff"}}, restarts)
            self.patch(
                {
                    "phase": "Running",
                    "conditions": self.conditions(False, "ContainersNotReady"),
                    "containerStatuses": [waiting | {"lastState": state}],
                }
            )
            if self.stop_event.wait(backoff):
                why = "deleted"
                break
        phase = "Succeeded" if code == 0 and why != "deadline" else "Failed"
        status = {
            "phase": phase,
            "conditions": self.conditions(False, "PodCompleted"),
            "containerStatuses": [self.container_status(state, restarts)],
        }
        if why == "deadline":
            status |= {
                "reason": "DeadlineExceeded",
                "message": f"Pod was active on the node longer than the specified deadline ({deadline_s} s)",
            }
        self.patch(status)
        log.info("pod %s/%s %s (exit %s%s)", self.ns, self.name, phase, code, f", {why}" if why else "")

    def run_once(self, argv, env, cwd, term_file, restarts, deadline) -> tuple[int, str, str, str | None]:
        term_file.write_bytes(b"")
        with open(self.dir / "stdout.log", "ab") as out, open(self.dir / "stderr.log", "ab") as err:
            try:
                self.proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # its own process group: TERM/KILL reach its children
                    preexec_fn=die_with_parent,  # a SIGKILLed agent leaves no pod process behind
                )
            except OSError as e:
                raise CannotRun(f"cannot start {argv[0]}: {e}", "StartError") from e
        started = now()
        self.patch(
            {
                "phase": "Running",
                "conditions": self.conditions(True),
                "containerStatuses": [
                    self.container_status({"running": {"startedAt": started}}, restarts, ready=True)
                ],
            }
        )
        why = None
        while self.proc.poll() is None:
            if self.stop_event.wait(0.1):
                why = "deleted"
            elif deadline and time.monotonic() > deadline:
                why = "deadline"
            if why:
                self.kill(self.grace if why == "deleted" else 0)
        return (
            self.proc.returncode if self.proc.returncode >= 0 else 128 - self.proc.returncode,
            started,
            now(),
            why,
        )

    def kill(self, grace: int) -> None:
        assert self.proc is not None
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers in the group

    def termination_message(self, term_file: Path, code: int) -> str:
        data = term_file.read_bytes()[:MESSAGE_LIMIT] if term_file.exists() else b""
        if (
            not data
            and code != 0
            and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            logs = (self.dir / "stderr.log").read_bytes() + (self.dir / "stdout.log").read_bytes()
            data = logs[-2048:]
        return data.decode(errors="replace")


# -- the node ----------------------------------------------------------------------------------


class NodeAgent:
    def __init__(
        self, api: kubernetes.client.ApiClient, node: str, slots: int, volumes_root: Path, state_dir: Path
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.leases = kubernetes.client.CoordinationV1Api(api)
        self.node, self.slots = node, slots
        self.volumes_root, self.state_dir = volumes_root, state_dir
        self.runners: dict[str, PodRunner] = {}
        self.stopping = threading.Event()

    def register(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.node,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "audioextract.io/local-node": "true",
        }
        try:
            created = self.core.create_node({"metadata": {"name": self.node, "labels": labels}})
            self.node_uid = created.metadata.uid
        except ApiException as e:
            if e.status != 409:
                raise
            self.node_uid = self.core.read_node(self.node).metadata.uid
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        resources = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{mem_kib}Ki",
            "pods": str(self.slots),
            "ephemeral-storage": f"{shutil.disk_usage(self.state_dir).total // 1024}Ki",
        }
        t = now()

        def ok(kind: str, reason: str) -> dict:
            return {
                "type": kind,
                "status": "False",
                "reason": reason,
                "lastHeartbeatTime": t,
                "lastTransitionTime": t,
                "message": "not measured by the local node agent",
            }

        status = {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                ok("MemoryPressure", "KubeletHasSufficientMemory"),
                ok("DiskPressure", "KubeletHasNoDiskPressure"),
                ok("PIDPressure", "KubeletHasSufficientPID"),
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": t,
                    "lastTransitionTime": t,
                    "message": "local node agent is posting ready status",
                },
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node},
            ],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": os.uname().release,
                "osImage": "local processes",
                "containerRuntimeVersion": "local://audio-extract-node-agent",
                "kubeletVersion": "v1.36.3",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.core.patch_node_status(self.node, {"status": status}, _content_type=SMP)
        log.info("node %s registered: %s", self.node, resources)

    def renew_lease(self) -> None:
        body = {
            "metadata": {
                "name": self.node,
                "namespace": "kube-node-lease",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self.node_uid}
                ],
            },
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        }
        try:
            self.leases.patch_namespaced_lease(self.node, "kube-node-lease", body, _content_type=SMP)
        except ApiException as e:
            if e.status != 404:
                raise
            self.leases.create_namespaced_lease("kube-node-lease", body)

    def lease_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.renew_lease()
            except Exception as e:
                log.warning("lease renewal failed: %s", e)
            self.stopping.wait(RENEW_SECONDS)

    def confirm_deletion(self, ns: str, name: str, uid: str) -> None:
        try:
            # grace period 0 and the uid precondition in one DeleteOptions body
            self.core.delete_namespaced_pod(
                name, ns, body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
            )
            log.info("pod %s/%s: deletion confirmed", ns, name)
        except ApiException as e:
            if e.status != 404:
                log.warning("confirming deletion of %s/%s: %s", ns, name, e.reason)

    def handle(self, kind: str, pod: dict) -> None:
        meta, uid = pod["metadata"], pod["metadata"]["uid"]
        runner = self.runners.get(uid)
        if kind == "DELETED":
            if runner:
                runner.request_stop(0)
                del self.runners[uid]
                shutil.rmtree(runner.dir / "volumes", ignore_errors=True)
            return
        if meta.get("deletionTimestamp"):
            if runner and runner.is_alive():
                runner.request_stop(meta.get("deletionGracePeriodSeconds"))
            else:
                self.confirm_deletion(meta["namespace"], meta["name"], uid)
            return
        if runner:
            return
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            return
        runner = self.runners[uid] = PodRunner(self, pod)
        if phase == "Running":  # started by an earlier agent whose process is gone
            runner.cannot_run(CannotRun("the node agent restarted while the pod ran", "NodeAgentRestarted"))
            return
        log.info("pod %s/%s: starting", meta["namespace"], meta["name"])
        runner.start()

    def watch_loop(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while not self.stopping.is_set():
            try:
                listing = json.loads(
                    self.core.list_pod_for_all_namespaces(
                        field_selector=selector, _preload_content=False
                    ).data
                )
                for pod in listing["items"]:
                    self.handle("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    stream = kubernetes.watch.Watch().stream(
                        self.core.list_pod_for_all_namespaces,
                        field_selector=selector,
                        resource_version=rv,
                        timeout_seconds=60,
                        allow_watch_bookmarks=True,
                    )
                    for event in stream:
                        obj = event["raw_object"]
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.handle(event["type"], obj)
            except ApiException as e:
                if e.status != 410:  # 410 Gone: our resourceVersion is too old, list again
                    log.warning("pod watch: %s", e)
                    self.stopping.wait(1)
            except Exception as e:
                log.warning("pod watch: %s", e)
                self.stopping.wait(1)

    def shutdown(self) -> None:
        self.stopping.set()
        for runner in list(self.runners.values()):
            if runner.proc and runner.proc.poll() is None:
                runner.kill(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", default="local-node")
    parser.add_argument(
        "--slots", type=int, default=os.cpu_count() or 1, help="pods run at once (node's pods capacity)"
    )
    parser.add_argument(
        "--volumes-root", type=Path, required=True, help="PVC claim C in namespace N → DIR/N/C"
    )
    parser.add_argument("--state-dir", type=Path, help="pod logs and emptyDirs (default: a temp dir)")
    parser.add_argument(
        "--no-provision",
        dest="provision",
        action="store_false",
        help="do not provision volumes for claims of the default `local` StorageClass",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state = args.state_dir or Path(tempfile.mkdtemp(prefix=f"node-{args.node_name}-"))
    state.mkdir(parents=True, exist_ok=True)
    args.volumes_root.mkdir(parents=True, exist_ok=True)
    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    agent = NodeAgent(api, args.node_name, args.slots, args.volumes_root.resolve(), state.resolve())
    provisioner = Provisioner(api, agent.volumes_root, agent.stopping)
    if args.provision:
        # before the node turns Ready: claims created from then on get the default class at admission
        provisioner.ensure_storage_class()
    agent.register()
    agent.renew_lease()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    threading.Thread(target=agent.lease_loop, name="lease", daemon=True).start()
    threading.Thread(target=agent.watch_loop, name="pods", daemon=True).start()
    if args.provision:
        provisioner.start()
    done.wait()
    log.info("stopping: killing %d pod processes", sum(1 for r in agent.runners.values() if r.is_alive()))
    agent.shutdown()


if __name__ == "__main__":
    main()
