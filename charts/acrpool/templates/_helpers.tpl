{{/* The name every object of the release carries: acrpool-controller, as in manifests/base. */}}
{{- define "acrpool.name" -}}acrpool-controller{{- end -}}

{{- define "acrpool.labels" -}}
app.kubernetes.io/name: acrpool-controller
app.kubernetes.io/part-of: acrpool
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "acrpool.selector" -}}
app.kubernetes.io/name: acrpool-controller
{{- end -}}

{{- define "acrpool.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
