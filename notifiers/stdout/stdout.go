package stdout

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
)

// Annotations whose value is a comma-separated list, printed one item a line.
var listAnnotations = map[string]bool{
	"exemplar_trace_ids":  true,
	"exemplar_trace_urls": true,
}

// Notifier writes every alert it is sent to w. It implements engine.Notifier.
type Notifier struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

var _ engine.Notifier = (*Notifier)(nil)

// New returns a Notifier that writes to w.
func New(w io.Writer) *Notifier {
	return &Notifier{w: w, now: time.Now}
}

// Send prints the alerts, each in one write so that concurrent senders never
// interleave. Write errors are ignored: the output is for a person watching.
func (n *Notifier) Send(alerts ...engine.Alert) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	for i := range alerts {
		var b bytes.Buffer
		format(&b, &alerts[i], now)
		_, _ = n.w.Write(b.Bytes())
	}
}

// format lays an alert out as:
//
//	FIRING KubeAPINamespacesLatencyP99
//	  labels:
//	    severity = page
//	  annotations:
//	    exemplar_trace_ids:
//	      4bf92f3577b34da6a3ce929d0e0e4736
//	    summary = p99 is 3s
//	  startsAt: 2024-05-01T10:00:00Z
//	  endsAt:   2024-05-01T10:04:00Z
func format(b *bytes.Buffer, a *engine.Alert, now time.Time) {
	state := "FIRING"
	if a.Resolved(now) {
		state = "RESOLVED"
	}
	name := a.Labels["alertname"]
	if name == "" {
		name = "(no alertname)"
	}
	fmt.Fprintf(b, "%s %s\n", state, name)

	b.WriteString("  labels:\n")
	for _, k := range sortedKeys(a.Labels) {
		if k == "alertname" {
			continue
		}
		fmt.Fprintf(b, "    %s = %s\n", k, a.Labels[k])
	}
	if len(a.Annotations) > 0 {
		b.WriteString("  annotations:\n")
		for _, k := range sortedKeys(a.Annotations) {
			v := a.Annotations[k]
			if listAnnotations[k] {
				fmt.Fprintf(b, "    %s:\n", k)
				items := 0
				for item := range strings.SplitSeq(v, ",") {
					if item = strings.TrimSpace(item); item != "" {
						fmt.Fprintf(b, "      %s\n", item)
						items++
					}
				}
				if items == 0 {
					b.WriteString("      (none)\n")
				}
				continue
			}
			// Continuation lines of a multi-line value line up under its first.
			indent := "\n" + strings.Repeat(" ", len("    "+k+" = "))
			fmt.Fprintf(b, "    %s = %s\n", k, strings.ReplaceAll(strings.TrimRight(v, "\n"), "\n", indent))
		}
	}
	fmt.Fprintf(b, "  startsAt: %s\n", formatTime(a.StartsAt))
	fmt.Fprintf(b, "  endsAt:   %s\n", formatTime(a.EndsAt))
	if a.GeneratorURL != "" {
		fmt.Fprintf(b, "  source:   %s\n", a.GeneratorURL)
	}
	b.WriteString("\n")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339Nano)
}
