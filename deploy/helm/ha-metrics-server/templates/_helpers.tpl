{{/*
Names and labels: the same templates as metrics-server's chart, with its
chart name, so a release keeps its object names and selector labels when
it switches charts (a values file that sets nameOverride: "" included).
*/}}
{{- define "metrics-server.name" -}}
{{- default "metrics-server" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "metrics-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "metrics-server" .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "metrics-server.namespace" -}}
{{- .Values.namespaceOverride | default .Release.Namespace -}}
{{- end -}}

{{- define "metrics-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "metrics-server.labels" -}}
helm.sh/chart: {{ include "metrics-server.chart" . }}
{{ include "metrics-server.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- if .Values.commonLabels }}
{{ toYaml .Values.commonLabels }}
{{- end }}
{{- end }}

{{- define "metrics-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metrics-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "metrics-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "metrics-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* More than one replica: a StatefulSet forming a Raft cluster. */}}
{{- define "ha-metrics-server.cluster" -}}
{{- if gt (int .Values.replicas) 1 }}true{{ end }}
{{- end }}

{{/* Whether cert-manager makes the peer CA (peers.certificates). */}}
{{- define "ha-metrics-server.peerCertManager" -}}
{{- if eq .Values.peers.certificates "cert-manager" }}true
{{- else if eq .Values.peers.certificates "files" }}
{{- fail "peers.certificates files (one certificate shared by every replica) is no longer offered: each replica must present its own certificate; use secret (the certgen Job makes the CA) or cert-manager" }}
{{- else if ne .Values.peers.certificates "secret" }}
{{- fail (printf "peers.certificates must be secret or cert-manager, not %q" .Values.peers.certificates) }}
{{- end }}
{{- end }}

{{/* The Secret holding the peer CA the replicas mount: the certgen Job's
(peers.certificates secret) or cert-manager's. */}}
{{- define "ha-metrics-server.peerCaSecret" -}}
{{- if include "ha-metrics-server.peerCertManager" . }}
{{- printf "%s-peer-ca" (include "metrics-server.fullname" .) | trunc 253 }}
{{- else }}
{{- default (printf "%s-peer-cluster-ca" (include "metrics-server.fullname" .)) .Values.peers.caSecretName | trunc 253 }}
{{- end }}
{{- end }}

{{/* The certgen Job's service account. */}}
{{- define "ha-metrics-server.certgenServiceAccount" -}}
{{- printf "%s-certgen" (include "metrics-server.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The headless Service that names each replica's peer address. */}}
{{- define "ha-metrics-server.peerService" -}}
{{- printf "%s-peers" (include "metrics-server.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* --peers: the first `voters` ordinals, name=host:port. */}}
{{- define "ha-metrics-server.peers" -}}
{{- $fullname := include "metrics-server.fullname" . }}
{{- $svc := include "ha-metrics-server.peerService" . }}
{{- $ns := include "metrics-server.namespace" . }}
{{- $peers := list }}
{{- range $i := until (int .Values.voters) }}
{{- $peers = append $peers (printf "%s-%d=%s-%d.%s.%s.svc:%d" $fullname $i $fullname $i $svc $ns (int $.Values.peers.port)) }}
{{- end }}
{{- join "," $peers }}
{{- end }}

{{/* Whether the serving certificate comes from a Secret (every tls.type but metrics-server). */}}
{{- define "ha-metrics-server.tlsSecret" -}}
{{- if not (has .Values.tls.type (list "metrics-server" "helm" "cert-manager" "existingSecret")) }}
{{- fail (printf "tls.type must be metrics-server, helm, cert-manager or existingSecret, not %q" .Values.tls.type) }}
{{- end }}
{{- if ne .Values.tls.type "metrics-server" }}
{{- if eq .Values.tls.type "existingSecret" }}
{{- default (include "metrics-server.fullname" .) .Values.tls.existingSecret.name }}
{{- else }}
{{- include "metrics-server.fullname" . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The names the serving certificate is made for (tls.type helm, cert-manager). */}}
{{- define "ha-metrics-server.dnsNames" -}}
{{- $fullname := include "metrics-server.fullname" . }}
{{- $ns := include "metrics-server.namespace" . }}
{{- list $fullname (printf "%s.%s" $fullname $ns) (printf "%s.%s.svc" $fullname $ns) (printf "%s.%s.svc.%s" $fullname $ns .Values.tls.clusterDomain) | toJson }}
{{- end }}

{{/*
The image: image.repository:image.tag ("v" + appVersion when the tag is
empty). metrics-server's own image, named by a values file written for its
chart, is replaced by this chart's default: it cannot run these args.
*/}}
{{- define "ha-metrics-server.image" -}}
{{- $repo := .Values.image.repository }}
{{- $tag := toString (default (printf "v%s" .Chart.AppVersion) .Values.image.tag) }}
{{- if hasSuffix "metrics-server/metrics-server" $repo }}
{{- $repo = "ha-metrics-server" }}
{{- $tag = "latest" }}
{{- end }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/*
The container's args, in metrics-server's chart's order: --secure-port,
defaultArgs, the /metrics allow-list, the serving certificate's files,
then ours (the replica cluster), then args. As with metrics-server, a flag
repeated in args overrides the earlier value and a list flag appends.
*/}}
{{- define "ha-metrics-server.args" -}}
{{- $args := list (printf "--secure-port=%d" (int .Values.containerPort)) }}
{{- range .Values.defaultArgs }}
{{- $args = append $args . }}
{{- end }}
{{- if .Values.metrics.enabled }}
{{- $args = append $args "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics" }}
{{- end }}
{{- if include "ha-metrics-server.tlsSecret" . }}
{{- $args = append $args "--tls-cert-file=/tmp/tls-certs/tls.crt" }}
{{- $args = append $args "--tls-private-key-file=/tmp/tls-certs/tls.key" }}
{{- end }}
{{- with .Values.maxStaleness }}
{{- $args = append $args (printf "--max-staleness=%s" .) }}
{{- end }}
{{- if include "ha-metrics-server.cluster" . }}
{{- $args = append $args (printf "--peers=%s" (include "ha-metrics-server.peers" .)) }}
{{- $args = append $args (printf "--voters=%d" (int .Values.voters)) }}
{{- $args = append $args (printf "--peer-port=%d" (int .Values.peers.port)) }}
{{- $args = append $args (printf "--data-dir=%s" .Values.dataDir) }}
{{- $args = append $args "--peer-ca-dir=/etc/ha-metrics-server/peer-ca" }}
{{- $args = append $args (printf "--statefulset=%s" (include "metrics-server.fullname" .)) }}
{{- $args = append $args (printf "--shutdown-grace-period=%ds" (int .Values.terminationGracePeriodSeconds)) }}
{{- with .Values.lease }}
{{- $args = append $args (printf "--lease=%s" .) }}
{{- end }}
{{- end }}
{{- range .Values.args }}
{{- $args = append $args . }}
{{- end }}
{{- toYaml $args }}
{{- end }}

{{/* The addon-resizer sidecar runs with metrics-server's shape only. */}}
{{- define "ha-metrics-server.nanny" -}}
{{- if and .Values.addonResizer.enabled (not (include "ha-metrics-server.cluster" .)) }}true{{ end }}
{{- end }}

{{/* The pod template shared by the StatefulSet and the Deployment. */}}
{{- define "ha-metrics-server.podTemplate" -}}
{{- $cluster := include "ha-metrics-server.cluster" . -}}
metadata:
  labels:
    {{- include "metrics-server.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.schedulerName }}
  schedulerName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  serviceAccountName: {{ include "metrics-server.serviceAccountName" . }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- if .Values.hostNetwork.enabled }}
  hostNetwork: true
  {{- end }}
  {{- with .Values.dnsConfig }}
  dnsConfig:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if and (not (kindIs "invalid" .Values.hostUsers)) (semverCompare ">=1.33-0" .Capabilities.KubeVersion.Version) }}
  hostUsers: {{ .Values.hostUsers }}
  {{- end }}
  {{- if $cluster }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- end }}
  containers:
    - name: metrics-server
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      image: {{ include "ha-metrics-server.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "ha-metrics-server.args" . | nindent 8 }}
      {{- if $cluster }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
      {{- end }}
      ports:
        - name: https
          protocol: TCP
          containerPort: {{ .Values.containerPort }}
        {{- if $cluster }}
        - name: peer
          protocol: TCP
          containerPort: {{ .Values.peers.port }}
        {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if include "ha-metrics-server.tlsSecret" . }}
        - name: certs
          mountPath: /tmp/tls-certs
          readOnly: true
        {{- end }}
        {{- if $cluster }}
        - name: data
          mountPath: {{ .Values.dataDir }}
        - name: peer-ca
          mountPath: /etc/ha-metrics-server/peer-ca
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- if include "ha-metrics-server.nanny" . }}
    {{- $r := .Values.addonResizer }}
    - name: metrics-server-nanny
      {{- with $r.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      image: {{ printf "%s:%s" $r.image.repository (toString $r.image.tag) }}
      env:
        - name: MY_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: MY_POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
      command:
        - /pod_nanny
        - --config-dir=/etc/config
        - --deployment={{ include "metrics-server.fullname" . }}
        - --container=metrics-server
        - --threshold={{ $r.nanny.threshold }}
        - --poll-period={{ $r.nanny.pollPeriod }}
        - --estimator=exponential
        - --minClusterSize={{ $r.nanny.minClusterSize }}
        - --use-metrics=true
      volumeMounts:
        - name: nanny-config-volume
          mountPath: /etc/config
      {{- with $r.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
  volumes:
    - name: tmp
      {{- toYaml .Values.tmpVolume | nindent 6 }}
    {{- with include "ha-metrics-server.tlsSecret" . }}
    - name: certs
      secret:
        secretName: {{ . }}
    {{- end }}
    {{- if include "ha-metrics-server.nanny" . }}
    - name: nanny-config-volume
      configMap:
        name: {{ include "metrics-server.fullname" . }}-nanny-config
    {{- end }}
    {{- if $cluster }}
    # An emptyDir is safe: a lost data dir rejoins as a new incarnation.
    - name: data
      emptyDir: {}
    # The peer CA (required: the pod waits for the Secret).
    - name: peer-ca
      secret:
        secretName: {{ include "ha-metrics-server.peerCaSecret" . }}
        {{- if include "ha-metrics-server.peerCertManager" . }}
        items:
          - key: tls.crt
            path: ca.crt
          - key: tls.key
            path: ca.key
        {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range .Values.topologySpreadConstraints }}
    {{- $c := deepCopy . }}
    {{- if not (hasKey $c "labelSelector") }}
    {{- $_ := set $c "labelSelector" (dict "matchLabels" (include "metrics-server.selectorLabels" $ | fromYaml)) }}
    {{- end }}
    - {{ toYaml $c | indent 6 | trim }}
    {{- end }}
  {{- end }}
{{- end }}
