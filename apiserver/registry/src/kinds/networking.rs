//! Services and their endpoints, Ingresses and NetworkPolicies.

use serde_json::{Value, json};

use super::print::{
    age_cell, age_column, col, int, join_or_none, name_cell, name_column, reference,
    selector_string, text,
};
use super::{Allocation, NameRule, Printer, Strategy};
use shoal_machinery::error::{Cause, Causes};
use shoal_machinery::meta::{default_key, str_at};

/// A new Service's status.
fn prepare_service(obj: &mut Value) {
    obj["status"] = json!({"loadBalancer": {}});
}

/// Fills a Service's defaults.
fn default_service(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "type", json!("ClusterIP"));
        default_key(s, "sessionAffinity", json!("None"));
        default_key(s, "internalTrafficPolicy", json!("Cluster"));
        default_key(s, "ipFamilies", json!(["IPv4"]));
        default_key(s, "ipFamilyPolicy", json!("SingleStack"));
        if matches!(
            s.get("type").and_then(Value::as_str),
            Some("NodePort" | "LoadBalancer")
        ) {
            default_key(s, "externalTrafficPolicy", json!("Cluster"));
        }
        if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                default_key(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    default_key(p, "targetPort", port);
                }
            }
        }
    }
}

/// The checks of a Service.
fn validate_service(obj: &Value, c: &mut Causes) {
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut seen: Vec<(i64, &str)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if seen.contains(&(port, protocol)) {
            c.0.push(Cause {
                kind: "FieldValueDuplicate",
                field: format!("spec.ports[{i}]"),
                message: format!("Duplicate value: core.ServicePort{{Name:\"{}\", Protocol:\"{protocol}\", Port:{port}}}", p.get("name").and_then(Value::as_str).unwrap_or_default()),
            });
        }
        seen.push((port, protocol));
        if let Some(name) = p.get("name").and_then(Value::as_str) {
            if names.contains(&name) {
                c.0.push(Cause {
                    kind: "FieldValueDuplicate",
                    field: format!("spec.ports[{i}].name"),
                    message: format!("Duplicate value: \"{name}\""),
                });
            }
            names.push(name);
        } else if ports.len() > 1 {
            c.required(format!("spec.ports[{i}].name"), "");
        }
        if !(1..=65535).contains(&port) {
            c.invalid(
                format!("spec.ports[{i}].port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            );
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64)
            && np != 0
            && !(30000..=32767).contains(&np)
        {
            c.invalid(
                format!("spec.ports[{i}].nodePort"),
                &p["nodePort"],
                "provided port is not in the valid range. The range of valid ports is 30000-32767",
            );
        }
    }
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        c.0.push(Cause { kind: "FieldValueNotSupported", field: "spec.type".into(), message: format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"") });
    }
}

/// The columns `kubectl get` shows for Services.
pub fn service_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Type", "string", 0, "The type of the service."),
        col("Cluster-IP", "string", 0, "The cluster IP of the service."),
        col(
            "External-IP",
            "string",
            0,
            "The external IP of the service.",
        ),
        col("Port(s)", "string", 0, "The ports of the service."),
        age_column(),
        col("Selector", "string", 1, "The selector of the service."),
    ]
}

/// A row of [`service_columns`] for `o`.
pub fn service_cells(o: &Value) -> Vec<Value> {
    let name = name_cell(o);
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let proto = str_at(p, "/protocol").unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(n) => format!("{}:{n}/{proto}", int(p, "/port")),
                None => format!("{}/{proto}", int(p, "/port")),
            }
        })
        .collect();
    let ty = str_at(o, "/spec/type").unwrap_or("ClusterIP");
    // As kubectl prints it: the load balancer's addresses and the
    // external IPs; an ExternalName Service's name.
    let mut external: Vec<String> = Vec::new();
    if ty == "LoadBalancer" {
        external.extend(
            o.pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| str_at(i, "/ip").or(str_at(i, "/hostname")))
                .map(String::from),
        );
    }
    external.extend(
        o.pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from),
    );
    let external = match ty {
        "ExternalName" => str_at(o, "/spec/externalName")
            .unwrap_or("<none>")
            .to_string(),
        _ if !external.is_empty() => external.join(","),
        "LoadBalancer" => "<pending>".to_string(),
        _ => "<none>".to_string(),
    };
    vec![
        name,
        text(ty.into()),
        text(str_at(o, "/spec/clusterIP").unwrap_or("<none>").into()),
        text(external),
        text(join_or_none(ports)),
        age_cell(o),
        text(selector_string(o.pointer("/spec/selector"))),
    ]
}

/// Services.
static SERVICE: Strategy = Strategy {
    allocation: Allocation::ServiceAddresses,
    prepare: prepare_service,
    defaults: default_service,
    validate: validate_service,
    printer: Printer {
        columns: service_columns,
        cells: service_cells,
    },
    name_rule: NameRule::Label,
    field_labels: &["spec.clusterIP", "spec.type"],
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for Endpointss.
pub fn endpoints_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Endpoints", "string", 0, "Endpoints of the service."),
        age_column(),
    ]
}

/// A row of [`endpoints_columns`] for `o`.
pub fn endpoints_cells(o: &Value) -> Vec<Value> {
    let name = name_cell(o);
    let age = age_cell(o);
    let mut eps = Vec::new();
    for subset in o
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let ports: Vec<i64> = subset
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| int(p, "/port"))
            .collect();
        for a in subset
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let ip = str_at(&a, "/ip").unwrap_or_default().to_string();
            if ports.is_empty() {
                eps.push(ip.clone())
            } else {
                eps.extend(ports.iter().map(|p| format!("{ip}:{p}")))
            }
        }
    }
    let shown = if eps.len() > 3 {
        format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
    } else {
        join_or_none(eps)
    };
    vec![name, text(shown), age]
}

/// Endpointss.
static ENDPOINTS: Strategy = Strategy {
    printer: Printer {
        columns: endpoints_columns,
        cells: endpoints_cells,
    },
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for EndpointSlices.
pub fn endpoint_slice_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "AddressType",
            "string",
            0,
            "Type of address held by the slice.",
        ),
        col("Ports", "string", 0, "The ports of the slice."),
        col(
            "Endpoints",
            "string",
            0,
            "The addresses of the slice's endpoints.",
        ),
        age_column(),
    ]
}

/// A row of [`endpoint_slice_columns`] for `o`.
pub fn endpoint_slice_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            p.get("port")
                .and_then(Value::as_i64)
                .map_or_else(|| "<unset>".to_string(), |n| n.to_string())
        })
        .collect();
    let addresses: Vec<String> = o
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
        })
        .collect();
    let shown = if addresses.len() > 3 {
        format!(
            "{} + {} more...",
            addresses[..3].join(","),
            addresses.len() - 3
        )
    } else {
        join_or_none(addresses)
    };
    vec![
        name_cell(o),
        text(str_at(o, "/addressType").unwrap_or_default().into()),
        text(if ports.is_empty() {
            "<unset>".into()
        } else {
            ports.join(",")
        }),
        text(shown),
        age_cell(o),
    ]
}

/// EndpointSlices.
static ENDPOINT_SLICE: Strategy = Strategy {
    printer: Printer {
        columns: endpoint_slice_columns,
        cells: endpoint_slice_cells,
    },
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for Ingresss.
pub fn ingress_columns() -> Vec<Value> {
    let name = name_column();
    vec![
        name,
        col("Class", "string", 0, "The name of the IngressClass."),
        col(
            "Hosts",
            "string",
            0,
            "Hosts that incoming requests are matched against.",
        ),
        col(
            "Address",
            "string",
            0,
            "Address is a list of IPs of the load balancer.",
        ),
        col("Ports", "string", 0, "Ports of the load balancer."),
        age_column(),
    ]
}

/// A row of [`ingress_columns`] for `o`.
pub fn ingress_cells(o: &Value) -> Vec<Value> {
    let hosts: Vec<String> = o
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| str_at(r, "/host").map(String::from))
        .collect();
    let addresses: Vec<String> = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            str_at(i, "/ip")
                .or(str_at(i, "/hostname"))
                .map(String::from)
        })
        .collect();
    let tls = o
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    vec![
        name_cell(o),
        text(
            str_at(o, "/spec/ingressClassName")
                .unwrap_or("<none>")
                .into(),
        ),
        text(if hosts.is_empty() {
            "*".into()
        } else {
            hosts.join(",")
        }),
        text(addresses.join(",")),
        text(if tls { "80, 443" } else { "80" }.into()),
        age_cell(o),
    ]
}

/// Ingresss.
static INGRESS: Strategy = Strategy {
    printer: Printer {
        columns: ingress_columns,
        cells: ingress_cells,
    },
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for IngressClasss.
pub fn ingress_class_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "Controller",
            "string",
            0,
            "The controller that implements the class.",
        ),
        col("Parameters", "string", 0, "Parameters of the controller."),
        age_column(),
    ]
}

/// A row of [`ingress_class_columns`] for `o`.
pub fn ingress_class_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        text(str_at(o, "/spec/controller").unwrap_or_default().into()),
        text(match str_at(o, "/spec/parameters/name") {
            Some(_) => reference(o, "/spec/parameters"),
            None => "<none>".into(),
        }),
        age_cell(o),
    ]
}

/// IngressClasss.
static INGRESS_CLASS: Strategy = Strategy {
    printer: Printer {
        columns: ingress_class_columns,
        cells: ingress_class_cells,
    },
    ..Strategy::GENERIC
};

/// The checks of a NetworkPolicy.
fn validate_network_policy(obj: &Value, c: &mut Causes) {
    for dir in ["ingress", "egress"] {
        let peers_key = if dir == "ingress" { "from" } else { "to" };
        let rules = obj
            .pointer(&format!("/spec/{dir}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            let peers = rule
                .get(peers_key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (j, peer) in peers.iter().enumerate() {
                let Some(block) = peer.get("ipBlock") else {
                    continue;
                };
                let at = format!("spec.{dir}[{i}].{peers_key}[{j}].ipBlock");
                let cidr = block
                    .get("cidr")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let Some(net) = parse_cidr(cidr) else {
                    c.invalid(
                        format!("{at}.cidr"),
                        &block["cidr"],
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    );
                    continue;
                };
                for (k, e) in block
                    .get("except")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    match e.as_str().and_then(parse_cidr) {
                        None => c.invalid(
                            format!("{at}.except[{k}]"),
                            e,
                            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                        ),
                        Some(ex) if !strict_subset(ex, net) => c.invalid(
                            format!("{at}.except[{k}]"),
                            e,
                            "must be a strict subset of `cidr`",
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

/// The columns `kubectl get` shows for NetworkPolicys.
pub fn network_policy_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "Pod-Selector",
            "string",
            0,
            "The pods the policy applies to.",
        ),
        age_column(),
    ]
}

/// A row of [`network_policy_columns`] for `o`.
pub fn network_policy_cells(o: &Value) -> Vec<Value> {
    let sel = selector_string(o.pointer("/spec/podSelector"));
    vec![
        name_cell(o),
        text(if sel == "<none>" {
            "<none>".into()
        } else {
            sel
        }),
        age_cell(o),
    ]
}

/// NetworkPolicys.
static NETWORK_POLICY: Strategy = Strategy {
    validate: validate_network_policy,
    printer: Printer {
        columns: network_policy_columns,
        cells: network_policy_cells,
    },
    ..Strategy::GENERIC
};

/// An IPv4 or IPv6 CIDR as (address bits, prefix length, IPv6).
fn parse_cidr(s: &str) -> Option<(u128, u32, bool)> {
    let (addr, len) = s.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) if len <= 32 => Some((u128::from(u32::from(a)), len, false)),
        std::net::IpAddr::V6(a) if len <= 128 => Some((u128::from(a), len, true)),
        _ => None,
    }
}

/// Whether `inner` is a strict subset of `outer`.
fn strict_subset(inner: (u128, u32, bool), outer: (u128, u32, bool)) -> bool {
    let bits = if outer.2 { 128 } else { 32 };
    if inner.2 != outer.2 || inner.1 <= outer.1 {
        return false;
    }
    let shift = bits - outer.1;
    shift >= 128 || (inner.0 >> shift) == (outer.0 >> shift)
}

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("Service", &SERVICE),
    ("Endpoints", &ENDPOINTS),
    ("EndpointSlice", &ENDPOINT_SLICE),
    ("Ingress", &INGRESS),
    ("IngressClass", &INGRESS_CLASS),
    ("NetworkPolicy", &NETWORK_POLICY),
];
