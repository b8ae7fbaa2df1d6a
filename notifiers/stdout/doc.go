// Package stdout prints alerts for people to read, one block per alert: the
// notifier behind `sentinel demo`. It owns only the text layout; what is sent
// and when is the engine's business.
package stdout
