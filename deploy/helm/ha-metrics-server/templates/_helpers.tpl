{{/*
Names and labels: the same templates as metrics-server's chart, so a
release keeps its object names and selector labels when it switches charts.
*/}}
{{- define "metrics-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "metrics-server.fullname" -}}
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

{{/*
The container's args: --secure-port, defaultArgs and the chart's own flags,
each dropped when args sets the same flag again, then args.
*/}}
{{- define "ha-metrics-server.args" -}}
{{- $own := list (printf "--secure-port=%d" (int .Values.containerPort)) }}
{{- range .Values.defaultArgs }}
{{- $own = append $own . }}
{{- end }}
{{- if .Values.metrics.enabled }}
{{- $own = append $own "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics" }}
{{- end }}
{{- if eq .Values.tls.type "existingSecret" }}
{{- $own = append $own "--tls-cert-file=/tmp/tls-certs/tls.crt" }}
{{- $own = append $own "--tls-private-key-file=/tmp/tls-certs/tls.key" }}
{{- end }}
{{- with .Values.maxStaleness }}
{{- $own = append $own (printf "--max-staleness=%s" .) }}
{{- end }}
{{- if include "ha-metrics-server.cluster" . }}
{{- $own = append $own (printf "--peers=%s" (include "ha-metrics-server.peers" .)) }}
{{- $own = append $own (printf "--voters=%d" (int .Values.voters)) }}
{{- $own = append $own (printf "--peer-port=%d" (int .Values.peers.port)) }}
{{- $own = append $own (printf "--data-dir=%s" .Values.dataDir) }}
{{- $own = append $own "--peer-ca-dir=/etc/ha-metrics-server/peer-ca" }}
{{- $own = append $own (printf "--statefulset=%s" (include "metrics-server.fullname" .)) }}
{{- $own = append $own (printf "--shutdown-grace-period=%ds" (int .Values.terminationGracePeriodSeconds)) }}
{{- with .Values.lease }}
{{- $own = append $own (printf "--lease=%s" .) }}
{{- end }}
{{- end }}
{{- $given := list }}
{{- range .Values.args }}
{{- $given = append $given (regexReplaceAll "=.*$" (toString .) "") }}
{{- end }}
{{- $args := list }}
{{- range $own }}
{{- if not (has (regexReplaceAll "=.*$" (toString .) "") $given) }}
{{- $args = append $args . }}
{{- end }}
{{- end }}
{{- range .Values.args }}
{{- $args = append $args . }}
{{- end }}
{{- toYaml $args }}
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
  {{- if $cluster }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- end }}
  containers:
    - name: metrics-server
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      image: {{ printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
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
        {{- if eq .Values.tls.type "existingSecret" }}
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
  volumes:
    - name: tmp
      {{- toYaml .Values.tmpVolume | nindent 6 }}
    {{- if eq .Values.tls.type "existingSecret" }}
    - name: certs
      secret:
        secretName: {{ required "tls.existingSecret.name is required with tls.type existingSecret" .Values.tls.existingSecret.name }}
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
  {{- if and $cluster .Values.topologySpreadConstraints }}
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
