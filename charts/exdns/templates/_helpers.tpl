{{/*
The chart name, for labels.
*/}}
{{- define "exdns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name: the release name when it already contains the chart name (`exdns`, `exdns-1`),
else `<release>-<chart>`. Resource names, and the default apex `<fullname>.<namespace>`.
*/}}
{{- define "exdns.fullname" -}}
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

{{/*
`<fullname>-<suffix>`, within 63 characters. Usage: include "exdns.suffixed" (list . "podip")
*/}}
{{- define "exdns.suffixed" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $base := include "exdns.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base $suffix -}}
{{- end -}}

{{- define "exdns.chart" -}}
{{- printf "%s-%s" .Chart.Name (.Chart.Version | replace "+" "_") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "exdns.selectorLabels" -}}
app.kubernetes.io/name: {{ include "exdns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "exdns.labels" -}}
helm.sh/chart: {{ include "exdns.chart" . }}
{{ include "exdns.selectorLabels" . }}
app.kubernetes.io/version: {{ include "exdns.tag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.customLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "exdns.tag" -}}
{{- default .Chart.AppVersion (toString .Values.image.tag) -}}
{{- end -}}

{{- define "exdns.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo (include "exdns.tag" .) -}}
{{- end -}}

{{- define "exdns.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "exdns.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The zones of `domain` (a space-separated string or a list), space-separated. Required.
*/}}
{{- define "exdns.domain" -}}
{{- $d := required "domain is required: the zone(s) to serve, e.g. --set domain=example.com" .Values.domain -}}
{{- if kindIs "slice" $d -}}
{{- $d = join " " $d -}}
{{- end -}}
{{- $zones := splitList " " (toString $d) | compact -}}
{{- if not $zones -}}
{{- fail "domain is required: the zone(s) to serve, e.g. --set domain=example.com" -}}
{{- end -}}
{{- join " " $zones -}}
{{- end -}}

{{/*
This instance's apex: `apex`, else `<fullname>.<namespace>` (the name of this chart's Service,
which is how k8s_gateway finds the glue addresses).
*/}}
{{- define "exdns.apex" -}}
{{- default (printf "%s.%s" (include "exdns.fullname" .) .Release.Namespace) .Values.apex -}}
{{- end -}}

{{/*
watchedResources, validated (case-insensitive, as exdns reads them), canonical spelling,
duplicates removed, as a JSON list. Empty list: exdns's default (every kind but Node).
*/}}
{{- define "exdns.kinds" -}}
{{- $known := list "HTTPRoute" "TLSRoute" "GRPCRoute" "TCPRoute" "UDPRoute" "DNSEndpoint" "VirtualServer" "IngressRoute" "IngressRouteTCP" "IngressRouteUDP" "IstioGateway" "IstioVirtualService" "Ingress" "Service" "Node" -}}
{{- $out := list -}}
{{- range $want := .Values.watchedResources -}}
{{- $found := "" -}}
{{- range $k := $known -}}
{{- if eq (lower $k) (lower (toString $want)) -}}
{{- $found = $k -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "watchedResources: unknown kind %q (known: %s)" (toString $want) (join ", " $known)) -}}
{{- end -}}
{{- if not (has $found $out) -}}
{{- $out = append $out $found -}}
{{- end -}}
{{- end -}}
{{- if not $out -}}
{{- $out = without $known "Node" -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
The ClusterRole rules: list/watch on exactly the API resources exdns reads for the watched
kinds (routes need their parent Gateways; Services need EndpointSlices for
`k8s-gateway.dns/resolve-endpoints`). One rule per API group, resources sorted.
*/}}
{{- define "exdns.rbacRules" -}}
{{- $needs := dict
  "HTTPRoute" (list "gateway.networking.k8s.io/httproutes" "gateway.networking.k8s.io/gateways")
  "TLSRoute" (list "gateway.networking.k8s.io/tlsroutes" "gateway.networking.k8s.io/gateways")
  "GRPCRoute" (list "gateway.networking.k8s.io/grpcroutes" "gateway.networking.k8s.io/gateways")
  "TCPRoute" (list "gateway.networking.k8s.io/tcproutes" "gateway.networking.k8s.io/gateways")
  "UDPRoute" (list "gateway.networking.k8s.io/udproutes" "gateway.networking.k8s.io/gateways")
  "DNSEndpoint" (list "externaldns.k8s.io/dnsendpoints")
  "VirtualServer" (list "k8s.nginx.org/virtualservers")
  "IngressRoute" (list "traefik.io/ingressroutes" "traefik.containo.us/ingressroutes")
  "IngressRouteTCP" (list "traefik.io/ingressroutetcps" "traefik.containo.us/ingressroutetcps")
  "IngressRouteUDP" (list "traefik.io/ingressrouteudps" "traefik.containo.us/ingressrouteudps")
  "IstioGateway" (list "networking.istio.io/gateways" "/services")
  "IstioVirtualService" (list "networking.istio.io/virtualservices" "networking.istio.io/gateways" "/services")
  "Ingress" (list "networking.k8s.io/ingresses")
  "Service" (list "/services" "discovery.k8s.io/endpointslices")
  "Node" (list "/nodes")
-}}
{{- $groups := dict -}}
{{- range $kind := include "exdns.kinds" . | fromJsonArray -}}
{{- range $gr := get $needs $kind -}}
{{- $parts := splitList "/" $gr -}}
{{- $g := index $parts 0 -}}
{{- $r := index $parts 1 -}}
{{- $have := get $groups $g | default list -}}
{{- $_ := set $groups $g (append $have $r) -}}
{{- end -}}
{{- end -}}
{{- range $g := keys $groups | sortAlpha }}
- apiGroups: [{{ $g | quote }}]
  resources: {{ get $groups $g | uniq | sortAlpha | toJson }}
  verbs: ["list", "watch"]
{{- end -}}
{{- end -}}

{{/*
The listen port of an operations plugin in extraZonePlugins, or "" when the plugin is not
configured. Usage: include "exdns.pluginPort" (list . "health" "8080")
*/}}
{{- define "exdns.pluginPort" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $default := index . 2 -}}
{{- $port := "" -}}
{{- range $root.Values.extraZonePlugins -}}
{{- if eq .name $name -}}
{{- $p := regexFind ":[0-9]+$" (toString (default "" .parameters)) | trimPrefix ":" -}}
{{- $port = default $default $p -}}
{{- end -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/*
Whether exdns's own forward replaces extraZonePlugins' forward.
*/}}
{{- define "exdns.ownForward" -}}
{{- if .Values.forward.upstreams -}}true{{- end -}}
{{- end -}}

{{/*
The lowest port the container listens on (DNS, health, ready, metrics, podip).
*/}}
{{- define "exdns.lowestPort" -}}
{{- $ports := list (int .Values.containerPort) -}}
{{- range $p := list (include "exdns.pluginPort" (list . "health" "8080")) (include "exdns.pluginPort" (list . "ready" "8181")) (include "exdns.pluginPort" (list . "prometheus" "9153")) -}}
{{- if $p -}}
{{- $ports = append $ports (int $p) -}}
{{- end -}}
{{- end -}}
{{- if .Values.podip.enabled -}}
{{- $ports = append $ports (int .Values.podip.port) -}}
{{- end -}}
{{- $min := 65536 -}}
{{- range $ports -}}
{{- if lt . $min -}}
{{- $min = . -}}
{{- end -}}
{{- end -}}
{{- $min -}}
{{- end -}}

{{/*
The Corefile.
*/}}
{{/*
The server block's scheme, checked: `dns`, or an encrypted one that needs its certificate —
`tls` (DoT), `https` (DoH), `https3` (DoH over HTTP/3), `quic` (DoQ). gRPC is not served.
*/}}
{{- define "exdns.scheme" -}}
{{- $s := trimSuffix "://" (default "dns" .Values.scheme) -}}
{{- if eq $s "grpc" -}}
{{- fail "scheme grpc: exdns does not serve grpc:// (dns, tls, https, https3 and quic are served)" -}}
{{- end -}}
{{- if and (ne $s "dns") (not .Values.tls.secretName) -}}
{{- fail (printf "scheme %s needs tls.secretName: a kubernetes.io/tls Secret with the server's certificate" $s) -}}
{{- end -}}
{{- $s -}}
{{- end -}}

{{/*
"true" when the scheme listens on UDP (dns, and QUIC: https3, quic) / on TCP (dns, tls, https).
*/}}
{{- define "exdns.udp" -}}
{{- if has (include "exdns.scheme" .) (list "dns" "https3" "quic") }}true{{ end -}}
{{- end -}}
{{- define "exdns.tcp" -}}
{{- if has (include "exdns.scheme" .) (list "dns" "tls" "https") }}true{{ end -}}
{{- end -}}

{{- define "exdns.corefile" -}}
{{- $v := .Values -}}
{{- $scheme := include "exdns.scheme" . -}}
{{- if and $v.forward.interface (not $v.forward.upstreams) -}}
{{- fail "forward.interface needs forward.upstreams (the upstreams to pin to the interface)" -}}
{{- end -}}
{{ if ne $scheme "dns" }}{{ $scheme }}://{{ end }}.:{{ int $v.containerPort }} {
    {{- if ne $scheme "dns" }}
    tls /etc/exdns/tls/tls.crt /etc/exdns/tls/tls.key{{ if $v.tls.clientCA }} /etc/exdns/tls/ca.crt{{ end }}
    {{- end }}
    {{- if $v.dnsChallenge.enabled }}
    {{- $challenge := required "dnsChallenge.domain is required with dnsChallenge.enabled: the zone ACME DNS-01 challenges are delegated to, e.g. dns01.clouddns.com" $v.dnsChallenge.domain }}
    template IN ANY {{ include "exdns.domain" . }} {
        match{{ range $z := splitList " " (include "exdns.domain" .) }} "_acme-challenge[.](.*)[.]{{ $z | replace "." "[.]" }}"{{ end }}
        answer "{{ "{{" }} .Name {{ "}}" }} 5 IN CNAME {{ "{{" }} index .Match 1 {{ "}}" }}.{{ $challenge }}"
        fallthrough
    }
    {{- end }}
    k8s_gateway {{ include "exdns.domain" . }} {
        {{- if $v.watchedResources }}
        resources {{ include "exdns.kinds" . | fromJsonArray | join " " }}
        {{- end }}
        {{- with $v.filters.ingressClasses }}
        ingressClasses {{ join " " . }}
        {{- end }}
        {{- with $v.filters.gatewayClasses }}
        gatewayClasses {{ join " " . }}
        {{- end }}
        {{- with $v.filters.serviceLabelSelectors }}
        serviceLabelSelectors{{ range . }} {{ quote . }}{{ end }}
        {{- end }}
        ttl {{ int $v.ttl }}
        apex {{ include "exdns.apex" . }}
        {{- with $v.secondary }}
        secondary {{ . }}
        {{- end }}
        {{- if $v.fallthrough.enabled }}
        fallthrough{{ range $v.fallthrough.zones }} {{ . }}{{ end }}
        {{- end }}
        {{- with $v.nodeAddressType }}
        nodeAddressType {{ . }}
        {{- end }}
        {{- if $v.hostnameAsCNAME }}
        hostnameAsCNAME
        {{- end }}
    }
    {{- with $v.transfer.to }}
    {{- if not $v.service.useTcp }}
    {{- fail "transfer.to needs service.useTcp: zone transfers run over TCP" }}
    {{- end }}
    transfer {{ include "exdns.domain" $ }} {
        to {{ join " " . }}
    }
    {{- if $v.transfer.tsig.existingSecret }}
    tsig {{ include "exdns.domain" $ }} {
        secrets /etc/exdns/tsig/{{ $v.transfer.tsig.key }}
        require AXFR IXFR
    }
    {{- end }}
    {{- end }}
    {{- range $v.extraZonePlugins }}
    {{- if not (and (eq .name "forward") (include "exdns.ownForward" $)) }}
    {{ .name }}{{ with .parameters }} {{ . }}{{ end }}{{ with .configBlock }} {
        {{- . | nindent 8 }}
    }{{ end }}
    {{- end }}
    {{- end }}
    {{- if include "exdns.ownForward" . }}
    {{- $f := $v.forward }}
    forward {{ default "." $f.from }} {{ join " " $f.upstreams }}
    {{- if or $f.serverName $f.interface $f.policy $f.healthCheck $f.failfastAllUnhealthyUpstreams $f.extraOptions }} {
        {{- with $f.serverName }}
        tls_servername {{ . }}
        {{- end }}
        {{- with $f.interface }}
        interface {{ . }}
        {{- end }}
        {{- with $f.policy }}
        policy {{ . }}
        {{- end }}
        {{- with $f.healthCheck }}
        health_check {{ . }}
        {{- end }}
        {{- if $f.failfastAllUnhealthyUpstreams }}
        failfast_all_unhealthy_upstreams
        {{- end }}
        {{- range $f.extraOptions }}
        {{ . }}
        {{- end }}
    }
    {{- end }}
    {{- end }}
    {{- if $v.cache.enabled }}
    cache {{ int $v.cache.ttl }}
    {{- end }}
    {{- if $v.podip.enabled }}
    podip :{{ int $v.podip.port }}
    {{- if or $v.podip.interface $v.podip.requireUpstream }} {
        {{- with $v.podip.interface }}
        interface {{ . }}
        {{- end }}
        {{- if $v.podip.requireUpstream }}
        require_upstream
        {{- end }}
    }
    {{- end }}
    {{- end }}
    {{- include "exdns.zoneFilesChecked" . }}
    {{- range $v.zoneFiles }}
    {{- $fall := and (kindIs "map" .fallthrough) .fallthrough.enabled }}
    {{- $reload := and (hasKey . "reload") (not (kindIs "invalid" .reload)) }}
    {{- $domains := .domains }}
    {{- if kindIs "slice" $domains }}
    {{- $domains = join " " $domains }}
    {{- end }}
    file /etc/coredns/{{ .filename }}{{ with $domains }} {{ . }}{{ end }}
    {{- if or $fall $reload }} {
        {{- if $fall }}
        fallthrough{{ range .fallthrough.zones }} {{ . }}{{ end }}
        {{- end }}
        {{- if $reload }}
        reload {{ .reload }}
        {{- end }}
    }
    {{- end }}
    {{- end }}
}
{{- end -}}

{{/*
zoneFiles, checked (renders nothing): each entry a map with a `filename` that is a valid
ConfigMap key other than `Corefile`, used once, and `contents`, the zone file text.
*/}}
{{- define "exdns.zoneFilesChecked" -}}
{{- $seen := list -}}
{{- range $i, $f := .Values.zoneFiles -}}
{{- if not (kindIs "map" $f) -}}
{{- fail (printf "zoneFiles[%d]: expected a map with filename and contents" $i) -}}
{{- end -}}
{{- $name := toString (required (printf "zoneFiles[%d]: filename is required (the file's key in the ConfigMap, mounted at /etc/coredns/FILENAME)" $i) $f.filename) -}}
{{- if or (eq $name "Corefile") (eq $name ".") (eq $name "..") (gt (len $name) 253) (not (regexMatch "^[-._a-zA-Z0-9]+$" $name)) -}}
{{- fail (printf "zoneFiles[%d]: filename %q is not a valid ConfigMap key (letters, digits, '-', '_', '.') or is Corefile" $i $name) -}}
{{- end -}}
{{- if has $name $seen -}}
{{- fail (printf "zoneFiles[%d]: filename %q is used twice" $i $name) -}}
{{- end -}}
{{- $seen = append $seen $name -}}
{{- if not (kindIs "string" $f.contents) -}}
{{- fail (printf "zoneFiles[%d] (%s): contents is required: the zone file text, as a string" $i $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The pod's securityContext: hardened defaults (secure), the unprivileged-port sysctl when a
port below 1024 is configured, then podSecurityContext over them.
*/}}
{{- define "exdns.podSecurityContext" -}}
{{- $ctx := dict -}}
{{- if .Values.secure -}}
{{- $ctx = dict "runAsNonRoot" true "runAsUser" 65532 "runAsGroup" 65532 "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- end -}}
{{- $low := include "exdns.lowestPort" . | int -}}
{{- if lt $low 1024 -}}
{{- $_ := set $ctx "sysctls" (list (dict "name" "net.ipv4.ip_unprivileged_port_start" "value" (toString $low))) -}}
{{- end -}}
{{- $ctx = mergeOverwrite $ctx (deepCopy (default (dict) .Values.podSecurityContext)) -}}
{{- if $ctx -}}
{{- toYaml $ctx -}}
{{- end -}}
{{- end -}}

{{/*
The container's securityContext: hardened defaults (secure), the capability the
configuration needs (NET_BIND_SERVICE for a port below 1024, for setups running as root), then
securityContext over them. forward.interface (SO_BINDTODEVICE) needs no capability on
Linux 5.7 and later, the chart's kernel floor for it.
*/}}
{{- define "exdns.securityContext" -}}
{{- $ctx := dict -}}
{{- $caps := dict -}}
{{- if .Values.secure -}}
{{- $ctx = dict "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "privileged" false -}}
{{- $_ := set $caps "drop" (list "ALL") -}}
{{- end -}}
{{- $add := list -}}
{{- if lt (include "exdns.lowestPort" . | int) 1024 -}}
{{- $add = append $add "NET_BIND_SERVICE" -}}
{{- end -}}
{{- if $add -}}
{{- $_ := set $caps "add" $add -}}
{{- end -}}
{{- if $caps -}}
{{- $_ := set $ctx "capabilities" $caps -}}
{{- end -}}
{{- $ctx = mergeOverwrite $ctx (deepCopy (default (dict) .Values.securityContext)) -}}
{{- if $ctx -}}
{{- toYaml $ctx -}}
{{- end -}}
{{- end -}}
