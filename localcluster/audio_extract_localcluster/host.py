"""What a local node changes on this machine, and putting all of it back.

A real kubelet, containerd, CNI, kube-proxy and kube-router change the host as they would on any
node: an address for the node, a bridge, network namespaces, mounts, cgroups, iptables chains,
ipsets, conntrack entries, a few fixed directories and sysctls. Before the node starts, `claim()`
takes the one-cluster-per-machine lock and records what the host looks like (sysctl values, which
fixed directories exist) in `/run/audio-extract/host-state.json`; `restore()` puts it back. If a
previous run was killed before it could restore, the next `claim()` restores from that record
first, so a crash never leaves the machine changed for good. `leftovers()` lists whatever of ours
is still there (the tests assert it is empty after a stop).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HOST_IP = "10.99.0.1"  # the node's address: on `lo`, reachable from pods, never routed off the machine
HOST_NAME = "host.audio-extract.internal"  # what pods resolve to HOST_IP (like host.docker.internal)
POD_CIDR = "10.244.0.0/24"
BRIDGE = "aex0"

STATE_DIR = Path("/run/audio-extract")
LOCK_FILE = STATE_DIR / "local-cluster.lock"
RECORD_FILE = STATE_DIR / "host-state.json"

# sysctls the kubelet (panic, overcommit), the bridge plugin (ip_forward) and kube-proxy
# (route_localnet, conntrack) set on any node
SYSCTLS = (
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)
# fixed paths the kubelet, containerd and the CNI plugins write whatever their configured roots
FIXED_DIRS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/netns",
    "/var/lib/cni",
    "/run/containerd",
    "/etc/cni",
    "/opt/cni",
    "/etc/kueue",  # Kueue's metrics certificate has a fixed path (`kueue.METRICS_CERT_DIR`)
)
OUR_CHAIN = re.compile(r"^(KUBE-|CNI-)")  # kubelet, kube-proxy, kube-router, portmap
OUR_IPSET = re.compile(r"^(KUBE-|kube-router-)")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "kubepods"


class ClusterRunning(RuntimeError):
    pass


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


def _run(*argv: str, check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, input=input)


@dataclass
class HostClaim:
    """Held while a local cluster runs: the lock, and the record of the host before the node."""

    lock_fd: int
    workdir: Path

    def release(self) -> None:
        restore(self.workdir)
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)
        LOCK_FILE.unlink(missing_ok=True)


def running_cluster() -> Path | None:
    """The directory of the local cluster running on this machine, if one is."""
    if not LOCK_FILE.exists():
        return None
    with open(LOCK_FILE) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a cluster runs, and its record names its directory
            with contextlib.suppress(OSError, ValueError, KeyError):
                return Path(json.loads(RECORD_FILE.read_text())["workdir"])
        return None


def require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError(
            "the local cluster runs a real node (kubelet, containerd, runc, CNI), which needs root, "
            "as kind's nodes and k3s do: run it as root (e.g. sudo make dev)"
        )


def claim(workdir: Path) -> HostClaim:
    """Take the machine for one local cluster; raise ClusterRunning if another one has it."""
    require_root()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = Path(LOCK_FILE).read_text().strip() or "unknown"
        os.close(fd)
        raise ClusterRunning(
            f"a local cluster is already running on this machine ({owner}); stop it first "
            "(Ctrl-C in its `make dev`), one local cluster runs at a time"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}, directory {workdir}".encode())
    _restore_killed_run()
    record = {
        "workdir": str(workdir),
        "sysctls": {name: _read_sysctl(name) for name in SYSCTLS},
        "absent_dirs": [d for d in FIXED_DIRS if not os.path.lexists(d)],
    }
    RECORD_FILE.write_text(json.dumps(record))
    _run("ip", "addr", "replace", f"{HOST_IP}/32", "dev", "lo", check=True)
    return HostClaim(fd, workdir)


# -- restore --------------------------------------------------------------------------------------


def recover() -> None:
    """Put the host back after a cluster that was killed before its stop, unless a cluster runs.
    `claim()` does this too; call it to see the host as it was before any node."""
    if running_cluster() is None:
        _restore_killed_run()


def _restore_killed_run() -> None:
    if RECORD_FILE.exists():  # a previous cluster was killed before it could clean up
        previous = json.loads(RECORD_FILE.read_text())
        restore(Path(previous["workdir"]))


def restore(workdir: Path) -> None:
    """Put the host back as `claim()` found it. Idempotent; every step tolerates what is gone."""
    record = json.loads(RECORD_FILE.read_text()) if RECORD_FILE.exists() else {}
    kill_pod_processes()
    kill_processes_under(workdir)
    unmount_under([workdir, Path("/run/netns"), Path("/run/containerd"), Path("/var/lib/kubelet")])
    remove_cgroups()
    remove_iptables()
    remove_ipsets()
    _run("ip", "link", "del", BRIDGE)
    _run("ip", "addr", "del", f"{HOST_IP}/32", "dev", "lo")
    for flag in ("-s", "-d"):
        _run("conntrack", "-D", flag, POD_CIDR)
    for name, value in record.get("sysctls", {}).items():
        if value is not None and _read_sysctl(name) != value:
            with contextlib.suppress(OSError):
                _sysctl_path(name).write_text(value)
    for d in record.get("absent_dirs", []):
        _run("rm", "-rf", "--one-file-system", d)
    RECORD_FILE.unlink(missing_ok=True)


def _pids_in_cgroups() -> set[int]:
    pids: set[int] = set()
    for procs in CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}/**/cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def kill_pod_processes() -> None:
    """SIGKILL every process still in a pod's cgroup (containers whose shim is gone)."""
    for _ in range(50):
        pids = _pids_in_cgroups()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


# the cluster's own programs: a process of one of these naming the cluster's directory is ours
# (an editor or `tail -f` of a log file there is not)
PROGRAMS = frozenset(
    {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "kubelet",
        "kube-proxy",
        "kube-router",
    }
)


def _processes() -> Iterable[tuple[int, str, str]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                exe = os.path.basename(os.readlink(entry / "exe")).removesuffix(" (deleted)")
                yield int(entry.name), exe, (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()


def processes_under(workdir: Path) -> list[tuple[int, str]]:
    """The cluster's processes still running (e.g. containerd's shims, which outlive containerd)."""
    return [(pid, cmd) for pid, exe, cmd in _processes() if exe in PROGRAMS and str(workdir) in cmd]


def kill_processes_under(workdir: Path) -> None:
    for pid, _ in processes_under(workdir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def mounts_under(roots: Iterable[Path]) -> list[str]:
    prefixes = [str(r).rstrip("/") + "/" for r in roots] + [str(r) for r in roots]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p) for p in prefixes):
                found.append(point)
    return found


def unmount_under(roots: Iterable[Path]) -> None:
    roots = list(roots)
    for _ in range(5):  # stacked mounts need a pass each
        points = mounts_under(roots)
        if not points:
            return
        for point in sorted(set(points), key=len, reverse=True):
            if _run("umount", point).returncode != 0:
                _run("umount", "-l", point)


def _kubepods_dirs() -> list[Path]:
    return [d for d in CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}") if d.is_dir()]


def remove_cgroups() -> None:
    for top in _kubepods_dirs():
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _filtered_rules(saved: str) -> tuple[str, bool]:
    """iptables-save text without our chains and the rules that use them; whether it changed."""
    out, changed = [], False
    for line in saved.splitlines():
        if line.startswith(":") and OUR_CHAIN.match(line[1:]):
            changed = True
            continue
        if line.startswith("-A "):
            words = line.split()
            targets = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g")}
            if OUR_CHAIN.match(words[1]) or any(OUR_CHAIN.match(t) for t in targets):
                changed = True
                continue
        out.append(line)
    return "\n".join(out) + "\n", changed


def remove_iptables() -> None:
    for family in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            saved = _run(f"{family}-save", "-t", table).stdout
            if not saved:
                continue
            rules, changed = _filtered_rules(saved)
            if changed:
                _run(f"{family}-restore", "-T", table, input=rules)


def remove_ipsets() -> None:
    for name in _run("ipset", "list", "-n").stdout.split():
        if OUR_IPSET.match(name):
            _run("ipset", "destroy", name)


# -- what is left ---------------------------------------------------------------------------------


def snapshot() -> dict:
    """The host facts a node changes and a stop must put back: compare one taken before a cluster
    starts with one taken after it stops."""
    return {
        "sysctls": {name: _read_sysctl(name) for name in SYSCTLS},
        "dirs": [d for d in FIXED_DIRS if os.path.lexists(d)],
    }


def leftovers(workdir: Path) -> list[str]:
    """Everything of a local node still on the host; empty after a clean stop."""
    found: list[str] = []
    found += [f"process {pid}: {cmd[:120]}" for pid, cmd in processes_under(workdir)]
    found += [f"pod process {pid}" for pid in _pids_in_cgroups()]
    roots = [workdir, Path("/run/netns"), Path("/run/containerd"), Path("/var/lib/kubelet")]
    found += [f"mount {m}" for m in mounts_under(roots)]
    found += [f"cgroup {d}" for d in _kubepods_dirs()]
    for family in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            saved = _run(f"{family}-save", "-t", table).stdout
            found += [
                f"{family} {table} chain {line[1:].split()[0]}"
                for line in saved.splitlines()
                if line.startswith(":") and OUR_CHAIN.match(line[1:])
            ]
    found += [f"ipset {n}" for n in _run("ipset", "list", "-n").stdout.split() if OUR_IPSET.match(n)]
    if _run("ip", "link", "show", BRIDGE).returncode == 0:
        found.append(f"link {BRIDGE}")
    if f"inet {HOST_IP}/32" in _run("ip", "-4", "addr", "show", "dev", "lo").stdout:
        found.append(f"address {HOST_IP} on lo")
    if Path("/run/netns").is_dir():
        found += [f"netns {n.name}" for n in Path("/run/netns").iterdir()]
    if RECORD_FILE.exists():
        found.append(f"record {RECORD_FILE}")
    return found
