//! The Helm chart (`charts/wasmplug`) and the install manifests (`deploy/`), checked with the real
//! Helm v3 binary: lint, golden renderings for the defaults and each option, values refused by
//! values.schema.json, the hardening of the pods, RBAC that grants exactly the API calls the
//! controller makes, and the examples accepted by the CRD's rules and the plugins' schemas.
//!
//! Helm comes from `HELM_BIN`, or `.tools/helm/helm` in the workspace (`make helm-tools`).
//! Re-bless the golden files with `BLESS=1 cargo test -p wasmplug-controller --test chart`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use wasmplug_controller::WasmPlugin;

const RELEASE: &str = "wasmplug";
const NAMESPACE: &str = "wasmplug-system";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn chart() -> PathBuf {
    root().join("charts/wasmplug")
}

fn helm() -> PathBuf {
    let path = match std::env::var_os("HELM_BIN") {
        Some(p) => PathBuf::from(p),
        None => root().join(".tools/helm/helm"),
    };
    assert!(
        path.is_file(),
        "helm not found at {}: run `make helm-tools` (installs Helm v3 into .tools/helm/) or set HELM_BIN",
        path.display()
    );
    path
}

/// Runs helm with `args`; returns (success, stdout, stderr).
fn run_helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm()).args(args).current_dir(root()).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `helm template` of the chart with extra arguments (values files, --set); panics on failure.
fn template(extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", RELEASE, chart.to_str().unwrap(), "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run_helm(&args);
    assert!(ok, "helm {args:?} failed:\n{stderr}");
    stdout
}

fn values_file(option: &str) -> String {
    chart().join("tests/values").join(format!("{option}.yaml")).display().to_string()
}

fn render(option: Option<&str>) -> String {
    match option {
        None => template(&[]),
        Some(o) => template(&["-f", &values_file(o)]),
    }
}

fn docs(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

/// Compares with charts/wasmplug/tests/golden/<name>.yaml, or writes it when BLESS is set.
fn golden(name: &str, text: &str) {
    let path = chart().join("tests/golden").join(format!("{name}.yaml"));
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} is missing: run with BLESS=1", path.display()));
    if want != text {
        let line = want.lines().zip(text.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{} differs from the rendering (first at line {}): check the change, then re-bless with BLESS=1\n\
             want: {:?}\ngot:  {:?}",
            path.display(),
            line + 1,
            want.lines().nth(line),
            text.lines().nth(line)
        );
    }
}

const OPTIONS: [&str; 9] = [
    "gateway",
    "service-monitor",
    "network-policy",
    "pdb",
    "leader-election",
    "watch-namespace",
    "persistence",
    "tls-secret",
    "insecure-plaintext",
];

#[test]
fn lint_strict_with_defaults_and_with_every_option() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let (ok, out, err) = run_helm(&["lint", "--strict", chart]);
    assert!(ok, "helm lint --strict failed:\n{out}{err}");
    let all = values_file("all");
    let (ok, out, err) = run_helm(&["lint", "--strict", chart, "-f", &all]);
    assert!(ok, "helm lint --strict -f all.yaml failed:\n{out}{err}");
    for option in OPTIONS {
        let (ok, out, err) = run_helm(&["lint", "--strict", chart, "-f", &values_file(option)]);
        assert!(ok, "helm lint --strict -f {option}.yaml failed:\n{out}{err}");
    }
}

#[test]
fn golden_renderings() {
    golden("default", &render(None));
    for option in OPTIONS {
        golden(option, &render(Some(option)));
    }
    golden("all", &render(Some("all")));
}

#[test]
fn each_option_adds_what_it_is_for() {
    let base = docs(&render(None));
    let kinds = |d: &[Value]| d.iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        kinds(&base),
        ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]
            .map(String::from)
            .into(),
    );
    // (kind, name) pairs, so that a second Role counts.
    let objects = |d: &[Value]| {
        d.iter()
            .map(|d| (d["kind"].as_str().unwrap().to_string(), d["metadata"]["name"].as_str().unwrap().to_string()))
            .collect::<BTreeSet<_>>()
    };
    let added = |option: &str| {
        let d = docs(&render(Some(option)));
        let mut kinds: Vec<String> = objects(&d).difference(&objects(&base)).map(|(k, _)| k.clone()).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    assert_eq!(added("gateway"), ["ConfigMap", "Deployment", "Service"], "the gateway's");
    assert_eq!(of_kind(&docs(&render(Some("gateway"))), "Deployment").len(), 2);
    assert_eq!(added("service-monitor"), ["ServiceMonitor"]);
    assert_eq!(added("network-policy"), ["NetworkPolicy"]);
    assert_eq!(added("pdb"), ["PodDisruptionBudget"]);
    assert_eq!(added("leader-election"), ["Role", "RoleBinding"]);
    assert_eq!(added("persistence"), ["PersistentVolumeClaim"]);
    assert_eq!(added("watch-namespace"), ["Role", "RoleBinding"]);

    let sm = docs(&render(Some("service-monitor")));
    let sm = one(&sm, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");

    let pdb = docs(&render(Some("pdb")));
    let pdb = one(&pdb, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "a single replica can still be drained");

    let p = docs(&render(Some("persistence")));
    let claim = one(&p, "PersistentVolumeClaim");
    let volumes = &one(&p, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["persistentVolumeClaim"]["claimName"], claim["metadata"]["name"]);
    assert_eq!(claim["spec"]["storageClassName"], "standard");
}

#[test]
fn service_has_named_ports_and_the_deployment_wires_the_controller_flags() {
    let d = docs(&render(None));
    let svc = one(&d, "Service");
    let ports: Vec<(String, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["port"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports, [("metrics".into(), 8080), ("modules".into(), 8081), ("xds".into(), 18000)]);

    let c = &one(&d, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/wasmplug/wasmplug-controller:0.1.0");
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(
        args,
        [
            "--cache-dir=/var/cache/wasmplug",
            "--metrics-listen=0.0.0.0:8080",
            "--modules-listen=0.0.0.0:8081",
            "--modules-url=https://wasmplug.wasmplug-system.svc:8081",
            "--xds-listen=0.0.0.0:18000",
            "--concurrency=4",
            "--log-format=json",
            "--preflight-memory-mib=64",
            "--preflight-timeout-ms=1000",
            "--tls-ca-secret=wasmplug-ca",
            "--tls-server-name=wasmplug.wasmplug-system.svc",
            "--tls-server-name=wasmplug.wasmplug-system.svc.cluster.local",
            "--tls-server-name=wasmplug.wasmplug-system",
            "--tls-server-name=wasmplug",
        ]
    );
    let off = docs(&template(&["--set", "controller.preflight.enabled=false"]));
    let off_args = &one(&off, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
    let off_args: Vec<&str> = off_args.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(off_args.contains(&"--no-preflight"), "{off_args:?}");
    assert!(!off_args.iter().any(|a| a.starts_with("--preflight-")), "{off_args:?}");
    assert_eq!(
        c["env"],
        json!([
            {"name": "RUST_LOG", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ])
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");

    let le = docs(&render(Some("leader-election")));
    let c = &one(&le, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&"--leader-elect") && args.contains(&"--leader-elect-namespace=wasmplug-system"), "{args:?}");
    let wn = docs(&render(Some("watch-namespace")));
    let c = &one(&wn, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert!(c["args"].as_array().unwrap().contains(&json!("--watch-namespace=gateways")), "{}", c["args"]);
}

/// Every flag the chart passes (defaults and every option on) is one the controller binary takes,
/// with a value it accepts: parsed by the real binary (in standalone mode on an empty directory,
/// which returns after parsing).
#[test]
fn the_controller_binary_accepts_the_charts_flags() {
    for option in [None, Some("all")] {
        let d = docs(&render(option));
        let controller = of_kind(&d, "Deployment").into_iter().find(|d| d["metadata"]["name"] == "wasmplug").unwrap();
        let c = &controller["spec"]["template"]["spec"]["containers"][0];
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let args: Vec<String> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .map(|a| {
                if a.starts_with("--cache-dir=") {
                    format!("--cache-dir={}", dir.path().join("cache").display())
                } else {
                    a
                }
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_wasmplug-controller"))
            .args(&args)
            .arg("--manifests")
            .arg(&manifests)
            .arg("--output")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{option:?}: the controller refuses the chart's flags {args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn more_than_one_replica_needs_leader_election() {
    let chart = chart();
    let (ok, _, err) = run_helm(&["template", RELEASE, chart.to_str().unwrap(), "--set", "replicaCount=2"]);
    assert!(!ok, "two replicas without leader election must be refused");
    assert!(err.contains("leaderElection.enabled"), "{err}");
}

/// Values the schema refuses, and the field the error must name.
#[test]
fn wrong_values_are_rejected_by_the_schema() {
    let cases: &[(&str, &str)] = &[
        ("replicaCount=two", "replicaCount"),
        ("replicaCount=-1", "replicaCount"),
        ("bogus=1", "bogus"),
        ("controller.logFormat=xml", "controller.logFormat"),
        ("controller.concurrency=0", "controller.concurrency"),
        ("controller.unknown=1", "unknown"),
        ("service.ports.xds=-1", "service.ports.xds"),
        ("service.ports.metrics=70000", "service.ports.metrics"),
        ("service.type=Internal", "service.type"),
        ("image.pullPolicy=Sometimes", "image.pullPolicy"),
        ("leaderElection.enabled=yes", "leaderElection.enabled"),
        ("gateway.enabled=1", "gateway.enabled"),
        ("gateway.listenerPort=0", "gateway.listenerPort"),
        ("gateway.logLevel=loud", "gateway.logLevel"),
        ("networkPolicy.apiServer.ports[0]=0", "networkPolicy.apiServer.ports.0"),
        ("networkPolicy.registries.cidrs[0]=anywhere", "networkPolicy.registries.cidrs.0"),
        ("persistence.accessModes[0]=RWO", "persistence.accessModes.0"),
        ("resources.limits.memory=lots", "resources.limits.memory"),
        ("metrics.serviceMonitor.interval=often", "metrics.serviceMonitor.interval"),
    ];
    let chart = chart();
    for (set, field) in cases {
        let (ok, _, err) = run_helm(&["template", RELEASE, chart.to_str().unwrap(), "--set", set]);
        assert!(!ok, "--set {set} was accepted");
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "--set {set}: not refused by the schema:\n{err}"
        );
        assert!(err.contains(field), "--set {set}: the error does not name {field}:\n{err}");
    }
    // The values files of the tests are all valid.
    for option in OPTIONS.iter().chain(&["all"]) {
        template(&["-f", &values_file(option)]);
    }
}

fn assert_hardened(pod: &Value, writable: &[&str]) {
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "{psc}");
    assert_eq!(psc["runAsUser"], 65532, "{psc}");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{psc}");
    for c in pod["containers"].as_array().unwrap() {
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{sc}");
        assert_eq!(sc["runAsUser"], 65532, "{sc}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
        assert_eq!(sc["privileged"], false, "{sc}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{sc}");
        assert!(sc["capabilities"]["add"].is_null(), "{sc}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{sc}");
        for kind in ["requests", "limits"] {
            for res in ["cpu", "memory"] {
                assert!(
                    c["resources"][kind][res].is_string(),
                    "{} {kind}.{res} missing: {}",
                    c["name"],
                    c["resources"]
                );
            }
        }
        let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        let rw: Vec<&str> =
            mounts.iter().filter(|m| m["readOnly"] != true).map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(rw, writable, "writable mounts of {}", c["name"]);
    }
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null() && pod["hostIPC"].is_null(), "{pod}");
    for v in pod["volumes"].as_array().unwrap() {
        assert!(v["hostPath"].is_null(), "{v}");
    }
}

#[test]
fn the_pods_are_hardened_and_only_the_cache_is_writable() {
    let d = docs(&render(None));
    let pod = &one(&d, "Deployment")["spec"]["template"]["spec"];
    assert_hardened(pod, &["cache"]);
    let c = &pod["containers"][0];
    assert_eq!(c["volumeMounts"], json!([{"name": "cache", "mountPath": "/var/cache/wasmplug"}]));
    assert_eq!(pod["volumes"], json!([{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}]));
    assert_eq!(c["resources"]["requests"], json!({"cpu": "50m", "memory": "64Mi"}));
    assert_eq!(c["resources"]["limits"], json!({"cpu": "500m", "memory": "256Mi"}));

    let g = docs(&render(Some("gateway")));
    let gateway = of_kind(&g, "Deployment").into_iter().find(|d| d["metadata"]["name"] == "wasmplug-gateway").unwrap();
    let pod = &gateway["spec"]["template"]["spec"];
    assert_hardened(pod, &[]);
    assert_eq!(pod["automountServiceAccountToken"], false, "the gateway needs no API access");
}

type Grant = (String, String, String);

fn grants(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    let s = |x: &Value| x.as_str().unwrap().to_string();
                    out.insert((s(g), s(r), s(v)));
                }
            }
        }
    }
    out
}

/// Every API call the controller makes: (API group, resource, verb). `controller/tests/rbac.rs`
/// records the calls of the running controller against the same list; this one keeps the
/// chart's templates (ClusterRole and Role variants alike) to it.
const CONTROLLER_CALLS: &[(&str, &str, &[&str])] = &[
    // Its own resources: list/watch, the finalizer (a JSON patch), status (server-side apply).
    ("wasmplug.io", "wasmplugins", &["list", "watch", "patch"]),
    ("wasmplug.io", "wasmplugins/status", &["patch"]),
    // blockOwnerDeletion on the rendered objects' owner references.
    ("wasmplug.io", "wasmplugins/finalizers", &["update"]),
    // Image pull secrets, read by name in the plugin's namespace (never listed or watched).
    ("", "secrets", &["get"]),
    ("events.k8s.io", "events", &["create", "patch"]),
    // The rendered Higress and Istio objects: server-side apply, read back, cleanup.
    ("extensions.higress.io", "wasmplugins", &["get", "patch", "delete"]),
    ("extensions.istio.io", "wasmplugins", &["get", "patch", "delete"]),
];

fn expected(calls: &[(&str, &str, &[&str])]) -> BTreeSet<Grant> {
    calls
        .iter()
        .flat_map(|(g, r, verbs)| verbs.iter().map(move |v| (g.to_string(), r.to_string(), v.to_string())))
        .collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn binding_subject_and_role(binding: &Value, role: &Value) {
    assert_eq!(binding["roleRef"]["kind"], role["kind"]);
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "wasmplug", "namespace": NAMESPACE}]),
        "{binding}"
    );
}

#[test]
fn cluster_role_grants_exactly_the_controller_calls() {
    let d = docs(&render(None));
    let role = one(&d, "ClusterRole");
    assert_eq!(grants(role), expected(CONTROLLER_CALLS));
    for rule in role["rules"].as_array().unwrap() {
        assert!(rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null(), "{rule}");
    }
    binding_subject_and_role(one(&d, "ClusterRoleBinding"), role);
    let roles: Vec<&Value> = of_kind(&d, "Role");
    assert_eq!(roles.len(), 1, "only the managed CA's Role without leader election");
    assert_eq!(roles[0]["metadata"]["name"], "wasmplug-tls");
    let sa = one(&d, "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "wasmplug");
    let pod = &one(&d, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "wasmplug");
}

#[test]
fn watch_namespace_uses_a_role_in_that_namespace() {
    let d = docs(&render(Some("watch-namespace")));
    assert!(of_kind(&d, "ClusterRole").is_empty() && of_kind(&d, "ClusterRoleBinding").is_empty());
    let role = named(&d, "Role", "wasmplug");
    assert_eq!(role["metadata"]["namespace"], "gateways");
    assert_eq!(grants(role), expected(CONTROLLER_CALLS));
    let binding = named(&d, "RoleBinding", "wasmplug");
    assert_eq!(binding["metadata"]["namespace"], "gateways");
    binding_subject_and_role(binding, role);
}

#[test]
fn the_leases_role_appears_only_with_leader_election() {
    let d = docs(&render(Some("leader-election")));
    assert_eq!(grants(one(&d, "ClusterRole")), expected(CONTROLLER_CALLS));
    let role = named(&d, "Role", "wasmplug-leader-election");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(grants(role), expected(&[("coordination.k8s.io", "leases", &["get", "create", "update"])]));
    for rule in role["rules"].as_array().unwrap() {
        if rule["verbs"] != json!(["create"]) {
            assert_eq!(rule["resourceNames"], json!(["wasmplug-controller"]), "{rule}");
        }
    }
    binding_subject_and_role(named(&d, "RoleBinding", "wasmplug-leader-election"), role);

    for option in OPTIONS.iter().filter(|o| **o != "leader-election") {
        let d = docs(&render(Some(option)));
        for role in of_kind(&d, "Role") {
            assert!(!grants(role).iter().any(|(g, _, _)| g == "coordination.k8s.io"), "{option}: {role}");
        }
    }
}

#[test]
fn network_policy_denies_all_but_what_the_controller_needs() {
    let d = docs(&render(Some("network-policy")));
    let np = one(&d, "NetworkPolicy");
    let spec = &np["spec"];
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"], "controller");
    let ingress = spec["ingress"].as_array().unwrap();
    let ports = |r: &Value| r["ports"].as_array().unwrap().iter().map(|p| p["port"].clone()).collect::<Vec<_>>();
    assert_eq!(ingress.len(), 2);
    assert_eq!(ports(&ingress[0]), [json!("metrics")]);
    assert_eq!(ingress[0]["from"], json!([{"podSelector": {}}]), "metrics from the release namespace");
    assert_eq!(ports(&ingress[1]), [json!("modules"), json!("xds")]);
    assert_eq!(ingress[1]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"], "gateway");
    assert_eq!(ingress[1]["from"][1]["podSelector"]["matchLabels"]["wasmplug.io/gateway"], "true");

    let egress = spec["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 3);
    assert_eq!(ports(&egress[0]), [json!(53), json!(53)]);
    assert_eq!(ports(&egress[1]), [json!(443), json!(6443)]);
    assert_eq!(egress[1]["to"], json!([{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "172.18.0.2/32"}}]));
    assert_eq!(ports(&egress[2]), [json!(443)]);
    assert_eq!(egress[2]["to"], json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}]));
}

#[test]
fn the_gateway_bootstrap_connects_to_the_controller() {
    let d = docs(&render(Some("gateway")));
    let cm = one(&d, "ConfigMap");
    let text = cm["data"]["envoy.yaml"].as_str().unwrap();
    let b: Value = serde_saphyr::from_str(text).unwrap();
    assert_eq!(b["node"]["cluster"], "wasmplug-gateway");
    let gateway = of_kind(&d, "Deployment").into_iter().find(|d| d["metadata"]["name"] == "wasmplug-gateway").unwrap();
    let pod_labels = &gateway["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&b["node"]["metadata"]["LABELS"], pod_labels, "LABELS are the pod's labels");
    assert_eq!(pod_labels["team"], "edge");
    assert_eq!(pod_labels["wasmplug.io/gateway"], "true");
    let ads = &b["dynamic_resources"]["ads_config"];
    assert_eq!(ads["api_type"], "GRPC");
    assert_eq!(ads["transport_api_version"], "V3");
    assert_eq!(ads["grpc_services"][0]["envoy_grpc"]["cluster_name"], "wasmplug-xds");
    assert_eq!(b["dynamic_resources"]["lds_config"], json!({"ads": {}, "resource_api_version": "V3"}));
    assert_eq!(b["admin"]["address"]["socket_address"], json!({"address": "127.0.0.1", "port_value": 9901}));
    let clusters = b["static_resources"]["clusters"].as_array().unwrap();
    let cluster = |name: &str| clusters.iter().find(|c| c["name"] == name).unwrap();
    let addr = |c: &Value| {
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"].clone()
    };
    let xds = cluster("wasmplug-xds");
    assert_eq!(xds["type"], "STRICT_DNS");
    assert_eq!(addr(xds), json!({"address": "wasmplug.wasmplug-system.svc", "port_value": 18000}));
    let h2 = &xds["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert!(h2["explicit_http_config"]["http2_protocol_options"].is_object(), "{xds}");
    assert_eq!(b["node"]["metadata"]["WASMPLUG_LISTENER"], "0.0.0.0:10000");
    let upstream = cluster("upstream");
    assert_eq!(upstream["type"], "STRICT_DNS");
    assert_eq!(addr(upstream), json!({"address": "httpbin.default.svc.cluster.local", "port_value": 8000}));
    let modules = cluster("wasmplug-modules");
    assert_eq!(modules["type"], "LOGICAL_DNS");
    assert_eq!(addr(modules), json!({"address": "wasmplug.wasmplug-system.svc", "port_value": 8081}));
    // Both controller clusters over mutual TLS with the mounted Secret's files.
    for (c, alpn) in [(xds, "h2"), (modules, "http/1.1")] {
        let tls = &c["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "wasmplug.wasmplug-system.svc");
        let common = &tls["common_tls_context"];
        assert_eq!(common["alpn_protocols"], json!([alpn]));
        assert_eq!(common["tls_certificates"][0]["certificate_chain"]["filename"], "/etc/wasmplug/tls/tls.crt");
        assert_eq!(common["validation_context"]["trusted_ca"]["filename"], "/etc/wasmplug/tls/ca.crt");
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"],
            json!([{"san_type": "DNS", "matcher": {"exact": "wasmplug.wasmplug-system.svc"}}])
        );
    }
    let pod = &gateway["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][1], json!({"name": "tls", "secret": {"secretName": "wasmplug-gateway-tls"}}));
    assert_eq!(pod["containers"][0]["volumeMounts"][1]["mountPath"], "/etc/wasmplug/tls");
    let controller = named(&d, "Deployment", "wasmplug");
    let args = &controller["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array().unwrap().contains(&json!("--tls-gateway-secret=wasmplug-gateway-tls=wasmplug-gateway-*")),
        "the controller keeps the gateway's certificate, for its pods' node ids: {args}"
    );

    let c = &gateway["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "envoyproxy/envoy:v1.40.0");
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&"--service-node=$(POD_NAME)"), "{args:?}");
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(c["ports"][0]["containerPort"], 10000);
    let svc = of_kind(&d, "Service").into_iter().find(|s| s["metadata"]["name"] == "wasmplug-gateway").unwrap();
    assert_eq!(svc["spec"]["selector"], gateway["spec"]["selector"]["matchLabels"]);

    // Without gateway.upstream the served listener still has its "upstream" cluster (empty).
    let bare = docs(&template(&["--set", "gateway.enabled=true"]));
    let bare: Value = serde_saphyr::from_str(one(&bare, "ConfigMap")["data"]["envoy.yaml"].as_str().unwrap()).unwrap();
    let clusters = bare["static_resources"]["clusters"].as_array().unwrap();
    let upstream = clusters.iter().find(|c| c["name"] == "upstream").unwrap();
    assert_eq!(upstream["load_assignment"]["endpoints"], json!([]));

    // Envoy itself accepts the bootstrap, when it is installed (`make envoy`).
    let envoy = std::env::var_os("ENVOY_BIN").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/envoy"));
    if envoy.is_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("envoy.yaml");
        // The certificate files Envoy reads, where the test put them.
        let tls = dir.path().join("tls");
        wasmplug_testkit::certs::openssl_gateway_certificate(&tls, "wasmplug-gateway-0").unwrap();
        std::fs::write(&file, text.replace("/etc/wasmplug/tls", tls.to_str().unwrap())).unwrap();
        let out = Command::new(&envoy)
            .args(["--mode", "validate", "--service-node", "wasmplug-gateway-0", "-c"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "envoy refuses the bootstrap:\n{}", String::from_utf8_lossy(&out.stderr));
    } else {
        eprintln!("note: {} not found, the bootstrap was not checked by Envoy", envoy.display());
    }
}

#[test]
fn tls_modes_wire_the_certificates() {
    let args = |d: &[Value]| -> Vec<String> {
        named(d, "Deployment", "wasmplug")["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    // managed (the default): a Role for the CA and gateway Secrets only.
    let d = docs(&render(Some("gateway")));
    let role = named(&d, "Role", "wasmplug-tls");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(grants(role), expected(&[("", "secrets", &["create", "get", "update"])]));
    for rule in role["rules"].as_array().unwrap() {
        if rule["verbs"] != json!(["create"]) {
            assert_eq!(rule["resourceNames"], json!(["wasmplug-ca", "wasmplug-gateway-tls"]), "{rule}");
        }
    }
    binding_subject_and_role(named(&d, "RoleBinding", "wasmplug-tls"), role);

    // secret: the user's Secret mounted for --tls-dir, no Role, the gateway mounts its own Secret.
    let d = docs(&render(Some("tls-secret")));
    assert!(of_kind(&d, "Role").is_empty());
    let a = args(&d);
    assert!(a.contains(&"--tls-dir=/etc/wasmplug/tls".into()) && !a.iter().any(|a| a.starts_with("--tls-ca")), "{a:?}");
    let pod = &named(&d, "Deployment", "wasmplug")["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "tls", "secret": {"secretName": "wasmplug-controller-tls"}}))
    );
    let gw = &named(&d, "Deployment", "wasmplug-gateway")["spec"]["template"]["spec"];
    assert_eq!(gw["volumes"][1]["secret"]["secretName"], "edge-gateway-tls");

    // insecure-plaintext: said in the flags, plain URLs, no certificates anywhere.
    let d = docs(&render(Some("insecure-plaintext")));
    let a = args(&d);
    assert!(a.contains(&"--insecure-plaintext".into()), "{a:?}");
    assert!(a.contains(&"--modules-url=http://wasmplug.wasmplug-system.svc:8081".into()), "{a:?}");
    assert!(of_kind(&d, "Role").is_empty());
    let text = one(&d, "ConfigMap")["data"]["envoy.yaml"].as_str().unwrap();
    assert!(!text.contains("transport_socket"), "{text}");
    let gw = &named(&d, "Deployment", "wasmplug-gateway")["spec"]["template"]["spec"];
    assert_eq!(gw["volumes"].as_array().unwrap().len(), 1, "only the bootstrap");
    assert!(notes(&["--set", "tls.mode=insecure-plaintext"]).contains("WARNING"));

    // Refused: an unknown mode, and mode secret without its Secret.
    for set in [&["--set", "tls.mode=off"][..], &["--set", "tls.mode=secret"]] {
        let (ok, _, err) = run_helm(&[&["template", RELEASE, chart().to_str().unwrap()][..], set].concat());
        assert!(!ok && err.contains("tls"), "{set:?} accepted:\n{err}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// NOTES.txt rendered: `helm template` skips it, so a copy of the chart wraps it in a template
/// that renders it into a manifest.
fn notes(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("wasmplug");
    copy_dir(&chart(), &copy);
    let notes = std::fs::read_to_string(copy.join("templates/NOTES.txt")).unwrap();
    std::fs::remove_file(copy.join("templates/NOTES.txt")).unwrap();
    std::fs::write(copy.join("templates/_notes.tpl"), format!("{{{{- define \"notes\" }}}}{notes}{{{{- end }}}}\n"))
        .unwrap();
    std::fs::write(copy.join("templates/notes.yaml"), "notes: {{ include \"notes\" . | toJson }}\n").unwrap();
    let mut args = vec!["template", RELEASE, copy.to_str().unwrap(), "--namespace", NAMESPACE];
    args.extend_from_slice(&["--show-only", "templates/notes.yaml"]);
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run_helm(&args);
    assert!(ok, "rendering NOTES.txt failed:\n{stderr}");
    let doc: Value = serde_saphyr::from_str(&stdout).unwrap();
    doc["notes"].as_str().unwrap().to_string()
}

#[test]
fn notes_tell_what_to_do_next() {
    let text = notes(&[]);
    for want in [
        "kubectl get wasmplugins -A",
        "kind: WasmPlugin",
        "http://wasmplug.wasmplug-system.svc:8080/metrics",
        "wasmplug envoy-bootstrap --xds wasmplug.wasmplug-system.svc:18000 --node <gateway-name>",
        "all namespaces",
    ] {
        assert!(text.contains(want), "NOTES lack {want:?}:\n{text}");
    }
    let all = values_file("all");
    let text = notes(&["-f", &all]);
    for want in [
        "namespace gateways only",
        "ServiceMonitor wasmplug-system/wasmplug",
        "service/edge",
        "networkPolicy.gatewayFrom",
    ] {
        assert!(text.contains(want), "NOTES lack {want:?}:\n{text}");
    }
}

#[test]
fn chart_crd_and_install_manifest_are_current() {
    let crd = std::fs::read_to_string(root().join("deploy/crd.yaml")).unwrap();
    let chart_crd = std::fs::read_to_string(chart().join("crds/wasmplug.io_wasmplugins.yaml")).unwrap();
    assert!(crd == chart_crd, "charts/wasmplug/crds/ differs from deploy/crd.yaml: run `make generated`");

    let install = std::fs::read_to_string(root().join("deploy/install.yaml")).unwrap();
    let rendered = template(&["--include-crds"]);
    assert!(install.ends_with(&rendered), "deploy/install.yaml is stale: run `make generated`");
    let d = docs(&install);
    assert_eq!(d[0]["kind"], "Namespace");
    assert_eq!(d[0]["metadata"]["name"], NAMESPACE);
    assert_eq!(d[1]["kind"], "CustomResourceDefinition");
    for doc in &d {
        let meta = &doc["metadata"];
        assert!(meta["generateName"].is_null(), "{meta}");
        let annotations = meta["annotations"].as_object().cloned().unwrap_or_default();
        assert!(!annotations.keys().any(|k| k.starts_with("helm.sh/hook")), "no hooks: {meta}");
        let namespaced = !["Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"]
            .contains(&doc["kind"].as_str().unwrap());
        if namespaced {
            assert_eq!(meta["namespace"], NAMESPACE, "{meta}");
        }
    }

    let kustomization: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root().join("deploy/kustomization.yaml")).unwrap()).unwrap();
    assert_eq!(kustomization["resources"], json!(["install.yaml"]));
}

fn examples() -> Vec<(String, Value)> {
    let dir = root().join("deploy/examples");
    let k: Value = serde_saphyr::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    let listed: Vec<String> = k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().into()).collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, files, "deploy/examples/kustomization.yaml lists every example");
    listed
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(&f)).unwrap();
            let d = docs(&text);
            assert_eq!(d.len(), 1, "{f}: one object per file");
            (f, d.into_iter().next().unwrap())
        })
        .collect()
}

const PLUGINS: [&str; 7] =
    ["hello-world", "http-call", "request-block", "basic-auth", "key-auth", "custom-response", "transformer"];

/// The rules the API server checks with CEL (see `controller/src/crd.rs`).
fn check_cel_rules(file: &str, spec: &Value) {
    let url = spec["url"].as_str().unwrap();
    assert!(!url.is_empty() && url.len() <= 2048 && !url.chars().any(char::is_whitespace), "{file}: {url}");
    let scheme_ok =
        ["oci://", "https://", "http://", "file://"].iter().any(|s| url.starts_with(s) && url.len() > s.len());
    assert!(scheme_ok || !url.contains("://"), "{file}: {url}");
    if let Some(sha) = spec["sha256"].as_str() {
        assert!(
            sha.is_empty()
                || (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        );
    }
    for (i, rule) in spec["matchRules"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        let some = |k: &str| rule[k].as_array().is_some_and(|a| !a.is_empty());
        assert!(some("ingress") || some("domain") || some("service"), "{file}: matchRules[{i}] matches nothing");
    }
}

/// Fails on a field the CRD's schema does not know (the API server would prune it silently).
fn check_known_fields(file: &str, path: &str, value: &Value, schema: &Value) {
    match value {
        Value::Object(map) if schema["x-kubernetes-preserve-unknown-fields"] != true => {
            for (k, v) in map {
                let sub = if schema["properties"].is_object() {
                    &schema["properties"][k]
                } else {
                    &schema["additionalProperties"]
                };
                assert!(sub.is_object(), "{file}: {path}/{k} is not in the CRD's schema");
                check_known_fields(file, &format!("{path}/{k}"), v, sub);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_known_fields(file, &format!("{path}/{i}"), v, &schema["items"]);
            }
        }
        _ => {}
    }
}

#[test]
fn examples_are_valid_wasmplugins_for_every_sample_plugin() {
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(root().join("deploy/crd.yaml")).unwrap()).unwrap();
    let spec_schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert!(spec_schema["properties"]["url"].is_object(), "{spec_schema}");
    let examples = examples();
    let mut covered = BTreeSet::new();
    let mut targets = BTreeSet::new();
    for (file, doc) in &examples {
        assert_eq!(doc["apiVersion"], "wasmplug.io/v1alpha1", "{file}");
        assert_eq!(doc["kind"], "WasmPlugin", "{file}");
        let typed: Result<WasmPlugin, _> = serde_json::from_value(doc.clone());
        assert!(typed.is_ok(), "{file}: {typed:?}");
        check_cel_rules(file, &doc["spec"]);
        check_known_fields(file, "spec", &doc["spec"], spec_schema);
        let top: BTreeSet<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(top, ["apiVersion", "kind", "metadata", "spec"].into(), "{file}");
        let url = doc["spec"]["url"].as_str().unwrap();
        let plugin = url
            .strip_prefix("oci://ghcr.io/wasmplug/plugins/")
            .and_then(|r| r.strip_suffix(":0.1.0"))
            .unwrap_or_else(|| panic!("{file}: url {url}"));
        assert!(PLUGINS.contains(&plugin), "{file}: {plugin}");
        covered.insert(plugin.to_string());
        for t in doc["spec"]["targets"].as_array().unwrap() {
            targets.insert(t.as_str().unwrap().to_string());
        }
    }
    assert_eq!(covered, PLUGINS.map(String::from).into(), "one example per sample plugin");
    assert_eq!(targets, ["envoy", "higress", "istio"].map(String::from).into());
}

/// Each example's configs pass the schema embedded in the real module: the examples are run
/// through the controller's standalone mode with their url pointed at the locally built module.
#[test]
fn example_configs_pass_the_plugins_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let examples = examples();
    for (file, doc) in &examples {
        let mut doc = doc.clone();
        let url = doc["spec"]["url"].as_str().unwrap().to_string();
        let plugin = url.trim_start_matches("oci://ghcr.io/wasmplug/plugins/").trim_end_matches(":0.1.0");
        let module = wasmplug_testkit::wasm::plugin_module(plugin);
        doc["spec"]["url"] = json!(format!("file://{}", module.display()));
        doc["metadata"]["namespace"] = json!("examples");
        std::fs::write(manifests.join(file), serde_json::to_string(&doc).unwrap()).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wasmplug-controller"))
        .arg("--manifests")
        .arg(&manifests)
        .arg("--output")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "not every example is Ready:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for (_, doc) in &examples {
        let id = format!("examples/{}\tReady", doc["metadata"]["name"].as_str().unwrap());
        assert!(stdout.contains(&id), "{id} missing:\n{stdout}");
    }
}

/// The CRD as the chart, `deploy/crd.yaml` and `deploy/install.yaml` carry it, installed into a
/// real API server (`apiextensions-apiserver`, see controller/testenv), and every example created
/// there: accepted by the OpenAPI schema and the CEL rules, and stored without a field pruned.
#[tokio::test]
async fn the_api_server_accepts_the_crds_and_the_examples() {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

    let cluster = wasmplug_testenv::TestCluster::start().await.unwrap();
    for file in [
        chart().join("crds/wasmplug.io_wasmplugins.yaml"),
        root().join("deploy/crd.yaml"),
        root().join("deploy/install.yaml"),
    ] {
        let names = cluster.install_crds(&std::fs::read_to_string(&file).unwrap()).await.unwrap();
        assert_eq!(names, ["wasmplugins.wasmplug.io"], "{}", file.display());
    }
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("wasmplug.io", "v1alpha1", "WasmPlugin"));
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), "examples", &resource);
    for (file, doc) in examples() {
        let object: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let created = api.create(&PostParams::default(), &object).await;
        let created = created.unwrap_or_else(|e| panic!("{file} refused by the API server: {e}"));
        assert_eq!(created.data["spec"], doc["spec"], "{file}: the stored spec differs (pruned fields?)");
    }

    // The same rules refuse broken variants, so the acceptance above means something.
    let (_, hello) = examples().into_iter().find(|(f, _)| f == "hello-world.yaml").unwrap();
    let broken = [
        ("url", json!("ftp://example.com/x.wasm"), "url must be"),
        ("sha256", json!("ABC"), "sha256 must be"),
        ("matchRules", json!([{"config": {}}]), "at least one of ingress, domain or service"),
        ("phase", json!("LATE"), "spec.phase"),
    ];
    for (i, (field, value, message)) in broken.into_iter().enumerate() {
        let mut doc = hello.clone();
        doc["metadata"]["name"] = json!(format!("broken-{i}"));
        doc["spec"][field] = value;
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        let err = api.create(&PostParams::default(), &object).await.expect_err(field).to_string();
        assert!(err.contains(message), "spec.{field}: {err}");
    }
}
