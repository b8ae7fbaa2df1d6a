#!/usr/bin/env bash
# Memory of the real `sentinel run` (the 10-rule bench pack: group_by
# namespace) pinned to core 0, loaded by `otlpload send` from core 1 with
# whole traces whose SERVER spans GET the pods of 1,000 namespaces (so the
# pods rule tracks 1,000 groups). VmRSS is sampled from /proc/<pid>/status
# every 0.5 s; VmHWM is read at the end.
#
#   spans:    SPANS_TOTAL spans (default 10 million), as fast as answered.
#   overload: capacity is measured for 10 s, then twice that rate is
#             offered for OVERLOAD (default 60s), open loop (each request
#             sent when due, whether or not earlier ones were answered, as
#             a fleet of exporters does; at most OVERLOAD_IN_FLIGHT, default
#             800, outstanding: 800 exporters, under the 1,024 connections
#             sentinel keeps open by default), while
#             `otlpload probe` GETs /-/healthy and /metrics every 100 ms;
#             the spans answered 200 are compared with
#             sentinel_spans_received_total and sentinel_observations_total.
#             SPANS_PER_REQUEST (default 400) sizes the requests of both
#             phases: with 4000, 800 exporters wait longer than
#             otlp.limits.max_queue_wait and are refused with Retry-After.
#
# BUFFER_BYTES is --traces.buffer-bytes (default 64 MiB, sentinel's own
# default), BUDGET the otlp.limits.memory_budget_bytes (default 64 MiB;
# sentinel's own default is 256 MiB). Loopback only; every process it
# starts is stopped at exit.
#
# Sentinel runs as it is deployed: in a container with a memory limit,
# from which it sets its Go memory limit (automemlimit, 85% of it). As
# root, the script puts it in a memory cgroup of its own (v1 or v2) whose
# limit is MEMORY_LIMIT, by default the bound checked, BUDGET +
# BUFFER_BYTES + 64 MiB (the kernel kills a process over it); without
# cgroups it sets GOMEMLIMIT to 85% of it instead. MEMORY_LIMIT=none runs
# it without a limit.
#
#   scripts/measure-memory.sh spans
#   scripts/measure-memory.sh overload
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-spans}
buffer=${BUFFER_BYTES:-67108864}
budget=${BUDGET:-67108864}
total=${SPANS_TOTAL:-10000000}
overload=${OVERLOAD:-60s}
# The probe shares core 1 with the load generator, which saturates it: as
# root it runs SCHED_FIFO so that what it measures is sentinel's answer,
# not its own wait for the core (PROBE_RT=0 turns that off).
probe_prio=""
if [ "${PROBE_RT:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v chrt >/dev/null; then
  probe_prio="chrt -f 50"
fi
inflight=${OVERLOAD_IN_FLIGHT:-800}
per_request=${SPANS_PER_REQUEST:-400}
base=${BASE_PORT:-25000}

. scripts/lib.sh
printf 'global: {evaluation_interval: 15s}\nrule_files: [rules.yaml]\notlp: {limits: {memory_budget_bytes: %d}}\n' "$budget" > "$work/sentinel.yaml"

web="http://127.0.0.1:$((base + 90))"
otlp="http://127.0.0.1:$((base + 18))/v1/traces"
echo "nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) mode=$mode spans_per_request=$per_request in_flight=$inflight traces.buffer-bytes=$buffer memory_budget_bytes=$budget go=$(go env GOVERSION)"

bound=$((budget + buffer + (64 << 20)))
limit=${MEMORY_LIMIT:-$bound}
cgroup=""
run_limited() { exec "$@"; }
if [ "$limit" != none ]; then
  if [ "$(id -u)" = 0 ] && [ -d /sys/fs/cgroup/memory ] && mkdir "/sys/fs/cgroup/memory/sentinel-measure-$$" 2>/dev/null; then
    cgroup=/sys/fs/cgroup/memory/sentinel-measure-$$
    echo "$limit" >"$cgroup/memory.limit_in_bytes"
  elif [ "$(id -u)" = 0 ] && [ -f /sys/fs/cgroup/cgroup.controllers ] && mkdir "/sys/fs/cgroup/sentinel-measure-$$" 2>/dev/null &&
    echo "$limit" >"/sys/fs/cgroup/sentinel-measure-$$/memory.max" 2>/dev/null; then
    cgroup=/sys/fs/cgroup/sentinel-measure-$$
  else
    [ -d "/sys/fs/cgroup/sentinel-measure-$$" ] && rmdir "/sys/fs/cgroup/sentinel-measure-$$"
    export GOMEMLIMIT=$((limit * 85 / 100))
  fi
  if [ -n "$cgroup" ]; then
    run_limited() { echo "$BASHPID" >"$cgroup/cgroup.procs" && exec "$@"; }
    echo "sentinel runs in memory cgroup $cgroup, limit $((limit >> 20)) MiB (the Go memory limit is 85% of it: $((limit * 85 / 100 >> 20)) MiB)"
  else
    echo "no memory cgroup: GOMEMLIMIT=$GOMEMLIMIT (85% of $((limit >> 20)) MiB)"
  fi
fi

( run_limited taskset -c 0 "$work/sentinel" run --config.file="$work/sentinel.yaml" --storage.path="$work/data" \
  --web.listen-address="127.0.0.1:$((base + 90))" --otlp.grpc-address="127.0.0.1:$((base + 17))" \
  --otlp.http-address="127.0.0.1:$((base + 18))" --traces.buffer-bytes="$buffer" --log.level=info 2>"$work/sentinel.log" ) &
pids+=($!)
pid=$!
wait_for "$web/-/ready"

status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; } # kB
echo "at start: VmRSS=$(status VmRSS) kB; $(grep -o 'msg="[^"]*memory limit.*' "$work/sentinel.log" | head -1)"
: >"$work/rss"
( while kill -0 "$pid" 2>/dev/null; do status VmRSS >>"$work/rss"; sleep 0.5; done ) &
pids+=($!)

metric() { # name{labels} as printed by /metrics
  curl -s -m 10 "$web/metrics" | awk -v m="$1" 'index($0, m) == 1 {print $2}'
}
spans_received() { metric 'sentinel_spans_received_total{transport="http"}'; }
observed() { metric 'sentinel_observations_total{source="spans"}'; }

case $mode in
spans)
  taskset -c 1 "$work/otlpload" send -url "$otlp" -senders 4 -spans 400 -namespaces 1000 -max-spans "$total" -duration 10m | tr '\n' ' '
  echo
  # The groups show in /metrics once evaluated (every 15 s).
  sleep 16
  curl -s -m 10 "$web/metrics" >"$work/metrics" || true
  echo "series of sentinel_rule_observations by rule (one per group):"
  grep '^sentinel_rule_observations{' "$work/metrics" | sed -E 's/.*[{,]rule="([^"]*)".*/\1/' | sort | uniq -c || true
  grep '^sentinel_rule_groups_overflow_total' "$work/metrics" || echo "sentinel_rule_groups_overflow_total: none"
  ;;
overload)
  out=$(taskset -c 1 "$work/otlpload" send -url "$otlp" -senders 4 -spans "$per_request" -namespaces 1000 -duration 10s)
  cap=$(awk '/^accepted_spans/{a=$2} /^seconds/{s=$2} END {printf "%.0f", a/s}' <<<"$out")
  echo "capacity: $cap spans/s ($(tr '\n' ' ' <<<"$out"))"
  r0=$(spans_received); o0=$(observed)
  : >"$work/rss"
  $probe_prio taskset -c 1 "$work/otlpload" probe -url "$web/-/healthy" -url "$web/metrics" -duration "$overload" >"$work/probe" &
  pids+=($!)
  probe_pid=$!
  out=$(taskset -c 1 "$work/otlpload" send -url "$otlp" -open -max-in-flight "$inflight" -spans "$per_request" -namespaces 1000 -rate $((2 * cap)) -duration "$overload")
  wait "$probe_pid" || true
  echo "overload at $((2 * cap)) spans/s offered: $(tr '\n' ' ' <<<"$out")"
  cat "$work/probe"
  sleep 3
  r1=$(spans_received); o1=$(observed)
  accepted=$(awk '/^accepted_spans/{print $2}' <<<"$out")
  awk -v a="$accepted" -v r="$r0" -v R="$r1" -v o="$o0" -v O="$o1" 'BEGIN {
    printf "answered 200: %d spans; sentinel_spans_received_total{transport=\"http\"} grew by %d; sentinel_observations_total{source=\"spans\"} by %d\n", a, R - r, O - o }'
  curl -s -m 10 "$web/metrics" | grep -E '^sentinel_otlp_requests_refused_total|^sentinel_otlp_requests_total|^sentinel_spans_rejected_total' || true
  ;;
*) echo "mode: spans or overload" >&2; exit 2 ;;
esac

sleep 1
sort -n "$work/rss" | awk '{v[NR]=$1} END {printf "VmRSS sampled every 0.5 s (spans: from the start to the end; overload: during it): median %.1f MiB, max %.1f MiB (%d samples)\n", v[int((NR+1)/2)]/1024, v[NR]/1024, NR}'
echo "bound checked (budget + buffer + 64 MiB): $((bound >> 20)) MiB"
echo "VmHWM=$(( $(status VmHWM) / 1024 )) MiB VmRSS now=$(( $(status VmRSS) / 1024 )) MiB load=$(cut -d' ' -f1-3 /proc/loadavg)"
