{{/*
Everything one spanline service needs in a cluster: its settings ConfigMap, the
Deployment, its Service, a PodDisruptionBudget, exactly one autoscaler (KEDA on consumer
lag, or an HPA on CPU, or none), a ServiceMonitor, and a `helm test` pod. A service chart
is `{{ include "spanline.service" . }}` plus its values.
*/}}
{{- define "spanline.service" -}}
{{- include "spanline.validate" . }}
{{- $fullname := include "spanline.fullname" . -}}
{{- $mode := .Values.autoscaling.mode -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
data:
  {{- include "spanline.settingsEnv" . | nindent 2 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
spec:
  {{- if eq $mode "none" }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "spanline.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "spanline.labels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include "spanline.settingsEnv" . | sha256sum }}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .Values.component }}
          image: {{ include "spanline.image" . | quote }}
          imagePullPolicy: {{ .Values.global.image.pullPolicy }}
          args: ["run", {{ .Values.component | quote }}]
          envFrom:
            - configMapRef:
                name: {{ $fullname }}
          {{- if or .Values.secretEnv .Values.global.secretEnv }}
          env:
            {{- range (concat (.Values.global.secretEnv | default list) (.Values.secretEnv | default list)) }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ .secretName }}
                  key: {{ .key }}
            {{- end }}
          {{- end }}
          ports:
            - name: metrics
              containerPort: {{ .Values.metricsPort }}
              protocol: TCP
            {{- range .Values.ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: metrics
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            periodSeconds: 5
            failureThreshold: 3
          startupProbe:
            httpGet:
              path: /healthz
              port: metrics
            periodSeconds: 2
            failureThreshold: 60
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "spanline.selectorLabels" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ .Values.metricsPort }}
      targetPort: metrics
      protocol: TCP
    {{- range .Values.ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
{{- if .Values.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .Values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "spanline.selectorLabels" . | nindent 6 }}
{{- end }}
{{- if eq $mode "keda" }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ $fullname }}
  minReplicaCount: {{ .Values.autoscaling.minReplicas }}
  maxReplicaCount: {{ .Values.autoscaling.maxReplicas }}
  pollingInterval: {{ .Values.autoscaling.keda.pollingInterval }}
  cooldownPeriod: {{ .Values.autoscaling.keda.cooldownPeriod }}
  fallback:
    failureThreshold: 3
    replicas: {{ .Values.autoscaling.minReplicas }}
  triggers:
    {{- range .Values.inputTopics }}
    - type: kafka
      metadata:
        bootstrapServers: {{ $.Values.global.kafka.bootstrap | quote }}
        consumerGroup: {{ include "spanline.consumerGroup" $ | quote }}
        topic: {{ printf "%s.%s" $.Values.global.topics.prefix . | quote }}
        lagThreshold: {{ $.Values.autoscaling.keda.lagThreshold | toString | quote }}
        activationLagThreshold: {{ $.Values.autoscaling.keda.activationLagThreshold | toString | quote }}
        offsetResetPolicy: "earliest"
        allowIdleConsumers: "false"
        limitToPartitionsWithLag: "true"
    {{- end }}
{{- else if eq $mode "hpa" }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.hpa.targetCPUUtilizationPercentage }}
{{- end }}
{{- if include "spanline.monitoringEnabled" (list . .Values.serviceMonitor.enabled "monitoring.coreos.com/v1/ServiceMonitor") }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
    {{- with .Values.global.monitoring.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "spanline.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ .Values.serviceMonitor.interval }}
{{- end }}
---
apiVersion: v1
kind: Pod
metadata:
  name: {{ $fullname }}-test
  labels:
    {{- include "spanline.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: readyz
      image: {{ include "spanline.image" . | quote }}
      imagePullPolicy: {{ .Values.global.image.pullPolicy }}
      command: ["python", "-c"]
      args:
        - "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://{{ $fullname }}:{{ .Values.metricsPort }}/readyz', timeout=10).status == 200 else 1)"
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        limits: {cpu: 100m, memory: 64Mi}
        requests: {cpu: 10m, memory: 32Mi}
{{- end -}}

{{/* true when a monitoring CR should render: `true`, or `auto` and the cluster has the CRD. */}}
{{- define "spanline.monitoringEnabled" -}}
{{- $root := index . 0 -}}{{- $switch := index . 1 -}}{{- $api := index . 2 -}}
{{- if eq (toString $switch) "true" -}}true
{{- else if and (eq (toString $switch) "auto") ($root.Capabilities.APIVersions.Has $api) -}}true
{{- end -}}
{{- end -}}

{{/* Combinations the schema cannot express: fail with a sentence an operator can act on. */}}
{{- define "spanline.validate" -}}
{{- $a := .Values.autoscaling -}}
{{- if and (eq $a.mode "keda") (not .Values.inputTopics) -}}
{{- fail (printf "%s: autoscaling.mode=keda needs a Kafka input; this service has none (use hpa or none)" .Values.component) -}}
{{- end -}}
{{- if and (ne $a.mode "none") (gt (int $a.maxReplicas) (int .Values.global.topics.partitions)) .Values.inputTopics -}}
{{- fail (printf "%s: autoscaling.maxReplicas=%v is above global.topics.partitions=%v; extra consumers would sit idle" .Values.component $a.maxReplicas .Values.global.topics.partitions) -}}
{{- end -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "%s: autoscaling.minReplicas=%v is above maxReplicas=%v" .Values.component $a.minReplicas $a.maxReplicas) -}}
{{- end -}}
{{- end -}}
