{{/* The chart's name: app.kubernetes.io/name, and the job label. */}}
{{- define "sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name. */}}
{{- define "sentinel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* What selects sentinel's pods (as the kustomize manifests do). */}}
{{- define "sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "sentinel.commonLabels" -}}
app.kubernetes.io/part-of: sentinel
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sentinel.labels" -}}
{{ include "sentinel.selectorLabels" . }}
{{ include "sentinel.commonLabels" . }}
{{- end -}}

{{- define "sentinel.collectorName" -}}
{{- printf "%s-collector" (include "sentinel.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sentinel.collectorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}-collector
{{- end -}}

{{- define "sentinel.collectorLabels" -}}
{{ include "sentinel.collectorSelectorLabels" . }}
{{ include "sentinel.commonLabels" . }}
{{- end -}}

{{/* The Service name the Collectors and the certificate use. */}}
{{- define "sentinel.serviceHost" -}}
{{- printf "%s.%s.svc" (include "sentinel.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "sentinel.otlpSecret" -}}
{{- default (printf "%s-otlp-tls" (include "sentinel.fullname" .)) .Values.tls.otlp.secretName -}}
{{- end -}}

{{- define "sentinel.webSecret" -}}
{{- default (printf "%s-web-tls" (include "sentinel.fullname" .)) .Values.tls.web.secretName -}}
{{- end -}}

{{- define "sentinel.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sentinel.replicas" -}}
{{- if .Values.ha.enabled }}{{ .Values.ha.replicas }}{{ else }}{{ .Values.replicas }}{{ end -}}
{{- end -}}

{{/* The web port's scheme. */}}
{{- define "sentinel.webScheme" -}}
{{- if .Values.tls.web.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* Whether a --web.config.file is written. */}}
{{- define "sentinel.webConfig" -}}
{{- if or .Values.tls.web.enabled .Values.tls.web.basicAuthUsers }}true{{ end -}}
{{- end -}}

{{/* The HA Collector's config.yaml. */}}
{{- define "sentinel.collectorConfig" -}}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "0.0.0.0:4317"
        tls:
          cert_file: /etc/otelcol/tls/tls.crt
          key_file: /etc/otelcol/tls/tls.key
          client_ca_file: /etc/otelcol/tls/ca.crt
      http:
        endpoint: "0.0.0.0:4318"
        tls:
          cert_file: /etc/otelcol/tls/tls.crt
          key_file: /etc/otelcol/tls/tls.key
          client_ca_file: /etc/otelcol/tls/ca.crt
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 25
  batch:
    send_batch_size: 1024
    timeout: 200ms
exporters:
  loadbalancing/sentinel:
    routing_key: traceID
    protocol:
      otlp:
        timeout: 5s
        tls:
          ca_file: /etc/otelcol/tls/ca.crt
          cert_file: /etc/otelcol/tls/tls.crt
          key_file: /etc/otelcol/tls/tls.key
          server_name_override: {{ include "sentinel.serviceHost" . }}
          reload_interval: 1h
        sending_queue: {queue_size: 5000}
        retry_on_failure: {enabled: true, max_elapsed_time: 60s}
    resolver:
      dns:
        hostname: {{ include "sentinel.fullname" . }}-replicas.{{ .Release.Namespace }}.svc.cluster.local
        port: "4317"
        interval: 5s
  {{- with .Values.ha.collector.tracingEndpoint }}
  otlp/tracing:
    endpoint: {{ . }}
    tls: {insecure: true}
  {{- end }}
extensions:
  health_check: {endpoint: "0.0.0.0:13133"}
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [loadbalancing/sentinel{{ if .Values.ha.collector.tracingEndpoint }}, otlp/tracing{{ end }}]
{{- end -}}
