{{/* The chart's name, or nameOverride. */}}
{{- define "fkllmproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Object names: the release name when it already contains the chart's name (a release
called fkllmproxy gives the names of examples/kubernetes/), else release-chart.
Kept to 57 characters so the "-redis", "-config" and "-env" suffixes fit in 63.
*/}}
{{- define "fkllmproxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- $name := include "fkllmproxy.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fkllmproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What the Deployment, Service and PDB select on: never changes across upgrades. */}}
{{- define "fkllmproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fkllmproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fkllmproxy.labels" -}}
{{ include "fkllmproxy.selectorLabels" . }}
helm.sh/chart: {{ include "fkllmproxy.chart" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Redis gets a name label of its own, so the gateway's selector never matches it. */}}
{{- define "fkllmproxy.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fkllmproxy.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fkllmproxy.redis.labels" -}}
{{ include "fkllmproxy.redis.selectorLabels" . }}
helm.sh/chart: {{ include "fkllmproxy.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fkllmproxy.envSecretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-env" (include "fkllmproxy.fullname" .)) }}
{{- end }}

{{/*
The [server] table of values.config, as JSON (include returns text). Checks what the
pods depend on: the TOML parses, has no [state] (the chart writes it from `redis`),
and listens beyond loopback so the kubelet's probes reach it.
*/}}
{{- define "fkllmproxy.server" -}}
{{- $config := fromToml .Values.config }}
{{- if hasKey $config "Error" }}
{{- fail (printf "config is not valid TOML: %s" $config.Error) }}
{{- end }}
{{- if hasKey $config "state" }}
{{- fail "config must not have a [state] table: the chart writes it from redis.enabled / redis.url" }}
{{- end }}
{{- $server := $config.server | default dict }}
{{- $host := $server.host | default "127.0.0.1" }}
{{- if not (has $host (list "0.0.0.0" "::")) }}
{{- fail (printf "config [server] host is %q: set \"0.0.0.0\" so the probes and the Service reach the pod" $host) }}
{{- end }}
{{- $drain := 30.0 }}
{{- if hasKey $server "drain_timeout_secs" }}
{{- $drain = $server.drain_timeout_secs }}
{{- end }}
{{- toJson (dict "port" ($server.port | default 4000) "drain" $drain) }}
{{- end }}

{{- define "fkllmproxy.port" -}}
{{- (include "fkllmproxy.server" . | fromJson).port | int }}
{{- end }}

{{/* preStop + drain + 10 s, as systemd's TimeoutStopSec over the drain. */}}
{{- define "fkllmproxy.terminationGracePeriodSeconds" -}}
{{- $drain := (include "fkllmproxy.server" . | fromJson).drain | float64 }}
{{- $floor := addf .Values.preStopSleepSeconds $drain }}
{{- $grace := .Values.terminationGracePeriodSeconds }}
{{- if eq (toString $grace) "" }}
{{- add (ceil $floor | int) 10 }}
{{- else if le ($grace | float64) $floor }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be above preStopSleepSeconds + [server] drain_timeout_secs (%v), or SIGKILL cuts the drain short" $grace $floor) }}
{{- else }}
{{- $grace | int }}
{{- end }}
{{- end }}

{{- define "fkllmproxy.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-redis:6379/0" (include "fkllmproxy.fullname" .) }}
{{- else }}
{{- required "redis.enabled is false: set redis.url to an existing Redis (redis://host:6379/0), which every replica shares" .Values.redis.url }}
{{- end }}
{{- end }}

{{/* values.config with the [state] table that follows `redis`. */}}
{{- define "fkllmproxy.configToml" -}}
{{- $_ := include "fkllmproxy.server" . }}
{{- .Values.config | trimSuffix "\n" }}

# Rate limits, circuit breakers and the response cache shared by every replica
# (written by the chart from its redis values).
[state]
backend = "redis"
url = {{ include "fkllmproxy.redisUrl" . | quote }}
on_failure = {{ .Values.redis.onFailure | quote }}
{{- with .Values.redis.keyPrefix }}
key_prefix = {{ . | quote }}
{{- end }}
{{ end }}
