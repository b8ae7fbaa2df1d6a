package web

import (
	"fmt"
	"mime"
	"net/http"
)

func (h *Handler) reload(w http.ResponseWriter, _ *http.Request) {
	needRestart, err := h.opts.Reload()
	if err != nil {
		http.Error(w, "reload rejected, the running rules stay in force: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Write([]byte("reloaded\n"))
	for _, name := range needRestart {
		fmt.Fprintf(w, "%s changed but takes effect on restart only; the running value stays\n", name)
	}
}

// lifecycle guards an endpoint that changes the daemon's state (POST
// /-/reload): it answers 403 unless --web.enable-lifecycle is set, as
// Prometheus does, and refuses what a browser sends on behalf of another
// site (cross-origin requests, by Sec-Fetch-Site or Origin against Host)
// and the form encodings a page can post without a CORS preflight, so
// that a web page a user visits cannot reload sentinel. Scripts (curl, a
// config-reloader sidecar) send none of those headers and pass.
func (h *Handler) lifecycle(next http.HandlerFunc) http.HandlerFunc {
	cop := http.NewCrossOriginProtection()
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.opts.EnableLifecycle {
			h.lifecycleRefused.WithLabelValues("disabled").Inc()
			http.Error(w, "Lifecycle API is not enabled.", http.StatusForbidden)
			return
		}
		if err := cop.Check(r); err != nil {
			h.lifecycleRefused.WithLabelValues("cross_origin").Inc()
			h.logger.Warn("lifecycle request refused: cross-origin", "path", r.URL.Path, "origin", r.Header.Get("Origin"),
				"sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		if browserForm(r) {
			h.lifecycleRefused.WithLabelValues("form_post").Inc()
			h.logger.Warn("lifecycle request refused: a browser form post", "path", r.URL.Path,
				"content_type", r.Header.Get("Content-Type"), "remote", r.RemoteAddr)
			http.Error(w, "a browser's form post cannot reach the lifecycle API", http.StatusForbidden)
			return
		}
		next(w, r)
	}
}

// browserForm tells a request a browser sent with a content type that
// needs no CORS preflight (a form, or fetch with text/plain).
func browserForm(r *http.Request) bool {
	fromBrowser := r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Sec-Fetch-Mode") != ""
	if !fromBrowser {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true // unparseable: a browser sent it, and it is no JSON client
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return true
	}
	return false
}
