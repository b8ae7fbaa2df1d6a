// Command sentinel watches the latency of the Kubernetes control plane: it
// receives OTLP spans, evaluates SLO rules over them and sends Alertmanager
// alerts that carry the slowest trace IDs. See README.md.
package main
