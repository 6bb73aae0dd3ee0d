{{/*
Fail with one readable block listing every cross-field rule the values break.
values.schema.json checks types, enums and unknown keys; these are the rules that span keys.
*/}}
{{- define "modelship.validateValues" -}}
{{- $messages := list }}
{{- $messages = append $messages (include "modelship.validateValues.urlSource" .) }}
{{- $messages = append $messages (include "modelship.validateValues.pvcSource" .) }}
{{- $messages = append $messages (include "modelship.validateValues.objectStoreSource" .) }}
{{- $messages = append $messages (include "modelship.validateValues.versionPolicy" .) }}
{{- $messages = append $messages (include "modelship.validateValues.versionLabels" .) }}
{{- $messages = append $messages (include "modelship.validateValues.rollout" .) }}
{{- $messages = append $messages (include "modelship.validateValues.autoscaling" .) }}
{{- $messages = append $messages (include "modelship.validateValues.pdb" .) }}
{{- $messages = append $messages (include "modelship.validateValues.gracePeriod" .) }}
{{- $messages = append $messages (include "modelship.validateValues.auth" .) }}
{{- $messages = append $messages (include "modelship.validateValues.ports" .) }}
{{- $messages = append $messages (include "modelship.validateValues.traffic" .) }}
{{- $messages = append $messages (include "modelship.validateValues.tls" .) }}
{{- $messages = without $messages "" }}
{{- if $messages }}
{{- printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages) | fail }}
{{- end }}
{{- end }}

{{/* The url source needs a URL and the archive's sha256. */}}
{{- define "modelship.validateValues.urlSource" -}}
{{- if eq .Values.model.source.type "url" }}
{{- $url := .Values.model.source.url }}
{{- if not (regexMatch "^https?://[^/]+" $url.url) }}
modelship: model.source.url.url
    The url source needs an http:// or https:// URL of the model archive (got {{ $url.url | quote }}).
{{- end }}
{{- if not (regexMatch "^[0-9a-fA-F]{64}$" $url.sha256) }}
modelship: model.source.url.sha256
    The url source needs the archive's SHA-256 as 64 hex characters, so the download is
    verified before it is extracted (got {{ $url.sha256 | quote }}).
    Compute it with: sha256sum model.tar.gz
{{- end }}
{{- end }}
{{- end }}

{{/* The pvc source needs a claim. */}}
{{- define "modelship.validateValues.pvcSource" -}}
{{- if and (eq .Values.model.source.type "pvc") (not .Values.model.source.pvc.claimName) }}
modelship: model.source.pvc.claimName
    The pvc source needs the name of an existing PersistentVolumeClaim.
{{- end }}
{{- end }}

{{/* The objectStore source needs an s3:// or gs:// base path; S3 settings only go with s3://. */}}
{{- define "modelship.validateValues.objectStoreSource" -}}
{{- if eq .Values.model.source.type "objectStore" }}
{{- $store := .Values.model.source.objectStore }}
{{- $scheme := include "modelship.objectStoreScheme" . }}
{{- if not (regexMatch "^(s3|gs)://[A-Za-z0-9][A-Za-z0-9._-]*(/.*)?$" $store.url) }}
modelship: model.source.objectStore.url
    The objectStore source needs the model's base path as s3://<bucket>/<prefix> or
    gs://<bucket>/<prefix>, the prefix holding one <version>/ per version (got {{ $store.url | quote }}).
{{- end }}
{{- if and $store.endpoint (not (regexMatch "^https?://[^/?#]+" $store.endpoint)) }}
modelship: model.source.objectStore.endpoint
    The endpoint must be an http:// or https:// URL of an S3-compatible service
    (got {{ $store.endpoint | quote }}).
{{- end }}
{{- if eq $scheme "gs" }}
{{- if $store.endpoint }}
modelship: model.source.objectStore.endpoint
    endpoint (AWS_ENDPOINT_URL) only applies to s3:// URLs; for a GCS emulator set
    STORAGE_EMULATOR_HOST in model.source.objectStore.extraEnv.
{{- end }}
{{- if $store.region }}
modelship: model.source.objectStore.region
    region (AWS_REGION) only applies to s3:// URLs.
{{- end }}
{{- if not $store.verifyTLS }}
modelship: model.source.objectStore.verifyTLS
    verifyTLS false (S3_VERIFY_SSL=0) only applies to s3:// URLs.
{{- end }}
{{- if and $store.credentials.secretName (not $store.credentials.gcsKeyFile) }}
modelship: model.source.objectStore.credentials.gcsKeyFile
    A gs:// source with credentials.secretName needs the Secret's key holding the JSON key file.
{{- end }}
{{- end }}
{{- if le (float64 $store.pollSeconds) 0.0 }}
modelship: model.source.objectStore.pollSeconds
    pollSeconds must be greater than 0 (got {{ $store.pollSeconds }}).
{{- end }}
{{- if not $store.cache.sizeLimit }}
modelship: model.source.objectStore.cache.sizeLimit
    The objectStore source needs a cache size (e.g. 4Gi) that holds the served versions plus one.
{{- end }}
{{- end }}
{{- end }}

{{/* The specific version policy needs versions. */}}
{{- define "modelship.validateValues.versionPolicy" -}}
{{- $policy := .Values.model.versionPolicy }}
{{- if and (eq $policy.type "specific") (not $policy.specificVersions) }}
modelship: model.versionPolicy.specificVersions
    The `specific` version policy needs at least one version.
{{- end }}
{{- end }}

{{/* Labelled versions must be served: a label on an unserved version never becomes available. */}}
{{- define "modelship.validateValues.versionLabels" -}}
{{- $policy := .Values.model.versionPolicy }}
{{- if eq $policy.type "specific" }}
{{- $served := list }}
{{- range $policy.specificVersions }}{{ $served = append $served (int64 .) }}{{ end }}
{{- range $label, $version := .Values.model.versionLabels }}
{{- if not (has (int64 $version) $served) }}
modelship: model.versionLabels.{{ $label }}
    Label {{ $label | quote }} points at version {{ int64 $version }}, which the `specific` policy
    does not serve ({{ join ", " $served }}).
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq .Values.model.source.type "url") .Values.model.versionLabels }}
{{- range $label, $version := .Values.model.versionLabels }}
{{- if ne (int64 $version) (int64 $.Values.model.source.url.version) }}
modelship: model.versionLabels.{{ $label }}
    The url source provides only version {{ int64 $.Values.model.source.url.version }}; label
    {{ $label | quote }} points at version {{ int64 $version }}.
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A rolling update with neither surge nor unavailability can never progress. */}}
{{- define "modelship.validateValues.rollout" -}}
{{- $surge := toString .Values.rollout.maxSurge }}
{{- $unavailable := toString .Values.rollout.maxUnavailable }}
{{- if and (has $surge (list "0" "0%")) (has $unavailable (list "0" "0%")) }}
modelship: rollout.maxSurge, rollout.maxUnavailable
    maxSurge and maxUnavailable cannot both be 0: the rolling update could never replace a pod.
{{- end }}
{{- end }}

{{/* HPA bounds. */}}
{{- define "modelship.validateValues.autoscaling" -}}
{{- $hpa := .Values.autoscaling }}
{{- if $hpa.enabled }}
{{- if gt (int $hpa.minReplicas) (int $hpa.maxReplicas) }}
modelship: autoscaling.minReplicas, autoscaling.maxReplicas
    minReplicas ({{ $hpa.minReplicas }}) must not exceed maxReplicas ({{ $hpa.maxReplicas }}).
{{- end }}
{{- if and (eq (int $hpa.targetCPUUtilizationPercentage) 0) (not $hpa.customMetric.enabled) }}
modelship: autoscaling
    The HPA needs a metric: set targetCPUUtilizationPercentage > 0 or enable customMetric.
{{- end }}
{{- end }}
{{- end }}

{{/* A PDB must leave room for at least one voluntary eviction. */}}
{{- define "modelship.validateValues.pdb" -}}
{{- $pdb := .Values.pdb }}
{{- if $pdb.create }}
{{- $min := toString $pdb.minAvailable }}
{{- $max := toString $pdb.maxUnavailable }}
{{- if and (ne $min "") (ne $max "") }}
modelship: pdb.minAvailable, pdb.maxUnavailable
    Set pdb.minAvailable or pdb.maxUnavailable, not both.
{{- end }}
{{- if has $max (list "0" "0%") }}
modelship: pdb.maxUnavailable
    maxUnavailable 0 blocks every voluntary eviction (node drains hang forever).
{{- end }}
{{- if eq $min "100%" }}
modelship: pdb.minAvailable
    minAvailable 100% blocks every voluntary eviction (node drains hang forever).
{{- end }}
{{- if regexMatch "^[0-9]+$" $min }}
{{- $floor := ternary (int .Values.autoscaling.minReplicas) (int .Values.replicaCount) .Values.autoscaling.enabled }}
{{- $what := ternary "autoscaling.minReplicas" "replicaCount" .Values.autoscaling.enabled }}
{{- if ge (int $min) $floor }}
modelship: pdb.minAvailable
    minAvailable ({{ $min }}) must be lower than {{ $what }} ({{ $floor }}), otherwise no pod can
    ever be evicted.
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The grace period must cover preStop plus the server's drain. */}}
{{- define "modelship.validateValues.gracePeriod" -}}
{{- $preStop := ternary (int .Values.lifecycle.preStop.sleepSeconds) 0 .Values.lifecycle.preStop.enabled }}
{{- $needed := add $preStop (int .Values.server.shutdownTimeoutSeconds) }}
{{- if le (int .Values.terminationGracePeriodSeconds) $needed }}
modelship: terminationGracePeriodSeconds
    terminationGracePeriodSeconds ({{ .Values.terminationGracePeriodSeconds }}) must exceed
    lifecycle.preStop.sleepSeconds ({{ $preStop }}) + server.shutdownTimeoutSeconds
    ({{ .Values.server.shutdownTimeoutSeconds }}), or in-flight requests are killed.
{{- end }}
{{- end }}

{{/* Auth needs a token source. */}}
{{- define "modelship.validateValues.auth" -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) (not .Values.auth.token) }}
modelship: auth.token
    auth.enabled needs auth.existingSecret or auth.token (e.g. --set auth.token=$(openssl rand -hex 32)).
{{- end }}
{{- end }}

{{/* The two container ports must differ. */}}
{{- define "modelship.validateValues.ports" -}}
{{- if eq (int .Values.server.restPort) (int .Values.server.grpcPort) }}
modelship: server.restPort, server.grpcPort
    The REST and gRPC ports must differ.
{{- end }}
{{- if eq (int .Values.service.restPort) (int .Values.service.grpcPort) }}
modelship: service.restPort, service.grpcPort
    The Service's REST and gRPC ports must differ.
{{- end }}
{{- end }}

{{/*
The traffic file: inline or existing, not both; it names the served model; the versions it
weights or shadows must be able to be loaded together by the version policy, or, when the model
has a `versions` pin (which replaces the policy in the server), be pinned; a pin lists positive
integers, and labelled versions must be pinned (as they must be served by a `specific` policy).
An enabled traffic file with an empty config is allowed: it mounts the file (serving as TF Serving
does) so weights can later be set live, without the pod roll that enabling it would cause.
*/}}
{{- define "modelship.validateValues.traffic" -}}
{{- $traffic := .Values.traffic }}
{{- $config := $traffic.config | default dict }}
{{- if and $traffic.existingConfigMap $config }}
modelship: traffic.config, traffic.existingConfigMap
    Set traffic.config (the chart renders the ConfigMap) or traffic.existingConfigMap (managed
    elsewhere), not both.
{{- end }}
{{- if and $traffic.enabled (not $traffic.existingConfigMap) }}
{{- $policy := .Values.model.versionPolicy }}
{{- range $name, $model := ($config.models | default dict) }}
{{- if ne $name $.Values.model.name }}
modelship: traffic.config.models.{{ $name }}
    The chart serves one model, {{ $.Values.model.name | quote }}; the server would ignore traffic for
    {{ $name | quote }}.
{{- end }}
{{- $versions := list }}
{{- range $version, $weight := ($model.weights | default dict) }}
{{- if gt (int64 $weight) 0 }}{{ $versions = append $versions (int64 $version) }}{{ end }}
{{- end }}
{{- with $model.shadow }}{{ $versions = append $versions (int64 .version) }}{{ end }}
{{- $versions = $versions | uniq }}
{{- if not (kindIs "invalid" $model.versions) }}
{{- $pinned := list }}
{{- $valid := true }}
{{- range $model.versions }}
{{- if and (or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .)) (ge (float64 .) 1.0) (eq (float64 .) (float64 (int64 .))) }}
{{- $pinned = append $pinned (int64 .) }}
{{- else }}
{{- $valid = false }}
modelship: traffic.config.models.{{ $name }}.versions
    The pin lists versions as positive integers (got {{ . | toJson }}).
{{- end }}
{{- end }}
{{- if and $valid (not $pinned) }}
modelship: traffic.config.models.{{ $name }}.versions
    The pin needs at least one version; leave versions out (or null) to let model.versionPolicy decide.
{{- end }}
{{- if $valid }}
{{- range $versions }}
{{- if not (has . $pinned) }}
modelship: traffic.config.models.{{ $name }}.versions
    Version {{ . }} gets traffic but the pin does not load it ({{ join ", " $pinned }}): the
    server would refuse this traffic file.
{{- end }}
{{- end }}
{{- range $label, $version := $.Values.model.versionLabels }}
{{- if not (has (int64 $version) $pinned) }}
modelship: model.versionLabels.{{ $label }}
    Label {{ $label | quote }} points at version {{ int64 $version }}, which the traffic pin of
    {{ $name | quote }} does not load ({{ join ", " $pinned }}).
{{- end }}
{{- end }}
{{- end }}
{{- else }}
{{- if and (eq $policy.type "latest") (gt (len $versions) (int $policy.latestNumVersions)) }}
modelship: traffic.config.models.{{ $name }}
    The traffic file sends requests to {{ len $versions }} versions ({{ join ", " ($versions | sortAlpha) }}) but the
    `latest` policy loads only the newest {{ int $policy.latestNumVersions }}: set
    model.versionPolicy.latestNumVersions to {{ len $versions }} or use the `specific` policy.
{{- end }}
{{- if eq $policy.type "specific" }}
{{- $served := list }}
{{- range $policy.specificVersions }}{{ $served = append $served (int64 .) }}{{ end }}
{{- range $versions }}
{{- if not (has . $served) }}
modelship: traffic.config.models.{{ $name }}
    Version {{ . }} gets traffic but the `specific` policy does not serve it ({{ join ", " $served }}).
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
TLS: a certificate source (an existing Secret or cert-manager with an issuer), a key size that fits
the algorithm, and, with mTLS required, a client certificate for every chart client that talks to
the server (helm test, rollout operator, ServiceMonitor); the API server's pod proxy cannot present
one. tls.* values are ignored (and not checked) while tls.enabled is false.
*/}}
{{- define "modelship.validateValues.tls" -}}
{{- $tls := .Values.tls }}
{{- if $tls.enabled }}
{{- $cm := $tls.certManager }}
{{- if and (not $tls.secretName) (not $cm.enabled) }}
modelship: tls.secretName
    tls.enabled needs the server certificate: set tls.secretName to an existing kubernetes.io/tls
    Secret (tls.crt, tls.key and ca.crt), or enable tls.certManager (with tls.certManager.issuerRef.name)
    to have cert-manager issue it.
{{- end }}
{{- if $cm.enabled }}
{{- if not $cm.issuerRef.name }}
modelship: tls.certManager.issuerRef.name
    tls.certManager.enabled needs the Issuer or ClusterIssuer that signs the certificates
    (tls.certManager.issuerRef.name, and issuerRef.kind ClusterIssuer for a cluster-wide one).
{{- end }}
{{- $key := $cm.privateKey }}
{{- $sizes := dict "ECDSA" (list 256 384 521) "RSA" (list 2048 4096 8192) }}
{{- with get $sizes $key.algorithm }}
{{- if not (has (int $key.size) .) }}
modelship: tls.certManager.privateKey.size
    A {{ $key.algorithm }} key is {{ join ", " . }} bits (got {{ $key.size }}).
{{- end }}
{{- end }}
{{- end }}
{{- if eq $tls.clientAuth "require" }}
{{- if not (include "modelship.tls.clientSecretName" .) }}
{{- $clients := list }}
{{- if .Values.helmTest.enabled }}{{ $clients = append $clients "helmTest.enabled" }}{{ end }}
{{- if .Values.operator.enabled }}{{ $clients = append $clients "operator.enabled" }}{{ end }}
{{- if .Values.metrics.serviceMonitor.enabled }}{{ $clients = append $clients "metrics.serviceMonitor.enabled" }}{{ end }}
{{- if $clients }}
modelship: tls.clientSecretName
    tls.clientAuth=require refuses clients without a certificate, and {{ join ", " $clients }} connect(s)
    to the server: set tls.clientSecretName to a kubernetes.io/tls Secret with a client certificate
    (tls.crt, tls.key) issued by the client CA, or enable tls.certManager to have the chart issue one.
{{- end }}
{{- end }}
{{- if and .Values.operator.enabled (eq .Values.operator.podAccess "proxy") }}
modelship: operator.podAccess
    tls.clientAuth=require needs operator.podAccess=direct: through the API server's pod proxy the
    operator cannot present a client certificate, so the pods would refuse it.
{{- end }}
{{- end }}
{{- end }}
{{- end }}
