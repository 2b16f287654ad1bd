{{/* The prefix of every object's name, as config/default names them. */}}
{{- define "uio.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "uio.labels" -}}
app.kubernetes.io/name: user-import-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "uio.selector" -}}
app.kubernetes.io/name: user-import-operator
control-plane: controller-manager
{{- end -}}

{{- define "uio.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
