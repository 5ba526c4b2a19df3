//! The processes the demo runs (the controller binary, Envoy) and their ports.

use super::*;

pub fn check_ports(ports: &[u16]) -> Result<()> {
    let busy: Vec<String> =
        ports.iter().filter(|p| TcpListener::bind(("127.0.0.1", **p)).is_err()).map(|p| p.to_string()).collect();
    if busy.is_empty() {
        Ok(())
    } else {
        Err(format!("port(s) {} on 127.0.0.1 are in use (another demo running?); the demo needs them", busy.join(", ")))
    }
}

/// The controller binary: next to this example's directory (target/<profile>/), built by cargo
/// when running under cargo (a no-op when it is current).
pub fn controller_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("WASMPLUG_CONTROLLER_BIN").filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe.parent().and_then(Path::parent).ok_or("cannot locate the target directory")?;
    let bin = profile_dir.join("wasmplug-controller");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = Command::new(cargo);
        // With this example, so that the binary shares its dependency features: no rebuild.
        let args = ["build", "-q", "-p", "wasmplug-controller", "--bin", "wasmplug-controller", "--example", "demo"];
        cmd.current_dir(root).args(args);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("cargo build -p wasmplug-controller failed".into());
        }
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} not found: run `cargo build -p wasmplug-controller`", bin.display()))
    }
}
/// Envoy's static config for the standalone mode: the rendered filters on one listener.
pub fn static_envoy(mut filters: Vec<Value>, port: u16, upstream: u16) -> Value {
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    let (modules_host, modules_port) = MODULES.split_once(':').unwrap_or(("127.0.0.1", "8081"));
    let cluster = |name: &str, host: &str, port: u64| {
        json!({
            "name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": { "cluster_name": name, "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                "address": { "socket_address": { "address": host, "port_value": port } } } }] }] }
        })
    };
    json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "listeners": [{
                "name": "wasmplug-gateway",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "wasmplug",
                        "route_config": { "virtual_hosts": [{ "name": "all", "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "upstream" } }] }] },
                        "http_filters": filters
                    }
                }] }]
            }],
            "clusters": [
                cluster("upstream", "127.0.0.1", u64::from(upstream)),
                cluster(wasmplug_envoy::bootstrap::MODULES_CLUSTER, modules_host, modules_port.parse().unwrap_or(8081)),
            ]
        }
    })
}

/// A child process, killed when dropped; its output goes to a log file.
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(what: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        cmd.spawn().map(Proc).map_err(|e| format!("cannot start {what}: {e}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running Envoy 1.40 whose listener `wasmplug-gateway` is up.
pub struct Envoy {
    pub child: Proc,
    pub log: PathBuf,
    pub admin_port: u16,
    pub port: u16,
}

impl Envoy {
    pub fn start(dir: &Path, config: &Value) -> Result<Envoy> {
        let bin = wasmplug_testkit::envoy::envoy_binary()?;
        let cfg = dir.join("envoy.json");
        let admin_file = dir.join("envoy.admin");
        let mut f = std::fs::File::create(&cfg).map_err(|e| e.to_string())?;
        f.write_all(serde_json::to_string_pretty(config).unwrap_or_default().as_bytes()).map_err(|e| e.to_string())?;
        let log = dir.join("envoy.log");
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&cfg)
            .args(["--concurrency", "1", "--use-dynamic-base-id", "-l", "info"])
            .args(["--file-flush-interval-msec", "50", "--drain-time-s", "2"])
            .arg("--log-path")
            .arg(&log)
            .arg("--admin-address-path")
            .arg(&admin_file);
        let mut child = Proc::spawn("envoy", cmd, &dir.join("envoy.stdio.log"))?;
        let deadline = Instant::now() + TIMEOUT;
        let mut admin_port = 0;
        loop {
            if let Ok(Some(status)) = child.0.try_wait() {
                return Err(format!("envoy exited ({status}); see {}", dir.join("envoy.stdio.log").display()));
            }
            if admin_port == 0
                && let Ok(text) = std::fs::read_to_string(&admin_file)
                && let Some(p) = text.trim().rsplit_once(':').and_then(|(_, p)| p.parse().ok())
            {
                admin_port = p;
            }
            if admin_port != 0
                && let Some(port) = listener_port(admin_port)
            {
                return Ok(Envoy { child, log, admin_port, port });
            }
            if Instant::now() > deadline {
                return Err(format!("Envoy's listener was not up after {TIMEOUT:?}; see {}", log.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The bound port of the listener `wasmplug-gateway`, once Envoy is LIVE.
pub fn listener_port(admin: u16) -> Option<u16> {
    if !client::get(admin, "/ready").is_ok_and(|r| r.text().contains("LIVE")) {
        return None;
    }
    let v: Value = serde_json::from_slice(&client::get(admin, "/listeners?format=json").ok()?.body).ok()?;
    v["listener_statuses"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "wasmplug-gateway")
        .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}
