#!/usr/bin/env bash
# The whole test suite: formatting, vet, every test with the race detector
# (end-to-end tests against a real Alertmanager), and a short run of every
# fuzz target. `.ci/run` calls this; so can you.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts: the end-to-end and notifier tests run Debian's Alertmanager.
if ! command -v prometheus-alertmanager >/dev/null && ! command -v alertmanager >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing prometheus-alertmanager"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null
  else
    echo "prometheus-alertmanager is not installed: the end-to-end tests will be skipped" >&2
    echo "(sudo apt-get install prometheus-alertmanager)" >&2
  fi
fi
# The Debian package starts a service of its own; the tests start theirs.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
  systemctl stop prometheus-alertmanager || true
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 10m ./...

echo "== fuzz (briefly)"
fuzztime=${FUZZTIME:-8s}
for target in \
  ./rules:FuzzParse \
  ./config:FuzzParse \
  ./sources/k8s:FuzzParse \
  ./sources/otlp:FuzzHTTPDecode \
  $(grep -ho '^func Fuzz[A-Za-z]*' ruletest/*_test.go 2>/dev/null | sed 's/^func /.\/ruletest:/'); do
  pkg=${target%%:*}; fn=${target##*:}
  go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "$pkg"
done
echo "== all tests passed"
