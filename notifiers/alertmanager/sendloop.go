package alertmanager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
)

func newAlertClient(t target, httpClient *http.Client) alert.ClientService {
	transport := httptransport.NewWithClient(t.host, t.basePath, []string{t.scheme}, httpClient)
	if t.user != nil {
		password, _ := t.user.Password()
		transport.DefaultAuthentication = httptransport.BasicAuth(t.user.Username(), password)
	}
	return alert.New(transport, strfmt.Default)
}

// sendLoop owns delivery to one Alertmanager, so that one that is slow or
// down only backs up its own queue.
type sendLoop struct {
	target     target
	client     alert.ClientService
	queue      *queue
	wake       chan struct{} // capacity 1: "the queue may have something"
	maxBatch   int
	timeout    time.Duration
	backoff    time.Duration
	maxBackoff time.Duration
	logger     *slog.Logger
	metrics    *metrics
}

func (l *sendLoop) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run posts batches until ctx is done. A failed batch is retried after a
// doubling delay; since alerts leave the queue only once delivered, each
// retry sends the oldest alerts queued at that time, which leaves out the
// alerts dropped or superseded while waiting.
func (l *sendLoop) run(ctx context.Context) {
	defer l.flush(ctx)
	delay := l.backoff
	failures := 0
	for ctx.Err() == nil {
		b := l.queue.peek(l.maxBatch)
		if len(b.alerts) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
				continue
			}
		}
		// A post under way finishes (within its timeout) even if shutdown
		// begins: cutting it off could leave Alertmanager holding alerts
		// that the final flush would then send a second time.
		err := l.post(context.WithoutCancel(ctx), b)
		if ctx.Err() != nil {
			return // the final flush sends what is left
		}
		if err != nil {
			failures++
			l.logger.Warn("Error sending alerts, will retry", "alerts", len(b.alerts), "attempt", failures, "retry_in", delay, "err", err)
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			delay = min(2*delay, l.maxBackoff)
			continue
		}
		if failures > 0 {
			l.logger.Info("Alerts delivered after retrying", "alerts", len(b.alerts), "failed_attempts", failures)
		}
		failures = 0
		delay = l.backoff
	}
}

// post sends one batch and acknowledges it when Alertmanager has taken it.
// A 400 is final: Alertmanager stores the valid alerts of a batch and
// rejects only the invalid ones, which no retry would make valid.
func (l *sendLoop) post(ctx context.Context, b batch) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	params := alert.NewPostAlertsParamsWithContext(ctx).WithTimeout(l.timeout).WithAlerts(b.alerts)
	start := time.Now()
	_, err := l.client.PostAlerts(params)
	l.metrics.latency.WithLabelValues(l.target.name).Observe(time.Since(start).Seconds())
	if err == nil {
		l.metrics.sent.WithLabelValues(l.target.name).Add(float64(len(b.alerts)))
		l.queue.ack(b)
		return nil
	}
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
		// Shutting down, not an Alertmanager error.
		return fmt.Errorf("post alerts to %s: %w", l.target.name, err)
	}
	l.metrics.errors.WithLabelValues(l.target.name).Add(float64(len(b.alerts)))
	if badRequest, ok := errors.AsType[*alert.PostAlertsBadRequest](err); ok {
		l.logger.Error("Alertmanager rejected invalid alerts; the valid ones of the batch were accepted", "alerts", len(b.alerts), "err", badRequest.Payload)
		l.queue.ack(b)
		return nil
	}
	if apiErr, ok := errors.AsType[*runtime.APIError](err); ok {
		err = statusError(apiErr.Code)
	} else if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		err = fmt.Errorf("%w (check tls_config of this alerting.alertmanagers entry: ca_file, server_name)", err)
	}
	return fmt.Errorf("post alerts to %s: %w", l.target.name, err)
}

// statusError says what an unexpected HTTP status means for whoever
// configured the Alertmanager entry.
func statusError(code int) error {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("HTTP %d %s: Alertmanager refused sentinel's credentials (check basic_auth, authorization or oauth2 of this alerting.alertmanagers entry)", code, http.StatusText(code))
	case http.StatusNotFound:
		return fmt.Errorf("HTTP %d %s: no Alertmanager API here (check the URL and path_prefix)", code, http.StatusText(code))
	}
	return fmt.Errorf("HTTP %d %s", code, http.StatusText(code))
}

// flush makes one best-effort attempt, bounded by the request timeout, to
// deliver what is still queued once ctx is done. What it cannot deliver is
// counted as dropped.
func (l *sendLoop) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	for {
		b := l.queue.peek(l.maxBatch)
		if len(b.alerts) == 0 {
			return
		}
		if err := l.post(ctx, b); err != nil {
			left := l.queue.len()
			l.metrics.dropped.Add(float64(left))
			l.logger.Warn("Alerts not delivered before shutdown", "alerts", left, "err", err)
			return
		}
	}
}
