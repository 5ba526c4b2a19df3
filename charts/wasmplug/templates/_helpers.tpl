{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "wasmplug.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, prefixed to the chart name unless it already contains it.
*/}}
{{- define "wasmplug.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wasmplug.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels common to every object.
*/}}
{{- define "wasmplug.labels" -}}
helm.sh/chart: {{ include "wasmplug.chart" . }}
{{ include "wasmplug.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wasmplug
{{- end }}

{{/*
Selector labels of the controller.
*/}}
{{- define "wasmplug.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmplug.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "wasmplug.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wasmplug.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "wasmplug.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The controller Service's in-cluster DNS name.
*/}}
{{- define "wasmplug.serviceHost" -}}
{{- printf "%s.%s.svc" (include "wasmplug.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "wasmplug.modulesUrl" -}}
{{- if .Values.controller.modulesUrl }}
{{- .Values.controller.modulesUrl }}
{{- else }}
{{- printf "%s://%s:%v" (ternary "http" "https" (eq .Values.tls.mode "insecure-plaintext")) (include "wasmplug.serviceHost" .) .Values.service.ports.modules }}
{{- end }}
{{- end }}

{{/*
TLS between gateways and the controller: the CA Secret (mode managed) and the chart gateway's Secret.
*/}}
{{- define "wasmplug.tls.caSecret" -}}
{{- default (printf "%s-ca" (include "wasmplug.fullname" .)) .Values.tls.caSecretName }}
{{- end }}

{{- define "wasmplug.tls.gatewaySecret" -}}
{{- default (printf "%s-tls" (include "wasmplug.gateway.name" .)) .Values.tls.gatewaySecretName }}
{{- end }}

{{- define "wasmplug.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/*
The gateway's name (its node.cluster) and labels. The pod labels are also the node metadata
LABELS the gateway sends to the controller.
*/}}
{{- define "wasmplug.gateway.name" -}}
{{- default (printf "%s-gateway" (include "wasmplug.fullname" .) | trunc 63 | trimSuffix "-") .Values.gateway.name }}
{{- end }}

{{- define "wasmplug.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmplug.name" . }}-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "wasmplug.gateway.labels" -}}
helm.sh/chart: {{ include "wasmplug.chart" . }}
{{ include "wasmplug.gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.gateway.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wasmplug
{{- end }}

{{- define "wasmplug.gateway.podLabels" -}}
{{- $base := fromYaml (include "wasmplug.gateway.selectorLabels" .) }}
{{- $_ := set $base "wasmplug.io/gateway" "true" }}
{{- toYaml (merge $base .Values.gateway.podLabels) }}
{{- end }}

{{/*
The API calls the controller makes, and nothing more: its own resources (status and finalizers
included), image pull Secrets read by name, Events, and the Higress/Istio WasmPlugins it renders
with server-side apply.
*/}}
{{- define "wasmplug.rules" -}}
- apiGroups: ["wasmplug.io"]
  resources: ["wasmplugins"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["wasmplug.io"]
  resources: ["wasmplugins/status"]
  verbs: ["patch"]
- apiGroups: ["wasmplug.io"]
  resources: ["wasmplugins/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["extensions.higress.io", "extensions.istio.io"]
  resources: ["wasmplugins"]
  verbs: ["get", "patch", "delete"]
{{- end }}
