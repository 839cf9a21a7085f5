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

{{- /* acrpool.labels plus the map .extra (a value's additionalLabels, say
`release: <name>` for kube-prometheus-stack's selectors); on a clash the
release's own labels win. Called with (dict "ctx" $ "extra" map). */}}
{{- define "acrpool.labelsWith" -}}
{{ include "acrpool.labels" .ctx }}
{{- $own := include "acrpool.labels" .ctx | fromYaml }}
{{- range $k, $v := .extra }}
{{- if not (hasKey $own $k) }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}
{{- end -}}
