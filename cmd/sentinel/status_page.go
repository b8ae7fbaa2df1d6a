package main

import (
	"encoding/hex"
	"html/template"
	"math"
	"net/http"
	"time"
)

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"dur": func(v float64) string {
		if math.IsNaN(v) {
			return "no data"
		}
		return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
	},
	"hex": func(b [16]byte) string { return hex.EncodeToString(b[:]) },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>sentinel</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.firing{color:#b00;font-weight:bold}.pending{color:#b60}.inactive{color:#070}code{font-size:90%}</style></head>
<body><h1>sentinel</h1>
{{range .}}<h2>group {{.Name}}</h2>
<table><tr><th>rule</th><th>state</th><th>group</th><th>p-quantile</th><th>objective</th><th>observations</th><th>slowest traces</th></tr>
{{range .Rules}}{{$r := .}}{{range .Series}}<tr id="rule-{{$r.Name}}"><td>{{$r.Name}}</td><td class="{{$r.State}}">{{$r.State}}</td>
<td>{{range $k, $v := .Labels}}{{$k}}="{{$v}}" {{end}}</td><td>{{dur .Value}}</td><td>p{{$r.Quantile}} ≤ {{$r.Threshold}}</td>
<td>{{.Observations}}</td><td>{{range .Exemplars}}<code>{{hex .TraceID}}</code> {{.Duration}}<br>{{end}}</td></tr>
{{else}}<tr id="rule-{{$r.Name}}"><td>{{$r.Name}}</td><td class="{{$r.State}}">{{$r.State}}</td><td colspan="5">no observations</td></tr>{{end}}{{end}}
</table>{{else}}<p>No rules loaded.</p>{{end}}
</body></html>
`))

func (d *daemon) statusPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTemplate.Execute(w, d.engine.Status()); err != nil {
		d.logger.Warn("status page", "err", err)
	}
}
