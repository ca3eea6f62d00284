{{/*
Names and labels shared by every spanline service chart. A service chart sets
`component` in its values; every object of that service carries it, so selectors of two
services in one release never overlap.
*/}}
{{- define "spanline.fullname" -}}
{{- printf "%s-%s" .Release.Name .Values.component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spanline.selectorLabels" -}}
app.kubernetes.io/name: spanline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.component }}
{{- end -}}

{{- define "spanline.labels" -}}
{{ include "spanline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | default .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- end -}}

{{- define "spanline.image" -}}
{{- $img := mergeOverwrite (dict) (.Values.global.image | default dict) -}}
{{- $tag := $img.tag | default .Chart.AppVersion | default .Chart.Version -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}

{{/* The consumer group of a service: '<groupPrefix or topics.prefix>-<component>' as the settings compute it. */}}
{{- define "spanline.consumerGroup" -}}
{{- $g := .Values.global -}}
{{- printf "%s-%s" ($g.kafka.groupPrefix | default $g.topics.prefix) .Values.component -}}
{{- end -}}

{{/* SPANLINE_* settings of this service: globals first, then the service's own `config`. */}}
{{- define "spanline.settingsEnv" -}}
{{- $g := .Values.global -}}
SPANLINE_KAFKA_BOOTSTRAP: {{ required "global.kafka.bootstrap is required (host:port of the Kafka brokers)" $g.kafka.bootstrap | quote }}
{{- with $g.kafka.groupPrefix }}
SPANLINE_KAFKA_GROUP_PREFIX: {{ . | quote }}
{{- end }}
SPANLINE_TOPICS_PREFIX: {{ $g.topics.prefix | quote }}
SPANLINE_TOPICS_PARTITIONS: {{ $g.topics.partitions | quote }}
SPANLINE_TOPICS_REPLICATION_FACTOR: {{ $g.topics.replicationFactor | quote }}
SPANLINE_RETENTION_HOT_DAYS: {{ $g.retention.hotDays | quote }}
SPANLINE_RETENTION_COLD_DAYS: {{ $g.retention.coldDays | quote }}
{{- if $g.retention.allowBelowFloor }}
SPANLINE_RETENTION_ALLOW_BELOW_FLOOR: "true"
SPANLINE_RETENTION_BELOW_FLOOR_REASON: {{ $g.retention.reason | quote }}
{{- end }}
SPANLINE_HTTP_HOST: "0.0.0.0"
SPANLINE_HTTP_PORT: {{ .Values.metricsPort | quote }}
SPANLINE_LOG_FORMAT: "json"
{{- range $k, $v := $g.config }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- range $k, $v := .Values.config }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}
