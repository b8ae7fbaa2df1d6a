#!/usr/bin/env bash
# Whole-process CPU per accepted span: the real `sentinel run` (the 10-rule
# bench pack, the trace buffer on) against a bare pdata receiver
# (`otlpload bare`: OTLP/HTTP, pooled buffer, UnmarshalProto, nothing else),
# each pinned to core 0 while `otlpload send` loads it from core 1 for
# DURATION, in ROUNDS alternating rounds of the same run. CPU is utime + stime from
# /proc/<pid>/stat over the load; spans are those answered 200.
# Loopback only; every process it starts is stopped at exit.
#
#   scripts/measure-ingest.sh                      # whole traces, 20s each
#   SHAPE=server DURATION=30s scripts/measure-ingest.sh
#   ROUNDS=5 DURATION=10s scripts/measure-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-20s}
senders=${SENDERS:-4}
shape=${SHAPE:-whole}        # whole: 4-span traces; server: apiserver SERVER spans only
spans=${SPANS:-400}          # per request
base=${BASE_PORT:-24000}
rounds=${ROUNDS:-3}          # alternating sentinel/bare rounds; the median ratio is reported

. scripts/lib.sh
printf 'global: {evaluation_interval: 15s}\nrule_files: [rules.yaml]\n' > "$work/sentinel.yaml"

hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME PID URL: prints "NAME accepted_spans cpu_seconds ns_per_span"
measure() {
  local name=$1 pid=$2 url=$3 before after out accepted
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 "$work/otlpload" send -url "$url" -duration "$duration" -senders "$senders" -spans "$spans" -shape "$shape")
  after=$(cpu_ticks "$pid")
  accepted=$(awk '/^accepted_spans/{print $2}' <<<"$out")
  awk -v n="$name" -v a="$accepted" -v t=$((after - before)) -v hz="$hz" -v o="$(tr '\n' ' ' <<<"$out")" \
    'BEGIN { s = t / hz; printf "%-9s accepted_spans=%d cpu_s=%.2f cpu_ns_per_span=%.0f  (%s)\n", n, a, s, (a > 0 ? s * 1e9 / a : 0), o }'
}

echo "nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) shape=$shape spans/request=$spans senders=$senders duration=$duration go=$(go env GOVERSION)"

taskset -c 0 "$work/sentinel" run --config.file="$work/sentinel.yaml" --storage.path="$work/data" \
  --web.listen-address="127.0.0.1:$((base + 90))" --otlp.grpc-address="127.0.0.1:$((base + 17))" \
  --otlp.http-address="127.0.0.1:$((base + 18))" --log.level=warn 2>"$work/sentinel.log" &
pids+=($!)
sentinel_pid=$!
taskset -c 0 "$work/otlpload" bare -listen "127.0.0.1:$((base + 19))" 2>"$work/bare.log" &
pids+=($!)
bare_pid=$!
wait_for "http://127.0.0.1:$((base + 90))/-/ready"
wait_for "http://127.0.0.1:$((base + 19))/"

# Rounds alternate between the two, so that a change of the machine's
# speed (other tenants, frequency) falls on both alike; the ratio is the
# median of the rounds' ratios.
ratios=()
for round in $(seq 1 "$rounds"); do
  sentinel_line=$(measure sentinel "$sentinel_pid" "http://127.0.0.1:$((base + 18))/v1/traces")
  echo "round $round $sentinel_line"
  bare_line=$(measure bare "$bare_pid" "http://127.0.0.1:$((base + 19))/v1/traces")
  echo "round $round $bare_line"
  s=$(sed -E 's/.*cpu_ns_per_span=([0-9]+).*/\1/' <<<"$sentinel_line")
  b=$(sed -E 's/.*cpu_ns_per_span=([0-9]+).*/\1/' <<<"$bare_line")
  r=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.3f", s / b }')
  echo "round $round ratio sentinel/bare = $r"
  ratios+=("$r")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "median ratio sentinel/bare over %d rounds = %.2f (target <= 0.5)\n", NR, m }'
