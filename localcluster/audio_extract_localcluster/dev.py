"""`make dev`: the whole system on this machine, in the foreground, until Ctrl-C.

Builds the project's image, starts the local cluster (control plane and a real node, the image
loaded into it), then each further component (the operator, the API, ...), one status line per
component; logs go to `.local/logs/<component>.log`, and `.local/dev.env` holds what a shell needs
to talk to the cluster and to serve pods from this machine (`AUDIO_EXTRACT_HOST_IP`, an address of
this machine that pods reach, and `AUDIO_EXTRACT_HOST_NAME`, a name pods resolve to it):

    set -a; . .local/dev.env; set +a
    kubectl get nodes

Ctrl-C (or SIGTERM) stops everything, newest first; no process is left behind (each runs in its
own process group, which is TERMed then KILLed), and the node puts the host back as it was.

Extension point — adding a component: put its module path in `EXTENSIONS`. The module exposes
`dev_components(cluster: LocalCluster, local: Path) -> list[Component]`, which may prepare the
cluster first (apply CRDs, create a namespace, ...) and returns the processes to run, in start
order, each with a ready check (see `processes.Component`). A component whose `extra` has a
"url" is announced in dev.env as AUDIO_EXTRACT_<NAME>_URL.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import signal
import sys
import time
from pathlib import Path

from . import host
from .cluster import LocalCluster
from .processes import Component, ComponentFailed

# "module:function"; a module that does not exist yet is reported and skipped.
EXTENSIONS = (
    "audio_extract_operator.dev:dev_components",
    "audio_extract_api.dev:dev_components",
)


def say(line: str) -> None:
    print(f"[dev] {line}", flush=True)


def write_env(local: Path, cluster: LocalCluster, specs: list[Component]) -> Path:
    """KUBECONFIG, PATH with kubectl/helm, and AUDIO_EXTRACT_<NAME>_URL for components that
    declare `extra["url"]` (e.g. the API)."""
    env_file = local / "dev.env"
    urls = [
        f"AUDIO_EXTRACT_{spec.name.upper().replace('-', '_')}_URL={spec.extra['url']}\n"
        for spec in specs
        if "url" in spec.extra
    ]
    # components may also export variables (e.g. the API's development key)
    urls += [f"{k}={v}\n" for spec in specs for k, v in spec.extra.get("env", {}).items()]
    env_file.write_text(
        f"# written by `make dev`; use it with: set -a; . {env_file}; set +a\n"
        f"KUBECONFIG={cluster.kubeconfig}\n"
        f"PATH={cluster.bin_dir}:$PATH\n"
        f"AUDIO_EXTRACT_HOST_IP={host.HOST_IP}\n"
        f"AUDIO_EXTRACT_HOST_NAME={host.HOST_NAME}\n"
        f"AUDIO_EXTRACT_VOLUMES={cluster.volumes_root}\n" + "".join(urls)
    )
    return env_file


def extensions(cluster: LocalCluster, local: Path) -> list[Component]:
    specs = []
    for entry in EXTENSIONS:
        module_name, func = entry.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            say(f"{module_name} not present: skipped")
            continue
        specs += getattr(module, func)(cluster, local)
    return specs


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run(local: Path) -> int:
    try:
        host.require_root()
    except PermissionError as e:
        say(str(e))
        return 1
    local.mkdir(parents=True, exist_ok=True)
    logs = local / "logs"
    shutil.rmtree(logs, ignore_errors=True)  # one run's logs at a time
    cluster = LocalCluster(
        local / "cluster",
        log_dir=logs,
        report=say,
        project_image=True,
        volumes_root=local / "volumes",  # kept across runs, like a real volume
    )
    # SIGTERM (e.g. from a process manager) stops as cleanly as Ctrl-C does; SIGINT is set
    # explicitly because Python leaves it ignored when started in the background
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupt)
    try:
        cluster.start()
        specs = extensions(cluster, local)
        for spec in specs:
            cluster.run(spec)
        env_file = write_env(local, cluster, specs)
        say(f"all up; logs in {logs}/; environment in {env_file}")
        for spec in specs:
            if "hint" in spec.extra:  # e.g. the API's ready-to-paste curl command
                say(spec.extra["hint"])
        say(f"try: set -a; . {env_file}; set +a; kubectl get nodes   (Ctrl-C stops everything)")
        while True:
            dead = cluster.failed()
            if dead:
                say(f"exited: {', '.join(dead)}; stopping (see {logs}/)")
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print(flush=True)
        say("stopping")
        return 0
    except (ComponentFailed, host.ClusterRunning) as e:
        say(f"failed to start: {e}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop()
        (local / "dev.env").unlink(missing_ok=True)
        say("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the local cluster, operator and API.")
    parser.add_argument("--local-dir", type=Path, default=Path(".local"), help="state, logs and dev.env")
    args = parser.parse_args()
    sys.exit(run(args.local_dir.resolve()))


if __name__ == "__main__":
    main()
