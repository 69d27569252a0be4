{{/* The chart's name, and the release's full name (at most 63 characters). */}}
{{- define "runbookd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "runbookd.fullname" -}}
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

{{- define "runbookd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runbookd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "runbookd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "runbookd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "runbookd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "runbookd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "runbookd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The jobs file: the value, or the chart's copy of the shipped one. */}}
{{- define "runbookd.jobsText" -}}
{{- if .Values.jobsYaml -}}
{{- .Values.jobsYaml -}}
{{- else -}}
{{- .Files.Get "files/jobs.yaml" -}}
{{- end -}}
{{- end -}}

{{/* Non-root, read-only, nothing privileged: for every pod and container. */}}
{{- define "runbookd.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "runbookd.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* The environment every runbookd container gets. */}}
{{- define "runbookd.env" -}}
- name: RUNBOOKD_CONFIG
  value: /etc/runbookd/jobs.yaml
- name: RUNBOOKD_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUNBOOKD_OUTBOX
  value: /var/lib/runbookd/outbox
- name: RUNBOOKD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecret.name }}
      key: {{ .Values.existingSecret.databaseUrlKey }}
- name: SMTP_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecret.name }}
      key: {{ .Values.existingSecret.smtpUrlKey }}
      optional: true
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{- define "runbookd.volumeMounts" -}}
- name: jobs
  mountPath: /etc/runbookd
  readOnly: true
- name: data
  mountPath: /var/lib/runbookd
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "runbookd.volumes" -}}
- name: jobs
  configMap:
    name: {{ include "runbookd.fullname" . }}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/*
A value of the jobs file as runbookd reads it: `${VAR}` and `${VAR:-default}`
from `.Values.env`. Called with (dict "s" STRING "env" .Values.env).
*/}}
{{- define "runbookd.interp" -}}
{{- $s := toString .s -}}
{{- range $m := regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}" $s -1 -}}
{{- $name := regexReplaceAll "^\\$\\{([A-Za-z_][A-Za-z0-9_]*).*\\}$" $m "${1}" -}}
{{- $val := toString (get $.env $name) -}}
{{- if and (not $val) (contains ":-" $m) -}}
{{- $val = regexReplaceAll "^\\$\\{[A-Za-z_][A-Za-z0-9_]*:-(.*)\\}$" $m "${1}" -}}
{{- end -}}
{{- if not $val -}}
{{- fail (printf "the jobs file needs %s: set env.%s" $m $name) -}}
{{- end -}}
{{- $s = replace $m $val $s -}}
{{- end -}}
{{- $s -}}
{{- end -}}

{{/* Seconds in a jobs-file duration: 30s, 5m, 3h, 90d, 1h 30m. */}}
{{- define "runbookd.seconds" -}}
{{- $total := 0 -}}
{{- range $t := regexFindAll "[0-9]+[smhd]" (toString .) -1 -}}
{{- $n := regexFind "^[0-9]+" $t | atoi -}}
{{- $u := regexReplaceAll "^[0-9]+" $t "" -}}
{{- if eq $u "s" }}{{ $total = add $total $n }}{{ end -}}
{{- if eq $u "m" }}{{ $total = add $total (mul $n 60) }}{{ end -}}
{{- if eq $u "h" }}{{ $total = add $total (mul $n 3600) }}{{ end -}}
{{- if eq $u "d" }}{{ $total = add $total (mul $n 86400) }}{{ end -}}
{{- end -}}
{{- $total -}}
{{- end -}}
