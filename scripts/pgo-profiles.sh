#!/usr/bin/env bash
# Profiles for Go's profile-guided optimisation (go build uses a main
# package's default.pgo by itself): a 30 s CPU profile of the real
# `sentinel run` (the 10-rule bench pack, the trace buffer on) taken from
# its /debug/pprof/profile while `otlpload send` loads it with whole traces,
# into cmd/sentinel/default.pgo; and the same of the bare pdata receiver
# (`otlpload bare -cpuprofile`), into cmd/otlpload/default.pgo, so that
# scripts/measure-ingest.sh compares two programs built alike. Each
# process pinned to core 0, the load on core 1; loopback only.
#
#   scripts/pgo-profiles.sh
set -euo pipefail
cd "$(dirname "$0")/.."

base=${BASE_PORT:-26000}
. scripts/lib.sh
printf 'global: {evaluation_interval: 15s}\nrule_files: [rules.yaml]\n' > "$work/sentinel.yaml"

taskset -c 0 "$work/sentinel" run --config.file="$work/sentinel.yaml" --storage.path="$work/data" \
  --web.listen-address="127.0.0.1:$((base + 90))" --otlp.grpc-address="127.0.0.1:$((base + 17))" \
  --otlp.http-address="127.0.0.1:$((base + 18))" --log.level=warn 2>"$work/sentinel.log" &
pids+=($!)
wait_for "http://127.0.0.1:$((base + 90))/-/ready"
taskset -c 1 "$work/otlpload" send -url "http://127.0.0.1:$((base + 18))/v1/traces" -duration 40s >/dev/null &
load=$!
sleep 3
curl -sf -o cmd/sentinel/default.pgo "http://127.0.0.1:$((base + 90))/debug/pprof/profile?seconds=30"
wait "$load"
echo "cmd/sentinel/default.pgo: $(wc -c <cmd/sentinel/default.pgo) bytes"

taskset -c 0 "$work/otlpload" bare -listen "127.0.0.1:$((base + 19))" -cpuprofile "$work/bare.pgo" 2>"$work/bare.log" &
bare=$!
pids+=($bare)
wait_for "http://127.0.0.1:$((base + 19))/"
taskset -c 1 "$work/otlpload" send -url "http://127.0.0.1:$((base + 19))/v1/traces" -duration 30s >/dev/null
kill "$bare"
wait "$bare" || true
cp "$work/bare.pgo" cmd/otlpload/default.pgo
echo "cmd/otlpload/default.pgo: $(wc -c <cmd/otlpload/default.pgo) bytes"
