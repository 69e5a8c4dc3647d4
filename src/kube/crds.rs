//! Custom resources exdns reads that have no published Rust types: DNSEndpoint (external-dns),
//! VirtualServer (nginxinc kubernetes-ingress) and TLSRoute v1alpha2 (Gateway API before 1.5;
//! v1 comes from the gateway-api crate). Only the fields exdns reads are modelled; unknown
//! fields are ignored when deserializing, so these types are for reading (watching, listing),
//! not for writing objects back.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `externaldns.k8s.io/v1alpha1` DNSEndpoint: records external-dns would publish.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "externaldns.k8s.io",
    version = "v1alpha1",
    kind = "DNSEndpoint",
    plural = "dnsendpoints",
    namespaced,
    status = "DNSEndpointStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct DNSEndpointSpec {
    #[serde(default)]
    pub endpoints: Vec<DNSEndpointRecord>,
}

/// One `spec.endpoints[]` entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DNSEndpointRecord {
    #[serde(default)]
    pub dns_name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT`, ... (exdns answers A, AAAA, TXT and CNAME).
    #[serde(default)]
    pub record_type: String,
    #[serde(default)]
    pub targets: Vec<String>,
    /// Ignored by exdns (answers use the directive's `ttl`).
    #[serde(default, rename = "recordTTL", skip_serializing_if = "Option::is_none")]
    pub record_ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DNSEndpointStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `k8s.nginx.org/v1` VirtualServer.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "k8s.nginx.org",
    version = "v1",
    kind = "VirtualServer",
    plural = "virtualservers",
    namespaced,
    status = "VirtualServerStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_endpoints: Option<Vec<VirtualServerExternalEndpoint>>,
}

/// One `status.externalEndpoints[]` entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerExternalEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
}

/// `gateway.networking.k8s.io/v1alpha2` TLSRoute (same shape as v1 for the fields read).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1alpha2",
    kind = "TLSRoute",
    root = "TLSRouteV1Alpha2",
    plural = "tlsroutes",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct TLSRouteV1Alpha2Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_refs: Option<Vec<TLSRouteV1Alpha2ParentRef>>,
}

/// A `spec.parentRefs[]` entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TLSRouteV1Alpha2ParentRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;

    #[test]
    fn resource_metadata() {
        assert_eq!(DNSEndpoint::api_version(&()), "externaldns.k8s.io/v1alpha1");
        assert_eq!(DNSEndpoint::plural(&()), "dnsendpoints");
        assert_eq!(VirtualServer::api_version(&()), "k8s.nginx.org/v1");
        assert_eq!(VirtualServer::kind(&()), "VirtualServer");
        assert_eq!(
            TLSRouteV1Alpha2::api_version(&()),
            "gateway.networking.k8s.io/v1alpha2"
        );
        assert_eq!(TLSRouteV1Alpha2::kind(&()), "TLSRoute");
        assert_eq!(TLSRouteV1Alpha2::plural(&()), "tlsroutes");
    }

    #[test]
    fn reads_external_dns_objects() {
        let v = serde_json::json!({
            "apiVersion": "externaldns.k8s.io/v1alpha1",
            "kind": "DNSEndpoint",
            "metadata": {"name": "x", "namespace": "y"},
            "spec": {"endpoints": [{"dnsName": "a.example.com", "recordType": "A",
                                    "targets": ["192.0.2.1"], "recordTTL": 180,
                                    "providerSpecific": [{"name": "p", "value": "v"}]}]},
            "status": {"observedGeneration": 3}
        });
        let d: DNSEndpoint = serde_json::from_value(v).unwrap();
        assert_eq!(d.spec.endpoints[0].record_ttl, Some(180));
        assert_eq!(d.spec.endpoints[0].targets, vec!["192.0.2.1"]);
        assert_eq!(d.status.unwrap().observed_generation, Some(3));
    }
}
