{{/* Environment of the umbrella's Jobs: the global settings plus one service's own (the migrate Job runs with the writer's). */}}
{{- define "spanline.jobEnv" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}
{{- $g := $root.Values.global -}}
- name: SPANLINE_KAFKA_BOOTSTRAP
  value: {{ $g.kafka.bootstrap | quote }}
- name: SPANLINE_TOPICS_PREFIX
  value: {{ $g.topics.prefix | quote }}
- name: SPANLINE_TOPICS_PARTITIONS
  value: {{ $g.topics.partitions | quote }}
- name: SPANLINE_TOPICS_REPLICATION_FACTOR
  value: {{ $g.topics.replicationFactor | quote }}
- name: SPANLINE_RETENTION_HOT_DAYS
  value: {{ $g.retention.hotDays | quote }}
- name: SPANLINE_RETENTION_COLD_DAYS
  value: {{ $g.retention.coldDays | quote }}
{{- if $g.retention.allowBelowFloor }}
- name: SPANLINE_RETENTION_ALLOW_BELOW_FLOOR
  value: "true"
- name: SPANLINE_RETENTION_BELOW_FLOOR_REASON
  value: {{ $g.retention.reason | quote }}
{{- end }}
- name: SPANLINE_LOG_FORMAT
  value: json
{{- range $k, $v := $g.config }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- range $k, $v := ($svc.config | default dict) }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- range (concat ($g.secretEnv | default list) ($svc.secretEnv | default list)) }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{- define "spanline.job" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}{{- $args := index . 2 -}}{{- $svc := index . 3 -}}{{- $weight := index . 4 -}}
{{- $img := $root.Values.global.image -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-%s" $root.Release.Name $name | trunc 63 | trimSuffix "-" }}
  labels:
    app.kubernetes.io/name: spanline
    app.kubernetes.io/instance: {{ $root.Release.Name }}
    app.kubernetes.io/component: {{ $name }}
    app.kubernetes.io/managed-by: {{ $root.Release.Service }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: {{ $weight | quote }}
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 6
  activeDeadlineSeconds: 600
  template:
    metadata:
      labels:
        app.kubernetes.io/name: spanline
        app.kubernetes.io/instance: {{ $root.Release.Name }}
        app.kubernetes.io/component: {{ $name }}
    spec:
      restartPolicy: OnFailure
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ $name }}
          image: {{ printf "%s:%s" $img.repository ($img.tag | default $root.Chart.AppVersion) | quote }}
          imagePullPolicy: {{ $img.pullPolicy }}
          args: {{ toJson $args }}
          env:
            {{- include "spanline.jobEnv" (list $root $svc) | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: tmp
              mountPath: /tmp
          resources:
            requests: {cpu: 50m, memory: 128Mi}
            limits: {cpu: 500m, memory: 256Mi}
      volumes:
        - name: tmp
          emptyDir: {}
{{- end -}}
