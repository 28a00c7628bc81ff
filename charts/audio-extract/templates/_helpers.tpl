{{/*
audio-extract.name: the chart name, or nameOverride.
*/}}
{{- define "audio-extract.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
audio-extract.fullname: the prefix of every object name. Truncated to 52 characters so that
"<fullname>-operator" and friends stay within the 63-character DNS label limit.
*/}}
{{- define "audio-extract.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
audio-extract.chart: chart name and version, for the helm.sh/chart label.
*/}}
{{- define "audio-extract.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
audio-extract.selectorLabels: the immutable labels selecting one component's pods.
Call with (dict "ctx" $ "component" "api").
*/}}
{{- define "audio-extract.selectorLabels" -}}
app.kubernetes.io/name: {{ include "audio-extract.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
audio-extract.labels: the standard labels of every object of one component.
Call with (dict "ctx" $ "component" "api").
*/}}
{{- define "audio-extract.labels" -}}
helm.sh/chart: {{ include "audio-extract.chart" .ctx }}
{{ include "audio-extract.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: audio-extract
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
audio-extract.componentName: "<fullname>-<component>", the name of a component's objects.
Call with (dict "ctx" $ "component" "api").
*/}}
{{- define "audio-extract.componentName" -}}
{{- printf "%s-%s" (include "audio-extract.fullname" .ctx) .component }}
{{- end }}

{{/*
audio-extract.image: "repository:tag" of the one image (tag defaults to appVersion).
Call with (dict "ctx" $ "image" .Values.image).
*/}}
{{- define "audio-extract.image" -}}
{{- $repo := .image.repository | default .ctx.Values.image.repository }}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/*
audio-extract.secretName: the operator's Secret (webhook signing secret, progress-token key):
secrets.existingSecret, or the one this chart creates.
*/}}
{{- define "audio-extract.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-operator" (include "audio-extract.fullname" .)) }}
{{- end }}

{{/*
audio-extract.apiSecretName: the API's Secret (the idempotency key): secrets.existingApiSecret, or
the one this chart creates.
*/}}
{{- define "audio-extract.apiSecretName" -}}
{{- .Values.secrets.existingApiSecret | default (printf "%s-api" (include "audio-extract.fullname" .)) }}
{{- end }}

{{/*
audio-extract.apiKeysSecretName: the Secret of API-key digests mounted into the API:
secrets.existingApiKeysSecret, or the one this chart creates.
*/}}
{{- define "audio-extract.apiKeysSecretName" -}}
{{- .Values.secrets.existingApiKeysSecret | default (printf "%s-api-keys" (include "audio-extract.fullname" .)) }}
{{- end }}

{{/*
audio-extract.progressUrl: the operator's progress endpoint (POST /progress) as the worker pods
reach it, through the operator's Service.
*/}}
{{- define "audio-extract.progressUrl" -}}
{{- printf "http://%s.%s.svc:%d/progress" (include "audio-extract.componentName" (dict "ctx" . "component" "operator")) .Release.Namespace (int .Values.operator.progressPort) }}
{{- end }}

{{/*
audio-extract.podSecurityContext / audio-extract.securityContext: shared by every pod the chart
runs; the values hold the secure defaults (restricted Pod Security level).
*/}}
{{- define "audio-extract.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
{{- define "audio-extract.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
audio-extract.workerPodSelector: a label selector matching the extraction Jobs' pods, which the
operator labels with the job id.
*/}}
{{- define "audio-extract.workerPodSelector" -}}
matchExpressions:
  - key: audioextract.io/job-id
    operator: Exists
{{- end }}

{{/*
audio-extract.publicAddresses: NetworkPolicy peers for every public address, with the private,
shared, link-local and loopback ranges and networkPolicy.clusterCIDRs cut out: where workers fetch
sources and the operator sends webhooks. The address guards in those processes refuse the same
ranges; this is the second fence.
*/}}
{{- define "audio-extract.publicAddresses" -}}
{{- $v4except := list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "100.64.0.0/10" "169.254.0.0/16" "127.0.0.0/8" }}
{{- $v6except := list "fc00::/7" "fe80::/10" }}
{{- range .Values.networkPolicy.clusterCIDRs }}
{{- if contains ":" . }}
{{- $v6except = append $v6except . }}
{{- else }}
{{- $v4except = append $v4except . }}
{{- end }}
{{- end -}}
- ipBlock:
    cidr: 0.0.0.0/0
    except:
      {{- toYaml $v4except | nindent 6 }}
- ipBlock:
    cidr: ::/0
    except:
      {{- toYaml $v6except | nindent 6 }}
{{- end }}

{{/*
audio-extract.dnsEgress: the egress rule to the cluster's DNS (networkPolicy.dnsPeers).
*/}}
{{- define "audio-extract.dnsEgress" -}}
- to:
    {{- toYaml .Values.networkPolicy.dnsPeers | nindent 4 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}

{{/*
audio-extract.kubeAPIServerEgress: the egress rule to the Kubernetes API server
(networkPolicy.kubeAPIServer); without peers, any destination on its ports.
*/}}
{{- define "audio-extract.kubeAPIServerEgress" -}}
- ports:
    {{- range .Values.networkPolicy.kubeAPIServer.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .Values.networkPolicy.kubeAPIServer.peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
audio-extract.storeEnv: the store settings of the API or the operator (dict "ctx" $ "typeVar"
"AUDIO_EXTRACT_API_STORE_TYPE" "s3Prefix" "AUDIO_EXTRACT_API_S3__": the type's variable and the
prefix of the bucket's, which differ between the two processes' settings): the type, and with s3 the
bucket's settings and, from store.s3.existingSecret, the standard AWS credential variables (no
Secret: the standard chain, e.g. the pod's cloud identity).
*/}}
{{- define "audio-extract.storeEnv" -}}
{{- $s3 := .ctx.Values.store.s3 -}}
- name: {{ .typeVar }}
  value: {{ .ctx.Values.store.type | quote }}
{{- if eq .ctx.Values.store.type "s3" }}
- name: {{ .s3Prefix }}BUCKET
  value: {{ required "store.s3.bucket is required with store.type s3" $s3.bucket | quote }}
- name: {{ .s3Prefix }}REGION
  value: {{ $s3.region | quote }}
- name: {{ .s3Prefix }}PREFIX
  value: {{ $s3.prefix | quote }}
- name: {{ .s3Prefix }}ADDRESSING_STYLE
  value: {{ $s3.addressingStyle | quote }}
{{- with $s3.endpoint }}
- name: {{ $.s3Prefix }}ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s3.presignEndpoint }}
- name: {{ $.s3Prefix }}PRESIGN_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- if $s3.caConfigMap }}
- name: {{ .s3Prefix }}CA_BUNDLE
  value: /etc/audio-extract/store-ca/ca.crt
{{- end }}
{{- with $s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- end }}
{{- end }}

{{/*
audio-extract.storeMounts / storeVolumes: the store's volume (store.type volume) or the store's CA
(store.type s3 with store.s3.caConfigMap), for the API and the operator.
*/}}
{{- define "audio-extract.storeMounts" -}}
{{- if eq .Values.store.type "volume" }}
- name: store
  mountPath: {{ .Values.store.mountPath }}
{{- else if .Values.store.s3.caConfigMap }}
- name: store-ca
  mountPath: /etc/audio-extract/store-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "audio-extract.storeVolumes" -}}
{{- if eq .Values.store.type "volume" }}
- name: store
  persistentVolumeClaim:
    claimName: {{ .Values.store.claimName }}
{{- else if .Values.store.s3.caConfigMap }}
- name: store-ca
  configMap:
    name: {{ .Values.store.s3.caConfigMap }}
{{- end }}
{{- end }}

{{/*
audio-extract.storeEgress: with store.type s3, the egress rule to the store (store.s3.networkPolicyPeers,
or public addresses) on store.s3.port; nothing for a volume.
*/}}
{{- define "audio-extract.storeEgress" -}}
{{- if eq .Values.store.type "s3" }}
# The S3 store, on its port only.
- to:
    {{- with .Values.store.s3.networkPolicyPeers }}
    {{- toYaml . | nindent 4 }}
    {{- else }}
    {{- include "audio-extract.publicAddresses" . | nindent 4 }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ .Values.store.s3.port }}
{{- end }}
{{- end }}

{{/*
The Kueue WorkloadPriorityClass of each job priority, as JSON: the names given in
worker.kueuePriorityClassNames, else the chart's own classes when it creates them; a priority
with neither is left out (Kueue's default priority).
*/}}
{{- define "audio-extract.kueuePriorityClasses" -}}
{{- $out := dict }}
{{- $created := .Values.worker.kueuePriorityClasses.create }}
{{- range $priority := list "low" "normal" "high" }}
{{- $name := get $.Values.worker.kueuePriorityClassNames $priority }}
{{- if $name }}{{ $_ := set $out $priority $name }}
{{- else if $created }}{{ $_ := set $out $priority (printf "%s-%s" (include "audio-extract.fullname" $) $priority) }}
{{- end }}
{{- end }}
{{- $out | toJson }}
{{- end }}
