#!/usr/bin/env bash
# The whole test suite: formatting, vet, every test with the race detector
# (end-to-end tests against a real Alertmanager, a real Prometheus for
# histogram parity, a real etcd, headless Chromium for the status page),
# the deploy manifests, and a short run of every fuzz target.
# `.ci/run` calls this; so can you.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts, from Debian: Alertmanager (and amtool), Prometheus, Chromium.
need=()
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]}: the tests that need them are skipped (sudo apt-get install ${need[*]})" >&2
  fi
fi
# The Debian packages may start services of their own; the tests start theirs.
for svc in prometheus-alertmanager prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...
(cd e2e && go vet ./...)
(cd deploy && go vet ./...)

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
go test -race -count=1 -timeout 12m ./...

echo "== deploy manifests"
(cd deploy && go test -count=1 ./...)

echo "== real etcd (e2e module)"
(cd e2e && go test -race -count=1 -timeout 8m ./...)

echo "== rule pack"
go run ./cmd/sentinel test rules deploy/rules/*_test.yaml

echo "== fuzz (briefly)"
fuzztime=${FUZZTIME:-8s}
for target in \
  ./rules:FuzzParse \
  ./config:FuzzParse \
  ./engine:FuzzRestoreSnapshot \
  ./sources/k8s:FuzzParse \
  ./sources/otlp:FuzzHTTPDecode \
  ./sources/scrape:FuzzParseExposition \
  ./ruletest:FuzzParseTestFile \
  ./ruletest:FuzzExpandDurations \
  ./ruletest:FuzzExpandSeries \
  ./traces:FuzzAssemble; do
  pkg=${target%%:*}; fn=${target##*:}
  go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "$pkg"
done
echo "== all tests passed"
