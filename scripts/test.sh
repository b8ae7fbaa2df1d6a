#!/usr/bin/env bash
# The whole test suite: formatting, vet, every test with the race detector
# (end-to-end tests against a real Alertmanager, a real Prometheus for
# histogram parity, a real etcd, headless Chromium for the status page),
# the deploy manifests and the Helm chart (with the real helm, built from
# its Go module), promtool on the meta-alerts, and a short run of every
# fuzz target.
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

# helm, built from its Go module at a pinned version (once; cached).
helm_version=v3.22.0
helm_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sentinel/helm-$helm_version"
if [ ! -x "$helm_dir/helm" ]; then
  echo "== building helm $helm_version"
  GOBIN="$helm_dir" go install "helm.sh/helm/v3/cmd/helm@$helm_version"
fi
export HELM="$helm_dir/helm"

echo "== helm lint, helm template"
"$HELM" lint --strict deploy/helm/sentinel
"$HELM" lint --strict deploy/helm/sentinel --set ha.enabled=true
"$HELM" template sentinel deploy/helm/sentinel --namespace monitoring >/dev/null

# The kustomize builds and the chart's renderings, decoded strictly into
# the Kubernetes types and compared object by object; promtool test rules
# on the meta-alerts as shipped (deploy/monitoring/).
echo "== deploy manifests, Helm chart, meta-alerts"
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
  ./sources/otlp:FuzzDecodeDifferential \
  ./sources/otlp/otlpwire:FuzzScan \
  ./sources/scrape:FuzzParseExposition \
  ./ruletest:FuzzParseTestFile \
  ./ruletest:FuzzExpandDurations \
  ./ruletest:FuzzExpandSeries \
  ./traces:FuzzAssemble; do
  pkg=${target%%:*}; fn=${target##*:}
  fuzz() { go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "$pkg" 2>&1; }
  # A failing input is written to testdata/fuzz/<target>/ and fails the run.
  # On two busy cores Go's fuzz coordinator can also give up on a slow
  # worker ("context deadline exceeded") without any input: that case, and
  # only that one, is run once more.
  corpus="$pkg/testdata/fuzz/$fn"
  before=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
  if ! out=$(fuzz); then
    echo "$out"
    after=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
    if [ "$after" != "$before" ] || ! grep -q "context deadline exceeded" <<<"$out"; then
      exit 1
    fi
    echo "== $fn: the fuzz coordinator timed out with no failing input; once more"
    fuzz
  else
    echo "$out"
  fi
done
echo "== all tests passed"
