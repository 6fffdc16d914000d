#!/usr/bin/env bash
# Moves the hello-world and Online Boutique fixtures from one cluster to another through a
# backup location, with kubectl migrate.
#
# Usage:
#   scripts/demo.sh                 two local test API servers, default backup folder
#   scripts/demo.sh --location URL  the same, through file:///folder or s3://bucket/prefix
#   scripts/demo.sh --source-context SRC --target-context DST [--kubeconfig FILE] [--location URL]
#                                   your own clusters (two contexts of one kubeconfig): the
#                                   fixtures are applied to SRC, backed up and restored into DST
#   --release                       build and run release binaries instead of debug ones
#
# With S3, pass the settings kubectl migrate takes: --endpoint URL, --region NAME and
# --credentials-file FILE are forwarded to backup and restore.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixtures="${FIXTURES:-$root/../shared/fixtures/manifests}"
profile=debug
source_context=""
target_context=""
kubeconfig=""
location_args=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --release) profile=release; shift ;;
        --source-context) source_context="$2"; shift 2 ;;
        --target-context) target_context="$2"; shift 2 ;;
        --kubeconfig) kubeconfig="$2"; shift 2 ;;
        --location|--endpoint|--region|--credentials-file|--profile|--addressing)
            location_args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -n "$source_context" && -z "$target_context" ]] || [[ -z "$source_context" && -n "$target_context" ]]; then
    echo "demo.sh: pass both --source-context and --target-context" >&2
    exit 2
fi
for file in helloworld-v1.yaml helloworld-v2.yaml online-boutique.yaml; do
    if [[ ! -f "$fixtures/$file" ]]; then
        echo "demo.sh: fixture $fixtures/$file not found: set FIXTURES to the manifests folder" >&2
        exit 1
    fi
done

echo "== building kubectl-migrate and test-apiserver ($profile)"
build_flags=(--quiet --bins -p kubectl-migrate -p kubectl-plugins-tests)
[[ "$profile" == release ]] && build_flags+=(--release)
(cd "$root" && cargo build "${build_flags[@]}")
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"
export PATH="$bin:$PATH"

work="$(mktemp -d -t kubectl-migrate-demo-XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

start_server() {
    local name="$1"
    "$bin/test-apiserver" --listen 127.0.0.1:0 --kubeconfig-out "$work/$name.kubeconfig" \
        >"$work/$name.out" 2>"$work/$name.err" &
    pids+=("$!")
    for _ in $(seq 1 100); do
        [[ -s "$work/$name.kubeconfig" ]] && return 0
        sleep 0.1
    done
    echo "demo.sh: test-apiserver for $name did not start:" >&2
    cat "$work/$name.err" >&2
    exit 1
}

if [[ -n "$source_context" ]]; then
    kube_source=(--context "$source_context")
    kube_target=(--context "$target_context")
    if [[ -n "$kubeconfig" ]]; then
        kube_source+=(--kubeconfig "$kubeconfig")
        kube_target+=(--kubeconfig "$kubeconfig")
    fi
else
    echo "== starting two local test API servers"
    start_server source
    start_server target
    kube_source=(--kubeconfig "$work/source.kubeconfig")
    kube_target=(--kubeconfig "$work/target.kubeconfig")
fi

echo "== applying the fixtures to the source"
for file in helloworld-v1.yaml helloworld-v2.yaml online-boutique.yaml; do
    kubectl "${kube_source[@]}" apply -f "$fixtures/$file" >/dev/null
done
kubectl "${kube_source[@]}" get deployments,services -A --no-headers | wc -l | xargs echo "   objects applied (deployments and services):"

backup="demo-$(date -u +%Y%m%d%H%M%S)"
echo "== kubectl migrate backup create $backup"
kubectl migrate backup create "$backup" "${kube_source[@]}" "${location_args[@]}"
kubectl migrate backup get "$backup" "${location_args[@]}"

echo "== kubectl migrate restore create --from-backup $backup (into the target)"
kubectl migrate restore create "$backup-restore" --from-backup "$backup" "${kube_target[@]}" "${location_args[@]}"

echo "== the target now has"
kubectl "${kube_target[@]}" get deployments,services -A
