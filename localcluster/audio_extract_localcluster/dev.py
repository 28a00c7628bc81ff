"""`make dev`: the whole system on this machine as it ships, in the foreground, until Ctrl-C.

Starts the local cluster (control plane and a real node, the project's image built and loaded),
installs the chart with `helm upgrade --install` and development values (`release.py`), waits
for its rollout, runs `helm test`, and serves a sample video from this machine to the pods. The
API and the operator run only in the cluster, from the image. `.local/dev.env` holds what a shell
needs:

    set -a; . .local/dev.env; set +a
    kubectl get pods                         # the release's namespace is the context's default
    curl -H "X-API-Key: $AUDIO_EXTRACT_API_KEY" "$AUDIO_EXTRACT_API_URL/healthz"

`AUDIO_EXTRACT_API_URL` is the API Service's NodePort on this machine's node address
(`AUDIO_EXTRACT_HOST_IP`, on `lo`, which pods reach too; `AUDIO_EXTRACT_HOST_NAME` resolves to
it in pods). `make dev-reload` rolls a rebuilt image out while this runs. Ctrl-C (or SIGTERM)
stops everything; no process is left behind and the node puts the host back as it was.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from . import host, images, kueue, release
from .cluster import REPO, LocalCluster
from .localnet import http_ok
from .processes import Component, ComponentFailed


def say(line: str) -> None:
    print(f"[dev] {line}", flush=True)


def write_env(local: Path, cluster: LocalCluster, keys: release.DevSecrets, media_url: str) -> Path:
    env_file = local / "dev.env"
    env_file.touch(mode=0o600, exist_ok=True)
    env_file.chmod(0o600)  # the API key and the webhook secret
    env_file.write_text(
        f"# written by `make dev`; use it with: set -a; . {env_file}; set +a\n"
        f"KUBECONFIG={cluster.kubeconfig}\n"
        f"PATH={cluster.bin_dir}:$PATH\n"
        f"AUDIO_EXTRACT_NAMESPACE={release.NAMESPACE}\n"
        f"AUDIO_EXTRACT_API_URL={release.api_url()}\n"
        f"AUDIO_EXTRACT_API_KEY={keys.api_key}\n"
        f"AUDIO_EXTRACT_API_KEY_OTHER={keys.other_api_key}\n"
        f"AUDIO_EXTRACT_WEBHOOK_SECRET={keys.webhook_secret}\n"
        f"AUDIO_EXTRACT_HOST_IP={host.HOST_IP}\n"
        f"AUDIO_EXTRACT_HOST_NAME={host.HOST_NAME}\n"
        f"AUDIO_EXTRACT_MEDIA_URL={media_url}\n"
        f"AUDIO_EXTRACT_VOLUMES={cluster.volumes_root}\n"
        + "".join(f"{k}={v}\n" for k, v in (cluster.s3.env() if cluster.s3 else {}).items())
    )
    return env_file


MEDIA_PORT = 8080  # the sample manifests' sources: http://<HOST_NAME>:8080/videos/...


def media_server(media: Path) -> Component:
    """Serves `media` on the node's address: `sample.mp4` for the printed curl command and, under
    `videos/`, the sources the sample manifests (`crds/samples/`) name. allowCIDRs has the address."""
    from audio_extract_dev.media import make_media

    url = f"http://{host.HOST_IP}:{MEDIA_PORT}"
    if not (media / "videos" / "talk.mp4").exists():
        make_media(media / "videos")
    if not (media / "sample.mp4").exists():
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=10:duration=5",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=5",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-shortest",
                str(media / "sample.mp4"),
            ],
            check=True,
        )
    return Component(
        name="media",
        argv=[
            sys.executable,
            "-m",
            "http.server",
            str(MEDIA_PORT),
            "--bind",
            host.HOST_IP,
            "--directory",
            str(media),
        ],
        ready=lambda: http_ok(f"{url}/sample.mp4"),
        extra={"url": url},
    )


def curl_command(api_url: str, key: str, source_url: str) -> str:
    body = {"jobs": [{"source": {"type": "url", "url": source_url}, "output": {"format": "mp3"}}]}
    return (
        f"curl -sS -X POST {api_url}/v1/batch -H {shlex.quote('X-API-Key: ' + key)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}"
    )


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run(local: Path, kueue_on: bool = False) -> int:
    try:
        host.require_root()
    except PermissionError as e:
        say(str(e))
        return 1
    local.mkdir(parents=True, exist_ok=True)
    local.chmod(0o700)  # secrets, kubeconfigs, the store's volumes: root's only
    logs = local / "logs"
    shutil.rmtree(logs, ignore_errors=True)  # one run's logs at a time
    cluster = LocalCluster(
        local / "cluster",
        log_dir=logs,
        report=say,
        project_image=True,
        volumes_root=local / "volumes",  # kept across runs, like a real volume
        objectstore_root=local / "objectstore",  # and the bucket
        kueue=kueue_on,
    )
    # SIGTERM (e.g. from a process manager) stops as cleanly as Ctrl-C does; SIGINT is set
    # explicitly because Python leaves it ignored when started in the background
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupt)
    try:
        cluster.start()
        keys = release.DevSecrets.of(local)
        archive = images.project_image(cluster.bin_dir, REPO)  # cached: built by start()
        tag = release.tag_image(cluster.bin_dir, cluster.workdir, archive)
        helm = release.Helm(cluster.bin_dir, cluster.kubeconfig)
        assert cluster.s3 is not None  # started with the cluster
        cluster.kubectl("apply", "-f", "-", input=release.store_secret(cluster.s3, release.NAMESPACE))
        queue = kueue.QUEUE_NAME if kueue_on else None
        took = helm.install(release.dev_values(tag, keys, s3=cluster.s3, kueue_queue=queue))
        took += release.wait_serving(release.api_url())
        say(
            f"helm upgrade --install {release.RELEASE} ({release.IMAGE_REPOSITORY}:{tag}): "
            f"rolled out and serving in {took:.1f} s"
        )
        if kueue_on:
            queues = kueue.dev_queues(release.NAMESPACE, cpu=release.DEV_KUEUE_CPU)
            cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(queues))
            say(
                f"kueue: ClusterQueue and LocalQueue {kueue.QUEUE_NAME!r} of {release.DEV_KUEUE_CPU} CPU "
                "admit the Jobs (kubectl get workloads)"
            )
        started = time.monotonic()
        helm.test()
        say(f"helm test {release.RELEASE}: passed in {time.monotonic() - started:.1f} s")
        cluster.kubectl("config", "set-context", "--current", "--namespace", release.NAMESPACE)
        media = media_server(local / "media")
        cluster.run(media)
        env_file = write_env(local, cluster, keys, media.extra["url"])
        say(f"all up; logs in {logs}/; environment in {env_file}")
        say("try: " + curl_command(release.api_url(), keys.api_key, f"{media.extra['url']}/sample.mp4"))
        say(f"then: curl -sS -H 'X-API-Key: {keys.api_key}' {release.api_url()}/v1/status/<jobId>")
        say(f"and: set -a; . {env_file}; set +a; kubectl get pods   (Ctrl-C stops everything)")
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
    except (ComponentFailed, host.ClusterRunning, RuntimeError) as e:
        say(f"failed to start: {e}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop()
        (local / "dev.env").unlink(missing_ok=True)
        say("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the local cluster with the chart installed.")
    parser.add_argument("--local-dir", type=Path, default=Path(".local"), help="state, logs and dev.env")
    parser.add_argument("--kueue", action="store_true", help="start Kueue too; it admits the Jobs")
    args = parser.parse_args()
    sys.exit(run(args.local_dir.resolve(), kueue_on=args.kueue))


if __name__ == "__main__":
    main()
