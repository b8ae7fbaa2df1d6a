// Package alertmanager delivers engine alerts to Alertmanager through its v2
// API (POST /api/v2/alerts, via the generated client).
//
// It owns the delivery path: one bounded queue and one send loop per
// configured Alertmanager, so a slow or unreachable instance never delays the
// others (the Prometheus HA model: every Alertmanager gets every alert and the
// cluster deduplicates); batching; retries with exponential backoff until the
// alerts are delivered or superseded by a newer state of the same alert; and
// the sentinel_notifications_* metrics. When a queue is full the oldest alert
// is dropped and counted, as Prometheus's notifier does.
//
// It knows nothing of rules, windows or alert state: deciding what to send
// and when to resend it is the engine's job.
package alertmanager
