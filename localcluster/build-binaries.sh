#!/usr/bin/env bash
# Builds the local cluster's binaries from Go modules (no release downloads are possible here):
# the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl),
# the node (kubelet, kube-proxy, containerd and its runc shim, runc, CNI plugins, crictl,
# CoreDNS, kube-router's NetworkPolicy firewall), BuildKit, helm, SeaweedFS (the S3 store) and Kueue
# (with its CRDs, for the operator's Kueue mode), into a per-version cache
# outside the repository. Idempotent: binaries already present are kept.
# Prints the binary directory as the last line of its output.
#
#   build-binaries.sh [OPTIONAL...]   also build the optional binaries named: kwok (simulated
#                                     nodes, for bench/bench_kwok.py)
#   AUDIO_EXTRACT_CACHE  cache root (default ~/.cache/audio-extract)
set -euo pipefail

K8S_VERSION=v1.36.3        # newest release that builds with Go 1.26
ETCD_VERSION=v3.6.8        # the etcd that Kubernetes v1.36.3 requires
HELM_VERSION=v4.3.1
CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.3
CNI_VERSION=v1.10.0
CRICTL_VERSION=v1.37.0
BUILDKIT_VERSION=v0.34.2
COREDNS_VERSION=v1.15.0
KUBE_ROUTER_VERSION=v2.1.0 # the only version served; its old pins are raised below
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6  # served as a pseudo-version only
KUEUE_VERSION=v0.17.0
KWOK_VERSION=v0.8.0
GO_MIN=1.26.0

# kube-router v2.1.0 pins dependencies with published flaws; raised as distributions that ship it do.
KUBE_ROUTER_RAISE=(golang.org/x/net@v0.62.0 golang.org/x/crypto@v0.59.0 google.golang.org/grpc@v1.85.0
  google.golang.org/protobuf@v1.36.12)

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
CONTAINERD_BINS=(containerd containerd-shim-runc-v2 ctr)
CNI_BINS=(bridge host-local loopback portmap)
ALL_BINS=(etcd "${K8S_BINS[@]}" helm "${CONTAINERD_BINS[@]}" runc "${CNI_BINS[@]}" crictl
  buildkitd buildctl coredns kube-router weed kueue)
OPTIONAL_BINS=(kwok)  # only a benchmark needs them: built when named

say() { echo "[binaries] $*" >&2; }
for b in "$@"; do
  [[ " ${OPTIONAL_BINS[*]} " == *" $b "* ]] || { say "unknown optional binary: $b (known: ${OPTIONAL_BINS[*]})"; exit 2; }
done

CACHE="${AUDIO_EXTRACT_CACHE:-$HOME/.cache/audio-extract}"
BIN="$CACHE/bin/k8s-$K8S_VERSION"
mkdir -p "$BIN" "$CACHE/logs"
# One build at a time: a second run (another make target, a test session) waits for the first.
exec {lock}>"$CACHE/build.lock"
flock "$lock"

need=()
for b in "${ALL_BINS[@]}" "$@"; do [[ -x "$BIN/$b" ]] || need+=("$b"); done
if (( ${#need[@]} == 0 )); then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  say "Go is not installed: install Go >= $GO_MIN (https://go.dev/doc/install)"
  exit 1
fi
gov=$(go env GOVERSION | sed 's/^go//')
if [[ "$(printf '%s\n%s\n' "$GO_MIN" "$gov" | sort -V | head -n1)" != "$GO_MIN" ]]; then
  say "Go $gov is too old: Kubernetes $K8S_VERSION needs Go >= $GO_MIN"
  exit 1
fi
# runc links libseccomp (cgo) so the RuntimeDefault seccomp profile is enforced.
if [[ " ${need[*]} " == *" runc "* ]] && ! pkg-config --exists libseccomp 2>/dev/null; then
  say "runc needs libseccomp-dev and pkg-config: run 'make system-deps' (apt-get)"
  exit 1
fi

# A fresh module per project: their dependency graphs differ. GOFLAGS is cleared so a
# machine-wide -mod or -buildvcs setting cannot change the build; the same -trimpath everywhere
# lets modules share the build cache for the dependencies they have in common.
export GOFLAGS= GOTOOLCHAIN=local CGO_ENABLED=0
started=$(date +%s)
mod() { local d="$CACHE/src/$1"; mkdir -p "$d"; cd "$d"; [[ -f go.mod ]] || printf 'module local/%s\n\ngo %s\n' "$1" "$GO_MIN" > go.mod; }

# Runs a noisy command with its output in a log file; shows the end of that log only on failure.
quiet() {
  local log="$CACHE/logs/$1.log"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "failed: $* (full log: $log)"
    return 1
  fi
}
wanted() { for b in "$@"; do [[ " ${need[*]} " == *" $b "* ]] && return 0; done; return 1; }
timed() { local t=$(date +%s); "$@"; say "$1: $(( $(date +%s) - t )) s"; }

kubernetes() {
  mod "k8s-$K8S_VERSION"
  if ! grep -q '^replace' go.mod; then
    # k8s.io/kubernetes refers to its staging modules by ./staging paths; point them at the
    # published modules of the same version.
    local gomod minor=${K8S_VERSION#v1.}
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
    grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="v0.$minor" '{print "replace " $1 " => " $1 " " v}' >> go.mod
  fi
  local pkgs=() b p ld="-s -w" minor_num
  for b in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$K8S_VERSION"); done
  quiet go-get-k8s go get -tool "${pkgs[@]}"
  minor_num=$(echo "$K8S_VERSION" | cut -d. -f2)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor_num -X $p.gitTreeState=clean"
  done
  # One go build for all six: they share most of their packages.
  quiet build-k8s go build -trimpath -ldflags "$ld" -o "$BIN/" "${pkgs[@]%@*}"
}

etcd() {
  mod "etcd-$ETCD_VERSION"
  quiet go-get-etcd go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  quiet build-etcd go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
}

helm() {
  mod "helm-$HELM_VERSION"
  quiet go-get-helm go get -tool "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  quiet build-helm go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    -o "$BIN/helm" helm.sh/helm/v4/cmd/helm
}

containerd() {
  mod "containerd-$CONTAINERD_VERSION"
  local m=github.com/containerd/containerd/v2 pkgs=() b
  for b in "${CONTAINERD_BINS[@]}"; do pkgs+=("$m/cmd/$b"); done
  quiet go-get-containerd go get -tool "${pkgs[@]/%/@$CONTAINERD_VERSION}"
  quiet build-containerd go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" -o "$BIN/" "${pkgs[@]}"
}

runc() {
  mod "runc-$RUNC_VERSION"
  quiet go-get-runc go get -tool "github.com/opencontainers/runc@$RUNC_VERSION"
  # Not the default libpathrs tag: it needs a Rust library.
  CGO_ENABLED=1 quiet build-runc go build -trimpath -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$BIN/runc" github.com/opencontainers/runc
}

cni() {
  mod "cni-$CNI_VERSION"
  local m=github.com/containernetworking/plugins/plugins
  local pkgs=("$m/main/bridge" "$m/ipam/host-local" "$m/main/loopback" "$m/meta/portmap")
  quiet go-get-cni go get -tool "${pkgs[@]/%/@$CNI_VERSION}"
  quiet build-cni go build -trimpath -ldflags "-s -w" -o "$BIN/" "${pkgs[@]}"
}

crictl() {
  mod "crictl-$CRICTL_VERSION"
  quiet go-get-crictl go get -tool "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  quiet build-crictl go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    -o "$BIN/crictl" sigs.k8s.io/cri-tools/cmd/crictl
}

buildkit() {
  mod "buildkit-$BUILDKIT_VERSION"
  local m=github.com/moby/buildkit
  quiet go-get-buildkit go get -tool "$m/cmd/buildkitd@$BUILDKIT_VERSION" "$m/cmd/buildctl@$BUILDKIT_VERSION"
  quiet build-buildkit go build -trimpath -ldflags "-s -w -X $m/version.Version=$BUILDKIT_VERSION" \
    -o "$BIN/" "$m/cmd/buildkitd" "$m/cmd/buildctl"
}

coredns() {
  mod "coredns-$COREDNS_VERSION"
  quiet go-get-coredns go get -tool "github.com/coredns/coredns@$COREDNS_VERSION"
  quiet build-coredns go build -trimpath -ldflags "-s -w" -o "$BIN/coredns" github.com/coredns/coredns
}

kube_router() {
  mod "kube-router-$KUBE_ROUTER_VERSION"
  local m=github.com/cloudnativelabs/kube-router/v2
  quiet go-get-kube-router go get -tool "$m/cmd/kube-router@$KUBE_ROUTER_VERSION"
  quiet go-raise-kube-router go get "${KUBE_ROUTER_RAISE[@]}"
  quiet go-tidy-kube-router go mod tidy  # the raised modules need go.sum entries of their own
  quiet build-kube-router go build -trimpath -ldflags "-s -w -X $m/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    -o "$BIN/kube-router" "$m/cmd/kube-router"
}

seaweedfs() {
  mod "seaweedfs-$SEAWEEDFS_VERSION"
  # its own go.mod replaces a module deleted upstream; a main module must say so itself
  grep -q '^replace' go.mod || echo 'replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0' >> go.mod
  quiet go-get-seaweedfs go get -tool "github.com/seaweedfs/seaweedfs/weed@$SEAWEEDFS_VERSION"
  quiet build-seaweedfs go build -trimpath -ldflags "-s -w" -o "$BIN/weed" github.com/seaweedfs/seaweedfs/weed
}

kueue() {
  mod "kueue-$KUEUE_VERSION"
  quiet go-get-kueue go get -tool "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION"
  quiet build-kueue go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
    -o "$BIN/kueue.tmp" sigs.k8s.io/kueue/cmd/kueue
  # its CRDs and its manager's ClusterRole ship in the module, beside the code: keep them with
  # the binary (the binary last: it marks the step done)
  local src
  src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)/config/components
  rm -rf "$BIN/kueue-config" && mkdir -p "$BIN/kueue-config/crds" "$BIN/kueue-config/rbac"
  cp "$src"/crd/bases/*.yaml "$BIN/kueue-config/crds/"
  cp "$src"/rbac/{role,manager_secrets_role}.yaml "$BIN/kueue-config/rbac/"
  chmod -R u+w "$BIN/kueue-config"
  mv "$BIN/kueue.tmp" "$BIN/kueue"
}

kwok() {
  mod "kwok-$KWOK_VERSION"
  quiet go-get-kwok go get -tool "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  quiet build-kwok go build -trimpath -ldflags "-s -w" -o "$BIN/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
  # the stages it plays on nodes and on starting and deleted pods, and its controller's ClusterRole, as
  # its module ships them (the stage that ends a worker's pod is the project's: kwok.py)
  local src
  src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize
  rm -rf "$BIN/kwok-config" && mkdir -p "$BIN/kwok-config/stages"
  cp "$src"/stage/node/fast/node-initialize.yaml "$src"/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$src"/stage/pod/fast/{pod-ready,pod-delete}.yaml "$BIN/kwok-config/stages/"
  cp "$src"/rbac/role.yaml "$BIN/kwok-config/"
  chmod -R u+w "$BIN/kwok-config"
  mv "$BIN/kwok.tmp" "$BIN/kwok"
}

steps=()
wanted "${K8S_BINS[@]}" && steps+=(kubernetes)
wanted etcd && steps+=(etcd)
wanted helm && steps+=(helm)
wanted "${CONTAINERD_BINS[@]}" && steps+=(containerd)
wanted runc && steps+=(runc)
wanted "${CNI_BINS[@]}" && steps+=(cni)
wanted crictl && steps+=(crictl)
wanted buildkitd buildctl && steps+=(buildkit)
wanted coredns && steps+=(coredns)
wanted kube-router && steps+=(kube_router)
wanted weed && steps+=(seaweedfs)
wanted kueue && steps+=(kueue)
wanted kwok && steps+=(kwok)

say "building ${need[*]} into $BIN (about 22 minutes on 2 cores the first time; logs in $CACHE/logs)"
# Two lanes: one go build already uses every core, but linking is single-threaded and module
# downloads wait on the network, so a second lane fills those gaps. The lanes hold about the same
# work (measured cold, two lanes at once): Kubernetes ~750 s, CoreDNS and SeaweedFS (~300 s alone),
# against the rest with Kueue (~260 s alone).
lane() { local s; for s in "$@"; do ( timed "$s" ); done; }
first=() second=()
for s in "${steps[@]}"; do
  case $s in kubernetes|coredns|seaweedfs) first+=("$s") ;; *) second+=("$s") ;; esac
done
pids=()
lane "${first[@]}" & pids+=($!)
lane "${second[@]}" & pids+=($!)
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
(( failed == 0 )) || { say "build failed"; exit 1; }

say "built in $(( $(date +%s) - started )) s"
echo "$BIN"
