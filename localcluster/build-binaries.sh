#!/usr/bin/env bash
# Builds the local cluster's binaries from Go modules (no release downloads are possible here):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and helm, into a
# per-version cache outside the repository. Idempotent: binaries already present are kept.
# Prints the binary directory as the last line of its output.
#
#   KUBEBUILDER_ASSETS   a directory that already holds the binaries (envtest convention): used as is
#   AUDIO_EXTRACT_CACHE  cache root (default ~/.cache/audio-extract)
set -euo pipefail

K8S_VERSION=v1.36.3      # newest release that builds with Go 1.26
ETCD_VERSION=v3.6.8      # the etcd that Kubernetes v1.36.3 requires
HELM_VERSION=v4.3.1
GO_MIN=1.26.0

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ALL_BINS=(etcd "${K8S_BINS[@]}" helm)

say() { echo "[control-plane] $*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  missing=()
  for b in "${ALL_BINS[@]}"; do [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || missing+=("$b"); done
  if (( ${#missing[@]} )); then
    say "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks: ${missing[*]}"
    say "put those binaries there, or unset KUBEBUILDER_ASSETS to build everything with Go"
    exit 1
  fi
  say "using binaries from KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

CACHE="${AUDIO_EXTRACT_CACHE:-$HOME/.cache/audio-extract}"
BIN="$CACHE/bin/k8s-$K8S_VERSION"
mkdir -p "$BIN"

need=()
for b in "${ALL_BINS[@]}"; do [[ -x "$BIN/$b" ]] || need+=("$b"); done
if (( ${#need[@]} == 0 )); then
  say "binaries present in $BIN"
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  say "Go is not installed and KUBEBUILDER_ASSETS is not set."
  say "Install Go >= $GO_MIN (https://go.dev/doc/install, or 'apt-get install golang' if recent enough),"
  say "or point KUBEBUILDER_ASSETS at a directory holding: ${ALL_BINS[*]}"
  exit 1
fi
gov=$(go env GOVERSION | sed 's/^go//')
if [[ "$(printf '%s\n%s\n' "$GO_MIN" "$gov" | sort -V | head -n1)" != "$GO_MIN" ]]; then
  say "Go $gov is too old: Kubernetes $K8S_VERSION needs Go >= $GO_MIN"
  exit 1
fi

# A fresh module per component: their dependency graphs differ.
# GOFLAGS is cleared so a machine-wide -mod or -buildvcs setting cannot change the build.
export GOFLAGS= GOTOOLCHAIN=local
started=$(date +%s)
mod() { local d="$CACHE/src/$1"; mkdir -p "$d"; cd "$d"; [[ -f go.mod ]] || printf 'module local/%s\n\ngo %s\n' "$1" "$GO_MIN" > go.mod; }

# Runs a noisy command (go get prints every module it downloads) with its output in a log file;
# shows the end of that log only if the command fails.
quiet() {
  local log="$CACHE/logs/$1.log"; shift
  mkdir -p "$CACHE/logs"
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "failed: $* (full log: $log)"
    exit 1
  fi
}

wanted() { for b in "$@"; do [[ " ${need[*]} " == *" $b "* ]] && return 0; done; return 1; }

if wanted "${K8S_BINS[@]}"; then
  say "building Kubernetes $K8S_VERSION (${K8S_BINS[*]}); about 4 minutes on 2 cores the first time"
  mod "k8s-$K8S_VERSION"
  if ! grep -q '^replace' go.mod; then
    # k8s.io/kubernetes refers to its staging modules by ./staging paths; point them at the
    # published modules of the same version.
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
    minor=${K8S_VERSION#v1.}
    grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="v0.$minor" '{print "replace " $1 " => " $1 " " v}' >> go.mod
  fi
  say "go get ${K8S_BINS[*]} (module downloads logged in $CACHE/logs/)"
  for b in "${K8S_BINS[@]}"; do quiet "go-get-$b" go get -tool "k8s.io/kubernetes/cmd/$b@$K8S_VERSION"; done
  minor_num=$(echo "$K8S_VERSION" | cut -d. -f2)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor_num -X $p.gitTreeState=clean"
  done
  for b in "${K8S_BINS[@]}"; do
    say "go build $b"
    go build -trimpath -ldflags "$ld" -o "$BIN/$b" "k8s.io/kubernetes/cmd/$b"
  done
fi

if wanted etcd; then
  say "building etcd $ETCD_VERSION"
  mod "etcd-$ETCD_VERSION"
  quiet go-get-etcd go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
fi

if wanted helm; then
  say "building helm $HELM_VERSION"
  mod "helm-$HELM_VERSION"
  quiet go-get-helm go get -tool "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    -o "$BIN/helm" helm.sh/helm/v4/cmd/helm
fi

say "built ${need[*]} in $(( $(date +%s) - started )) s into $BIN"
echo "$BIN"
