package otlp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// Beyond max_connections a new connection is closed as soon as accepted
// and counted; once one closes, the next is served.
func TestConnectionsOverTheLimitAreClosed(t *testing.T) {
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			// Connections that send nothing are closed after the header
			// timeout: a long one, so that a slow run does not see them go.
			r := startReceiver(t, Options{Limits: Limits{MaxHTTPConnections: 3, MaxGRPCConnections: 3, ReadHeaderTimeout: time.Minute}})
			addr := r.HTTPAddr().String()
			tr := transportHTTP
			if transport == "grpc" {
				addr, tr = r.GRPCAddr().String(), transportGRPC
			}
			open := func() net.Conn {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			var held []net.Conn
			for range 3 {
				held = append(held, open())
			}
			testkit.WaitFor(t, "the 3 connections to be open", 20*time.Second, func() (bool, bool) {
				return true, r.conns[tr].open.Load() == 3
			})
			// The fourth is accepted and closed: reading it ends.
			extra := open()
			_ = extra.SetReadDeadline(time.Now().Add(20 * time.Second))
			if n, err := extra.Read(make([]byte, 1)); err == nil {
				t.Fatalf("the connection over the limit was served (%d bytes read)", n)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the connection over the limit was left open: %v", err)
			}
			if got := testutil.ToFloat64(r.metrics.connsRefused.WithLabelValues(transport)); got != 1 {
				t.Errorf("sentinel_otlp_connections_refused_total{transport=%q} = %v, want 1", transport, got)
			}
			held[0].Close()
			testkit.WaitFor(t, "the closed connection to be counted out", 20*time.Second, func() (bool, bool) {
				return true, r.conns[tr].open.Load() == 2
			})
			// A real export is served again.
			good := apiserverTraces(rand.New(rand.NewPCG(51, 52)), 4)
			if transport == "http" {
				resp, err := http.Post("http://"+addr+TracesPath, protobufContentType, bytes.NewReader(marshalTraces(t, good, false)))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d under the limit again", resp.StatusCode)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := ptraceotlp.NewGRPCClient(dial(t, r)).Export(ctx, ptraceotlp.NewExportRequestFromTraces(good)); err != nil {
				t.Fatalf("gRPC under the limit again: %v", err)
			}
		})
	}
}

// Clients that keep connections open without using them cannot keep
// others out: near the HTTP bound, keep-alives are off and the idle
// connections are closed.
func TestIdleHTTPConnectionsAreClosedNearTheLimit(t *testing.T) {
	const limit = 10
	r := startReceiver(t, Options{Limits: Limits{MaxHTTPConnections: limit}})
	addr := r.HTTPAddr().String()
	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(53, 54)), 4), false)
	// Nine connections (90%) each send one request and then idle, kept
	// alive: the ninth turns keep-alives off, which closes the idle ones.
	var idle []*bufio.Reader
	for i := range limit - 1 {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", TracesPath, protobufContentType, len(body))
		if _, err := c.Write(body); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: status %d", i, resp.StatusCode)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		idle = append(idle, br)
	}
	// The server closed the idle connections (those idle when the ninth
	// arrived; any still finishing its answer then closed itself, finding
	// keep-alives off): reading them ends before their deadline, and the
	// count falls to 75% of the limit. The last two are not looked at: a
	// goroutine preempted for longer than the pressure's second between
	// its answer and its keep-alive check keeps its connection.
	for i, br := range idle[:len(idle)-2] {
		if _, err := br.ReadByte(); err == nil {
			t.Fatalf("idle connection %d: the server sent a byte", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("idle connection %d was kept open near the limit", i)
		}
	}
	testkit.WaitFor(t, "the closed connections to be counted out", 20*time.Second, func() (bool, bool) {
		return true, r.conns[transportHTTP].open.Load() <= limit*3/4
	})
	// Under 75% again: keep-alives are back on (a second after they
	// went off at the soonest).
	testkit.WaitFor(t, "keep-alives to be on again", 20*time.Second, func() (bool, bool) {
		resp, err := http.Post("http://"+addr+TracesPath, protobufContentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after the pressure: status %d", resp.StatusCode)
		}
		return true, !resp.Close
	})
}
