{{/*
Return the chart name, or nameOverride.
*/}}
{{- define "modelship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Return the fully qualified app name used as the prefix of every resource.
Kubernetes names (DNS-1123 labels) are limited to 63 characters, so it is truncated there.
If the release name already contains the chart name, the release name is used alone.
*/}}
{{- define "modelship.fullname" -}}
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

{{/*
Return the namespace the chart's objects go to (namespaceOverride or the release namespace).
*/}}
{{- define "modelship.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Return "<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "modelship.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Return the labels every object carries.
*/}}
{{- define "modelship.labels" -}}
helm.sh/chart: {{ include "modelship.chart" . }}
{{ include "modelship.selectorLabels" . }}
app.kubernetes.io/version: {{ include "modelship.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelship
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Return the selector labels: only immutable ones (Deployment selectors cannot change).
*/}}
{{- define "modelship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelship.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Return an indented metadata "annotations:" block (commonAnnotations merged with .extra), or
nothing when both are empty. Usage, right after the labels block:
  {{- include "modelship.annotations" (dict "ctx" $ "extra" .Values.service.annotations) }}
*/}}
{{- define "modelship.annotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.ctx.Values.commonAnnotations | default dict) }}
{{- with $all }}
{{ printf "annotations:\n%s" (toYaml . | indent 2) | indent 2 }}
{{- end }}
{{- end }}

{{/*
Return the name of the ServiceAccount the pods run as.
*/}}
{{- define "modelship.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelship.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Return the image tag: image.tag or the chart's appVersion.
*/}}
{{/*
The server container's resources: .Values.resources, or the measured defaults of image.flavor.
*/}}
{{- define "modelship.resources" -}}
{{- $defaults := dict "requests" (dict "cpu" "250m" "memory" "768Mi") "limits" (dict "cpu" "2" "memory" "2Gi") }}
{{- if eq .Values.image.flavor "slim" }}
{{- $defaults = dict "requests" (dict "cpu" "250m" "memory" "160Mi") "limits" (dict "cpu" "1" "memory" "384Mi") }}
{{- end }}
{{- toYaml (default $defaults .Values.resources) }}
{{- end }}

{{- define "modelship.imageTag" -}}
{{- if .Values.image.tag }}
{{- .Values.image.tag }}
{{- else if eq .Values.image.flavor "slim" }}
{{- printf "%s-slim" .Chart.AppVersion }}
{{- else }}
{{- .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/*
Return the image reference; a digest wins over the tag.
*/}}
{{- define "modelship.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "modelship.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Return the name of the Secret holding the auth token.
*/}}
{{- define "modelship.authSecretName" -}}
{{- default (printf "%s-auth" (include "modelship.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/*
Return the directory the model config, batching parameters and auth token are mounted under.
*/}}
{{- define "modelship.configDir" -}}
/etc/modelship/config
{{- end }}

{{- define "modelship.authDir" -}}
/etc/modelship/auth
{{- end }}

{{/*
Return the directory the traffic ConfigMap is mounted at (a whole directory, never subPath: only
a directory mount sees the kubelet's symlink swap when the ConfigMap changes).
*/}}
{{- define "modelship.trafficDir" -}}
/etc/modelship/traffic
{{- end }}

{{/*
Return the name of the ConfigMap holding traffic.json.
*/}}
{{- define "modelship.trafficConfigMapName" -}}
{{- default (printf "%s-traffic" (include "modelship.fullname" .)) .Values.traffic.existingConfigMap }}
{{- end }}

{{/*
Return the directory that holds <model.name>/<version>/ for the selected model source.
*/}}
{{- define "modelship.modelRoot" -}}
{{- if eq .Values.model.source.type "image" }}
{{- .Values.model.source.image.basePath | trimSuffix "/" }}
{{- else }}
{{- "/models" }}
{{- end }}
{{- end }}

{{/*
Return the model's base path (TF Serving's base_path): <model root>/<model.name>, or for the
objectStore source the store URL itself (s3://... or gs://..., without a trailing slash).
*/}}
{{- define "modelship.modelBasePath" -}}
{{- if eq .Values.model.source.type "objectStore" }}
{{- .Values.model.source.objectStore.url | trimSuffix "/" }}
{{- else }}
{{- printf "%s/%s" (include "modelship.modelRoot" .) .Values.model.name }}
{{- end }}
{{- end }}

{{/*
Return the scheme of the objectStore source's URL: "s3" or "gs" (empty for other URLs).
*/}}
{{- define "modelship.objectStoreScheme" -}}
{{- regexFind "^(s3|gs)://" .Values.model.source.objectStore.url | trimSuffix "://" }}
{{- end }}

{{/*
Return the directory the objectStore source downloads versions to (an emptyDir).
*/}}
{{- define "modelship.modelCacheDir" -}}
/var/cache/modelship
{{- end }}

{{/*
Return the directory the GCS credentials Secret of the objectStore source is mounted at.
*/}}
{{- define "modelship.gcsCredentialsDir" -}}
/var/secrets/gcs
{{- end }}

{{/*
Return the TCP port of the objectStore source's endpoint when the URL names one ("" otherwise).
*/}}
{{- define "modelship.objectStoreEndpointPort" -}}
{{- $endpoint := .Values.model.source.objectStore.endpoint }}
{{- if $endpoint }}
{{- (urlParse $endpoint).host | regexFind ":[0-9]+$" | trimPrefix ":" }}
{{- end }}
{{- end }}

{{/*
Return the TF Serving ModelServerConfig text proto for the configured model.
*/}}
{{- define "modelship.modelConfig" -}}
model_config_list {
  config {
    name: {{ .Values.model.name | quote }}
    base_path: {{ include "modelship.modelBasePath" . | quote }}
    model_platform: "tensorflow"
    model_version_policy {
{{- $policy := .Values.model.versionPolicy }}
{{- if eq $policy.type "latest" }}
      latest {
        num_versions: {{ int $policy.latestNumVersions }}
      }
{{- else if eq $policy.type "all" }}
      all {
      }
{{- else }}
      specific {
{{- range $policy.specificVersions }}
        versions: {{ int64 . }}
{{- end }}
      }
{{- end }}
    }
{{- range $label, $version := .Values.model.versionLabels }}
    version_labels {
      key: {{ $label | quote }}
      value: {{ int64 $version }}
    }
{{- end }}
  }
}
{{- end }}

{{/*
Return the pod-template checksum of everything mounted from chart-made ConfigMaps/Secrets, so a
change to the model config, batching parameters or token rolls the pods. The traffic ConfigMap
(traffic-configmap.yaml) is left out on purpose: the server applies it live, without a restart.
*/}}
{{- define "modelship.configChecksum" -}}
{{- include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/*
Render an IntOrString value: a bare integer stays a number, anything else ("25%") is quoted.
*/}}
{{- define "modelship.intOrString" -}}
{{- $s := toString . }}
{{- if regexMatch "^[0-9]+$" $s }}{{ $s }}{{ else }}{{ $s | quote }}{{ end }}
{{- end }}

{{/*
TLS (tls.*). The server mounts its Secret at modelship.tls.dir; the chart's clients (helm test,
rollout operator) mount only the server Secret's ca.crt at modelship.tls.caDir and, with mTLS, the
client Secret's tls.crt/tls.key at modelship.tls.clientDir. Every mount is a directory, never
subPath: a subPath file never sees the kubelet update the Secret when cert-manager renews it.
*/}}
{{- define "modelship.tls.dir" -}}
/etc/modelship/tls
{{- end }}

{{- define "modelship.tls.clientCADir" -}}
/etc/modelship/tls-client-ca
{{- end }}

{{- define "modelship.tls.caDir" -}}
/etc/modelship/tls-ca
{{- end }}

{{- define "modelship.tls.clientDir" -}}
/etc/modelship/tls-client
{{- end }}

{{/*
Return the server's kubernetes.io/tls Secret: tls.secretName, or "<fullname>-tls" (the Secret the
chart's cert-manager Certificate writes).
*/}}
{{- define "modelship.tls.secretName" -}}
{{- default (printf "%s-tls" (include "modelship.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{/*
Return the name clients verify in the server certificate: tls.serverName or "<fullname>.<ns>.svc".
*/}}
{{- define "modelship.tls.serverName" -}}
{{- default (printf "%s.%s.svc" (include "modelship.fullname" .) (include "modelship.namespace" .)) .Values.tls.serverName }}
{{- end }}

{{/*
Return the Secret holding the client CA bundle (tls.clientCA.secretName, or the server Secret).
*/}}
{{- define "modelship.tls.clientCASecretName" -}}
{{- default (include "modelship.tls.secretName" .) .Values.tls.clientCA.secretName }}
{{- end }}

{{/*
Return "true" when the client CA comes from a Secret other than the server's (a second volume).
*/}}
{{- define "modelship.tls.separateClientCA" -}}
{{- if ne (include "modelship.tls.clientCASecretName" .) (include "modelship.tls.secretName" .) }}true{{ end }}
{{- end }}

{{/*
Return the path of the client CA bundle in the server container (--tls_client_ca_file).
*/}}
{{- define "modelship.tls.clientCAFile" -}}
{{- if include "modelship.tls.separateClientCA" . }}
{{- printf "%s/%s" (include "modelship.tls.clientCADir" .) .Values.tls.clientCA.key }}
{{- else }}
{{- printf "%s/%s" (include "modelship.tls.dir" .) .Values.tls.clientCA.key }}
{{- end }}
{{- end }}

{{/*
Return the client certificate's Secret: tls.clientSecretName, or "<fullname>-client-tls" when the
chart's cert-manager Certificate issues it (tls.clientAuth not none); empty when there is none.
*/}}
{{- define "modelship.tls.clientSecretName" -}}
{{- if .Values.tls.clientSecretName }}
{{- .Values.tls.clientSecretName }}
{{- else if and .Values.tls.certManager.enabled (ne .Values.tls.clientAuth "none") }}
{{- printf "%s-client-tls" (include "modelship.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Return "true" when the chart's clients present the client certificate: TLS on with
tls.clientAuth=require (validateValues makes sure the Secret is known then).
*/}}
{{- define "modelship.tls.presentClientCert" -}}
{{- if and .Values.tls.enabled (eq .Values.tls.clientAuth "require") (include "modelship.tls.clientSecretName" .) }}true{{ end }}
{{- end }}

{{/*
Return the volumeMounts of a chart client of the server (helm test, rollout operator) with TLS on:
the server's CA and, with mTLS, the client certificate. Indent with nindent.
*/}}
{{- define "modelship.tls.clientVolumeMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls-ca
  mountPath: {{ include "modelship.tls.caDir" . }}
  readOnly: true
{{- if include "modelship.tls.presentClientCert" . }}
- name: tls-client
  mountPath: {{ include "modelship.tls.clientDir" . }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
Return the volumes that go with modelship.tls.clientVolumeMounts: only ca.crt of the server Secret
(never the server's key) and tls.crt/tls.key of the client Secret.
*/}}
{{- define "modelship.tls.clientVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls-ca
  secret:
    secretName: {{ include "modelship.tls.secretName" . }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- if include "modelship.tls.presentClientCert" . }}
- name: tls-client
  secret:
    secretName: {{ include "modelship.tls.clientSecretName" . }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end }}

{{/*
Return the spec fields both cert-manager Certificates share (lifetime, key, issuer).
*/}}
{{- define "modelship.tls.certificateSpec" -}}
{{- $cm := .Values.tls.certManager -}}
duration: {{ $cm.duration }}
renewBefore: {{ $cm.renewBefore }}
privateKey:
  algorithm: {{ $cm.privateKey.algorithm }}
  {{- if ne $cm.privateKey.algorithm "Ed25519" }}
  size: {{ int $cm.privateKey.size }}
  {{- end }}
  rotationPolicy: {{ $cm.privateKey.rotationPolicy }}
issuerRef:
  name: {{ $cm.issuerRef.name }}
  kind: {{ $cm.issuerRef.kind }}
  group: {{ $cm.issuerRef.group }}
{{- end }}
