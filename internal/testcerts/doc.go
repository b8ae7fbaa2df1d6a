// Package testcerts makes throwaway certificate authorities and the server
// and client certificates they sign, for tests of TLS and mutual TLS on
// loopback. Keys are ECDSA P-256; nothing here is fit for production.
package testcerts
