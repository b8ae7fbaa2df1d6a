package alertmanager

import (
	"slices"
	"testing"

	"github.com/prometheus/alertmanager/api/v2/models"
)

func pending(name, state string) pendingAlert {
	labels := models.LabelSet{"alertname": name}
	return pendingAlert{
		key:   labelsKey(labels),
		alert: &models.PostableAlert{Alert: models.Alert{Labels: labels}, Annotations: models.LabelSet{"state": state}},
	}
}

func contents(q *queue) []string {
	var out []string
	for _, a := range q.peek(q.len()).alerts {
		out = append(out, a.Labels["alertname"]+"="+a.Annotations["state"])
	}
	return out
}

func TestQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(q *queue) (dropped int)
		want []string
	}{
		{
			name: "ack removes the delivered batch only",
			run: func(q *queue) int {
				q.push([]pendingAlert{pending("a", "1"), pending("b", "1"), pending("c", "1")})
				q.ack(q.peek(2))
				return 0
			},
			want: []string{"c=1"},
		},
		{
			name: "a newer state supersedes a queued one in place",
			run: func(q *queue) int {
				return q.push([]pendingAlert{pending("a", "1"), pending("b", "1"), pending("a", "2")})
			},
			want: []string{"a=2", "b=1"},
		},
		{
			name: "a state superseded while in flight stays queued",
			run: func(q *queue) int {
				q.push([]pendingAlert{pending("a", "1"), pending("b", "1")})
				b := q.peek(2)
				q.push([]pendingAlert{pending("b", "2"), pending("c", "1")})
				q.ack(b)
				return 0
			},
			want: []string{"b=2", "c=1"},
		},
		{
			name: "full queue drops the oldest",
			run: func(q *queue) int {
				return q.push([]pendingAlert{pending("a", "1"), pending("b", "1"), pending("c", "1"), pending("d", "1"), pending("e", "1")})
			},
			want: []string{"b=1", "c=1", "d=1", "e=1"},
		},
		{
			name: "entries dropped while in flight are not acked twice",
			run: func(q *queue) int {
				q.push([]pendingAlert{pending("a", "1"), pending("b", "1"), pending("c", "1")})
				b := q.peek(3)
				dropped := q.push([]pendingAlert{pending("d", "1"), pending("e", "1"), pending("f", "1")})
				q.ack(b)
				return dropped
			},
			want: []string{"d=1", "e=1", "f=1"},
		},
		{
			name: "a dropped alert can be queued again",
			run: func(q *queue) int {
				d := q.push([]pendingAlert{pending("a", "1"), pending("b", "1"), pending("c", "1"), pending("d", "1"), pending("e", "1")})
				return d + q.push([]pendingAlert{pending("a", "2")})
			},
			want: []string{"c=1", "d=1", "e=1", "a=2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(4)
			dropped := tc.run(q)
			if got := contents(q); !slices.Equal(got, tc.want) {
				t.Errorf("queue = %q, want %q", got, tc.want)
			}
			if len(q.byKey) != len(q.entries) {
				t.Errorf("index has %d keys for %d entries", len(q.byKey), len(q.entries))
			}
			wantDropped := map[string]int{"full queue drops the oldest": 1, "entries dropped while in flight are not acked twice": 2, "a dropped alert can be queued again": 2}[tc.name]
			if dropped != wantDropped {
				t.Errorf("dropped %d, want %d", dropped, wantDropped)
			}
		})
	}
}

func TestLabelsKey(t *testing.T) {
	a := labelsKey(map[string]string{"alertname": "x", "verb": "GET"})
	b := labelsKey(map[string]string{"verb": "GET", "alertname": "x"})
	if a != b {
		t.Errorf("key depends on map order")
	}
	// Names and values must not run into each other.
	if labelsKey(map[string]string{"ab": "c"}) == labelsKey(map[string]string{"a": "bc"}) {
		t.Errorf("keys of {ab=c} and {a=bc} collide")
	}
}
