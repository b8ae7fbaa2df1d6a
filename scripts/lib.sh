# Sourced by the measure and profile scripts: a work directory removed at
# exit with every process whose pid is in pids (and the memory cgroup in
# cgroup, if set), sentinel and otlpload built into it with the 10-rule
# bench pack beside them, and wait_for.

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
  if [ -n "${cgroup:-}" ]; then rmdir "$cgroup" 2>/dev/null || true; fi
}
trap cleanup EXIT

go build -o "$work/sentinel" ./cmd/sentinel
go build -o "$work/otlpload" ./cmd/otlpload
cp sources/otlp/testdata/bench_rules.yaml "$work/rules.yaml"

wait_for() { # url: up to 10 s for it to answer
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2; return 1
}
