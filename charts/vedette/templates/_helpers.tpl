{{/* The release's full name, at most 63 characters. */}}
{{- define "vedette.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The tag of every Vedette image. */}}
{{- define "vedette.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* The image of one binary: vedette.image (dict "root" $ "name" "vedette-agent"). */}}
{{- define "vedette.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.repository .name (include "vedette.tag" .root) -}}
{{- end -}}

{{- define "vedette.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vedette.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vedette.labels" -}}
app.kubernetes.io/name: vedette
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "vedette.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vedette.operatorSelector" -}}
app.kubernetes.io/name: vedette
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Every master's URL, comma-separated: one per operator replica, by its stable name. */}}
{{- define "vedette.mastersUrls" -}}
{{- $root := . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.operator.replicas) -}}
{{- $urls = append $urls (printf "http://%s-operator-%d.%s-masters.%s.svc:%v" (include "vedette.fullname" $root) $i (include "vedette.fullname" $root) $root.Release.Namespace $root.Values.operator.port) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}
