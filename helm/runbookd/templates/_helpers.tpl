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
{{- if ne .Values.mode "daemon" }}
{{- else if eq .Values.console.auth "bearer" }}
- name: RUNBOOKD_CONSOLE_BEARER_TOKEN_FILE
  value: /etc/runbookd/console/{{ .Values.console.secretKey }}
{{- else if eq .Values.console.auth "basic" }}
- name: RUNBOOKD_CONSOLE_BASIC_AUTH_FILE
  value: /etc/runbookd/console/{{ .Values.console.secretKey }}
{{- end }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The console's credential, checked: a known mode, a Secret for it, and a jobs
file that reads the file's path from the variable the chart sets.
*/}}
{{- define "runbookd.consoleAuth" -}}
{{- $mode := .Values.console.auth -}}
{{- if not (has $mode (list "none" "bearer" "basic")) -}}
{{- fail (printf "console.auth is %q: use none, bearer or basic" $mode) -}}
{{- end -}}
{{- if ne $mode "none" -}}
{{- if not .Values.console.secretName -}}
{{- fail (printf "console.auth is %s: set console.secretName, the Secret holding the credential" $mode) -}}
{{- end -}}
{{- $var := ternary "RUNBOOKD_CONSOLE_BEARER_TOKEN_FILE" "RUNBOOKD_CONSOLE_BASIC_AUTH_FILE" (eq $mode "bearer") -}}
{{- if not (contains $var (include "runbookd.jobsText" .)) -}}
{{- fail (printf "console.auth is %s but the jobs file never reads %s: add console: {%s: \"${%s:-}\"} to jobsYaml" $mode $var (ternary "bearer_token_file" "basic_auth_file" (eq $mode "bearer")) $var) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "runbookd.volumeMounts" -}}
- name: jobs
  mountPath: /etc/runbookd
  readOnly: true
- name: data
  mountPath: /var/lib/runbookd
- name: tmp
  mountPath: /tmp
{{- if and (eq .Values.mode "daemon") (ne .Values.console.auth "none") }}
- name: console-auth
  mountPath: /etc/runbookd/console
  readOnly: true
{{- end }}
{{- end -}}

{{- define "runbookd.volumes" -}}
- name: jobs
  configMap:
    name: {{ include "runbookd.fullname" . }}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if and (eq .Values.mode "daemon") (ne .Values.console.auth "none") }}
- name: console-auth
  secret:
    secretName: {{ .Values.console.secretName }}
    items:
      - key: {{ .Values.console.secretKey }}
        path: {{ .Values.console.secretKey }}
{{- end }}
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

{{/* Seconds in a jobs-file duration: 30s, 5m, 3h, 90d, 1h 30m (milliseconds
count as none). */}}
{{- define "runbookd.seconds" -}}
{{- $total := 0 -}}
{{- range $t := regexFindAll "[0-9]+(ms|[smhd])" (toString .) -1 -}}
{{- $n := regexFind "^[0-9]+" $t | atoi -}}
{{- $u := regexReplaceAll "^[0-9]+" $t "" -}}
{{- if eq $u "s" }}{{ $total = add $total $n }}{{ end -}}
{{- if eq $u "m" }}{{ $total = add $total (mul $n 60) }}{{ end -}}
{{- if eq $u "h" }}{{ $total = add $total (mul $n 3600) }}{{ end -}}
{{- if eq $u "d" }}{{ $total = add $total (mul $n 86400) }}{{ end -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
The longest a job's runs take as runbookd reads the jobs file: every
attempt at its timeout (`timeout`, else defaults.timeout, else 1h) and the
waits between them (`retries`: backoff doubling up to max_backoff). Called
with (dict "job" JOB "defaults" DEFAULTS "env" .Values.env).
*/}}
{{- define "runbookd.runBudget" -}}
{{- $job := .job -}}
{{- $d := .defaults -}}
{{- $timeout := include "runbookd.seconds" (include "runbookd.interp" (dict "s" (default (default "1h" $d.timeout) $job.timeout) "env" .env)) | atoi -}}
{{- /* A job's own `retries` replaces the defaults' `max`; its waits
default to the defaults' (src/config: RawRetries::over). */ -}}
{{- $base := default dict $d.retries -}}
{{- $r := $base -}}
{{- if hasKey $job "retries" }}{{ $r = default dict $job.retries }}{{ end -}}
{{- $max := include "runbookd.interp" (dict "s" (default 0 $r.max) "env" .env) | atoi -}}
{{- $backoff := include "runbookd.seconds" (include "runbookd.interp" (dict "s" (default (default "30s" $base.backoff) $r.backoff) "env" .env)) | atoi -}}
{{- $cap := include "runbookd.seconds" (include "runbookd.interp" (dict "s" (default (default "10m" $base.max_backoff) $r.max_backoff) "env" .env)) | atoi -}}
{{- $total := mul $timeout (add1 $max) -}}
{{- $wait := $backoff -}}
{{- range until $max -}}
{{- $total = add $total (min $wait $cap) -}}
{{- $wait = mul $wait 2 -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
A CronJob's activeDeadlineSeconds: its job's runs (runbookd.runBudget), the
longest of the jobs its failure chains to (`on_failure`, run in the same
pod), and cronjobs.deadlineSlackSeconds for the pod's start, the kill
grace and the mail. Kubernetes stops a Job past it, so a hung pod cannot
hold a `Forbid` CronJob for ever. Called with (dict "name" NAME "doc" JOBS-FILE
"env" .Values.env "slack" SECONDS).
*/}}
{{- define "runbookd.deadline" -}}
{{- $defaults := default dict .doc.defaults -}}
{{- $job := get .doc.jobs .name -}}
{{- $own := include "runbookd.runBudget" (dict "job" $job "defaults" $defaults "env" .env) | atoi -}}
{{- $chained := 0 -}}
{{- range $c := (default list $job.on_failure) -}}
{{- $other := get $.doc.jobs (toString $c) -}}
{{- if $other -}}
{{- $chained = max $chained (include "runbookd.runBudget" (dict "job" $other "defaults" $defaults "env" $.env) | atoi) -}}
{{- end -}}
{{- end -}}
{{- add $own $chained .slack -}}
{{- end -}}

{{/* The CronJobs' names (cronjobs.namePrefix and each scheduled job's
name) as one PromQL regular expression, for the cronjobs mode's alerts. */}}
{{- define "runbookd.cronJobNames" -}}
{{- $doc := include "runbookd.jobsText" . | fromYaml -}}
{{- $names := list -}}
{{- range $name, $job := $doc.jobs -}}
{{- if $job.schedule -}}
{{- $names = append $names (regexQuoteMeta (printf "%s%s" $.Values.cronjobs.namePrefix $name)) -}}
{{- end -}}
{{- end -}}
{{- join "|" $names -}}
{{- end -}}

{{/* The label matchers of this release's runbookd series (mode: daemon):
prometheusRule.selector, else what the chart's ServiceMonitor gives them. */}}
{{- define "runbookd.seriesSelector" -}}
{{- if .Values.prometheusRule.selector -}}
{{- .Values.prometheusRule.selector -}}
{{- else -}}
{{- printf "namespace=%q, service=%q" .Release.Namespace (include "runbookd.fullname" .) -}}
{{- end -}}
{{- end -}}
