// Package tlsreload serves TLS, and verifies client certificates, from
// files that may change while the process runs: a certificate, its key and
// a client CA bundle, as cert-manager or a rotated Kubernetes Secret leave
// them. Every handshake checks (with a stat) whether a file changed and
// loads the new ones; a file that does not load leaves the previous
// material in force, logged and counted. It knows nothing of the servers
// that use it: they take the *tls.Config it makes.
package tlsreload
