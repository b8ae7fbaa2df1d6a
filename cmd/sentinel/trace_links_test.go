package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

var (
	viewLinkRe     = regexp.MustCompile(`<a class="trace-view" href="trace/([0-9a-f]{32})"`)
	externalLinkRe = regexp.MustCompile(`<a class="trace" href="([^"]*)" data-trace-id="([0-9a-f]{32})"`)
)

// TestExemplarTraceURLs: without trace_url_template the alerts' trace
// links open sentinel's own trace view under --web.external-url; with one
// they keep the template, and the status page links both.
func TestExemplarTraceURLs(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	const external = "http://sentinel.test:9464/"
	cases := []struct {
		name     string
		template bool
		url      func(id string) string
	}{
		{"without trace_url_template", false, func(id string) string { return "http://sentinel.test:9464/trace/" + id }},
		{"with trace_url_template", true, func(id string) string { return "http://tracing.test/trace/" + id }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := startSentinelOpts(t, e2eRules, "", func(o *daemonOptions) {
				o.ExternalURL = external
				if !tc.template {
					o.Config.TraceURLTemplate = ""
				}
			})
			s := newSpanSender(t, d)
			s.phase(t, 3*time.Second, 1500*time.Millisecond)
			base := "http://" + d.webLn.Addr().String()
			annotations := testkit.WaitFor(t, "a firing alert with exemplars", 30*time.Second, func() (map[string]string, bool) {
				var body struct {
					Data struct {
						Alerts []struct {
							Annotations map[string]string
							State       string
						}
					}
				}
				resp, err := http.Get(base + "/api/v1/alerts")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					t.Fatal(err)
				}
				for _, a := range body.Data.Alerts {
					if a.State == "firing" && a.Annotations["exemplar_trace_ids"] != "" {
						return a.Annotations, true
					}
				}
				return nil, false
			})
			ids := strings.Split(annotations["exemplar_trace_ids"], ",")
			var want []string
			for _, id := range ids {
				want = append(want, tc.url(id))
			}
			if got := annotations["exemplar_trace_urls"]; got != strings.Join(want, ",") {
				t.Errorf("exemplar_trace_urls %q, want %q", got, strings.Join(want, ","))
			}

			// The status page links every exemplar to sentinel's view, and
			// to the external one only when there is a template.
			_, page := httpDo(t, "GET", base+"/")
			views := map[string]bool{}
			for _, m := range viewLinkRe.FindAllStringSubmatch(page, -1) {
				views[m[1]] = true
			}
			external := externalLinkRe.FindAllStringSubmatch(page, -1)
			for _, id := range ids {
				if !views[id] {
					t.Errorf("the status page does not link %s to /trace/%s", id, id)
				}
			}
			if !tc.template && len(external) > 0 {
				t.Errorf("the status page links out without a template: %v", external[0])
			}
			if tc.template && len(external) < len(ids) {
				t.Errorf("the status page has %d external trace links, want at least %d", len(external), len(ids))
			}
			for _, m := range external {
				if m[1] != tc.url(m[2]) {
					t.Errorf("external link %q, want %q", m[1], tc.url(m[2]))
				}
			}
		})
	}
}

// TestTraceEndpointsServed: the daemon serves the trace view from its
// trace buffer, whose metrics are in /metrics.
func TestTraceEndpointsServed(t *testing.T) {
	d := startSentinel(t, e2eRules)
	base := "http://" + d.webLn.Addr().String()
	cases := []struct {
		path     string
		code     int
		contains string
	}{
		{"/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736", 404, `"errorType":"not_found"`},
		{"/api/v1/traces/4bf92f35", 400, `"errorType":"bad_data"`},
		{"/trace/4bf92f3577b34da6a3ce929d0e0e4736", 404, "not found"},
		{"/metrics", 200, "sentinel_trace_buffer_capacity_bytes"},
	}
	for _, c := range cases {
		code, body := httpDo(t, "GET", base+c.path)
		if code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d, want %d with %q:\n%.500s", c.path, code, c.code, c.contains, body)
		}
	}
}
