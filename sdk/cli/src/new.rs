//! `wasmplug new <name>`: scaffold a plugin crate (config type, handler, a test through the
//! `wasmplug-host` harness, README with the config table).
//!
//! Inside a wasmplug workspace (a `Cargo.toml` with `[workspace]` that declares `wasmplug-sdk`
//! among its `[workspace.dependencies]`) the crate inherits the workspace's dependencies and is
//! added to its `members`. Elsewhere it is a standalone crate (its own `[workspace]`): path
//! dependencies on the SDK checkout this binary was built from (and that checkout's `Cargo.lock`,
//! so the same versions are used) when it exists, otherwise version dependencies.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// What `new` wrote.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub name: String,
    pub dir: PathBuf,
    /// The workspace manifest the crate was added to, if any.
    pub workspace: Option<PathBuf>,
    pub files: Vec<PathBuf>,
}

/// The wasmplug workspace enclosing `dir` (the directory holding its `Cargo.toml`).
pub fn enclosing_workspace(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| {
                t.contains("[workspace]") && t.contains("[workspace.dependencies]") && t.contains("wasmplug-sdk")
            })
        })
        .map(Path::to_path_buf)
}

/// The default parent directory: `<workspace>/plugins` inside a wasmplug workspace, else the
/// current directory.
pub fn default_parent() -> Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    Ok(enclosing_workspace(&cwd).map_or(cwd, |root| root.join("plugins")))
}

fn check_name(name: &str) -> Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !ok {
        bail!("invalid plugin name `{name}`: use lowercase letters, digits and single dashes, starting with a letter");
    }
    Ok(())
}

fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The SDK checkout this binary was built from, if it is still there.
fn sdk_checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().ok()?;
    root.join("sdk/build/Cargo.toml").is_file().then_some(root)
}

pub fn create(name: &str, parent: &Path) -> Result<Created> {
    check_name(name)?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let dir = parent.canonicalize()?.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let workspace = enclosing_workspace(parent);
    let manifest = match &workspace {
        Some(_) => workspace_manifest(name),
        None => standalone_manifest(name, sdk_checkout().as_deref()),
    };
    let fill = |t: &str| {
        t.replace("__NAME__", name).replace("__TYPE__", &type_name(name)).replace("__LIB__", &name.replace('-', "_"))
    };
    let files: Vec<(&str, String)> = vec![
        ("Cargo.toml", manifest),
        ("build.rs", fill(BUILD_RS)),
        ("src/config.rs", fill(CONFIG_RS)),
        ("src/lib.rs", fill(LIB_RS)),
        ("tests/plugin.rs", fill(TEST_RS)),
        ("README.md", fill(README_MD)),
        (".gitignore", "/target\n".to_string()),
    ];
    let mut written = Vec::new();
    for (rel, text) in files {
        if rel == ".gitignore" && workspace.is_some() {
            continue;
        }
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    let mut member_of = None;
    match &workspace {
        Some(root) => {
            let rel = dir.strip_prefix(root).unwrap_or(&dir).to_string_lossy().replace('\\', "/");
            let path = root.join("Cargo.toml");
            let text = std::fs::read_to_string(&path)?;
            let updated = add_member(&text, &rel)
                .with_context(|| format!("cannot find `members = [...]` in {}", path.display()))?;
            std::fs::write(&path, updated).with_context(|| format!("cannot write {}", path.display()))?;
            member_of = Some(path);
        }
        None => {
            if let Some(lock) = sdk_checkout().map(|r| r.join("Cargo.lock")).filter(|p| p.is_file()) {
                std::fs::copy(&lock, dir.join("Cargo.lock"))?;
                written.push(dir.join("Cargo.lock"));
            }
        }
    }
    Ok(Created { name: name.to_string(), dir, workspace: member_of, files: written })
}

/// `text` (a workspace manifest) with `member` appended to `[workspace] members`.
pub fn add_member(text: &str, member: &str) -> Option<String> {
    let start = text.find("members")?;
    let open = start + text[start..].find('[')?;
    let close = open + text[open..].find(']')?;
    let entry = format!("\"{member}\"");
    if text[open..close].contains(&entry) {
        return Some(text.to_string());
    }
    let before = text[..close].trim_end_matches([' ', '\t']);
    let sep = if before.trim_end().ends_with(',') || before.trim_end().ends_with('[') { "" } else { "," };
    let before = before.trim_end();
    Some(format!("{before}{sep}\n    {entry},\n{}", &text[close..]))
}

fn workspace_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
description = "Adds a configurable header to every request and answers 403 for a path prefix."
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmplug-sdk.workspace = true
serde.workspace = true
schemars.workspace = true

[build-dependencies]
wasmplug-sdk-build.workspace = true
serde.workspace = true
schemars.workspace = true

[dev-dependencies]
wasmplug-host.workspace = true
serde_json.workspace = true

[lints]
workspace = true
"#
    )
}

fn standalone_manifest(name: &str, checkout: Option<&Path>) -> String {
    let dep = |crate_name: &str, rel: &str| match checkout {
        Some(root) => format!("{crate_name} = {{ path = {:?} }}", root.join(rel).display().to_string()),
        None => format!("{crate_name} = \"{}\"", env!("CARGO_PKG_VERSION")),
    };
    format!(
        r#"[package]
name = "{name}"
description = "Adds a configurable header to every request and answers 403 for a path prefix."
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
{sdk}
serde = {{ version = "1", features = ["derive"] }}
schemars = "1.2"

[build-dependencies]
{build}
serde = {{ version = "1", features = ["derive"] }}
schemars = "1.2"

[dev-dependencies]
{host}
serde_json = "1"

# A crate of its own, not a member of an enclosing workspace.
[workspace]

# The module's profile (`cargo build --profile wasm --target wasm32-wasip1`): small,
# whole-program optimised, no unwinding.
[profile.wasm]
inherits = "release"
opt-level = "z"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#,
        sdk = dep("wasmplug-sdk", "sdk"),
        build = dep("wasmplug-sdk-build", "sdk/build"),
        host = dep("wasmplug-host", "sdk/host"),
    )
}

const BUILD_RS: &str = r#"// Writes the plugin metadata and the config's JSON Schema, which `wasmplug_sdk::plugin!` embeds.
#[allow(dead_code)]
mod config {
    include!("src/config.rs");
}

fn main() -> std::io::Result<()> {
    wasmplug_sdk_build::PluginInfo::new().phase("UNSPECIFIED_PHASE").priority(0).emit::<config::Config>()
}
"#;

const CONFIG_RS: &str = r#"// serde + schemars only: build.rs includes this file to generate the JSON Schema.
use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the __NAME__ plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Name of the header added to every forwarded request.
    #[serde(default = "default_header_name")]
    pub header_name: String,
    /// Value of that header.
    #[serde(default = "default_header_value")]
    pub header_value: String,
    /// Requests whose path starts with this prefix are answered with 403 instead of being forwarded.
    #[serde(default)]
    pub deny_path_prefix: Option<String>,
}

fn default_header_name() -> String {
    "x-__NAME__".to_string()
}

fn default_header_value() -> String {
    "hello".to_string()
}

impl Default for Config {
    fn default() -> Self {
        Self { header_name: default_header_name(), header_value: default_header_value(), deny_path_prefix: None }
    }
}
"#;

const LIB_RS: &str = r#"//! __NAME__: adds a configurable header to every request and answers 403 for a path prefix.

mod config;

use wasmplug_sdk::prelude::*;

pub use config::Config;

/// One value per request: per-request state is just fields.
#[derive(Default)]
pub struct __TYPE__;

impl HttpPlugin for __TYPE__ {
    type Config = Config;

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        if let Some(prefix) = config.deny_path_prefix.as_deref().filter(|p| !p.is_empty())
            && ctx.path().starts_with(prefix)
        {
            ctx.send_response(403, &[("content-type", "text/plain")], "forbidden by __NAME__");
            return Action::Pause;
        }
        ctx.set_request_header(&config.header_name, &config.header_value);
        Action::Continue
    }
}

wasmplug_sdk::plugin!(__TYPE__);
"#;

const TEST_RS: &str = r##"//! __NAME__ through the wasmplug-host harness: builds the module (wasm32-wasip1, `wasm` profile),
//! loads it with a configuration and runs requests through it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use wasmplug_host::{HttpResponse, Plugin, Request, Vm, VmOptions};

/// The module (`wasm` profile), built once per test process.
fn module() -> &'static PathBuf {
    static MODULE: OnceLock<PathBuf> = OnceLock::new();
    MODULE.get_or_init(|| {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--profile", "wasm", "--target", "wasm32-wasip1", "--message-format=json", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .output()
            .expect("cannot run cargo");
        assert!(out.status.success(), "wasm build failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "__LIB__")
            .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .find(|f| f.extension().is_some_and(|e| e == "wasm"))
            .expect("the build produced no .wasm module")
    })
}

fn vm(configuration: &str) -> Vm {
    Plugin::load("__NAME__", module()).unwrap().start(VmOptions::default().configuration(configuration)).unwrap()
}

fn upstream() -> HttpResponse {
    HttpResponse::new(200, "upstream ok").header("content-type", "text/plain")
}

#[test]
fn adds_the_default_header() {
    let ex = vm("{}").run(&Request::get("/anything"), &mut upstream()).unwrap();
    assert_eq!(ex.response.status, 200);
    assert_eq!(ex.upstream_request.unwrap().header("x-__NAME__"), Some("hello"));
}

#[test]
fn configured_header_and_denied_prefix() {
    let mut vm = vm(r#"{"headerName": "x-team", "headerValue": "edge", "denyPathPrefix": "/admin"}"#);
    let ex = vm.run(&Request::get("/api").header("x-team", "forged"), &mut upstream()).unwrap();
    assert_eq!(ex.upstream_request.unwrap().header("x-team"), Some("edge"));
    let denied = vm.run(&Request::get("/admin/users"), &mut upstream()).unwrap();
    assert_eq!((denied.response.status, denied.response.text().as_str()), (403, "forbidden by __NAME__"));
    assert!(denied.upstream_request.is_none(), "a denied request never reaches the upstream");
}

#[test]
fn invalid_configuration_is_refused() {
    let err = Plugin::load("__NAME__", module())
        .unwrap()
        .start(VmOptions::default().configuration(r#"{"headerNmae": "typo"}"#))
        .err()
        .expect("an unknown field must be refused");
    assert!(err.to_string().contains("headerNmae"), "{err}");
}
"##;

const README_MD: &str = r#"# __NAME__

Adds a configurable header to every request and answers `403` locally for a path prefix.

## Configuration

| Field | Type | Required / default | Description |
|---|---|---|---|
| `headerName` | string | default `"x-__NAME__"` | Name of the header added to every forwarded request. |
| `headerValue` | string | default `"hello"` | Value of that header. |
| `denyPathPrefix` | string | optional | Requests whose path starts with this prefix are answered with 403 instead of being forwarded. |

Unknown fields are refused. Example:

```json
{"headerName": "x-team", "headerValue": "edge", "denyPathPrefix": "/admin"}
```

## Build, test, run

```sh
cargo build --profile wasm --target wasm32-wasip1   # the module: <target>/wasm32-wasip1/wasm/__LIB__.wasm
cargo test                                      # tests/plugin.rs: builds the module, runs it in wasmplug-host
wasmplug build .                                # plugin.wasm + spec.yaml + README.md in target/wasmplug
echo '{"denyPathPrefix": "/admin"}' > config.json
wasmplug run --upstream http://127.0.0.1:8080 --plugin <target>/wasm32-wasip1/wasm/__LIB__.wasm \
  --config config.json --explain                # a local gateway on 127.0.0.1:10000: try curl
```

Edit `src/config.rs` (the schema embedded in the module follows it) and `src/lib.rs` (the handler),
then keep this table in step with `src/config.rs`.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(type_name("demo-plugin"), "DemoPlugin");
        assert!(check_name("demo-plugin2").is_ok());
        for bad in ["Demo", "1x", "a_b", "a-", "a--b", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn members_are_appended_once() {
        let text = "[workspace]\nmembers = [\n    \"sdk\",\n    \"plugins/a\"\n]\n\n[workspace.dependencies]\n";
        let out = add_member(text, "plugins/b").unwrap();
        assert_eq!(
            out,
            "[workspace]\nmembers = [\n    \"sdk\",\n    \"plugins/a\",\n    \"plugins/b\",\n]\n\n[workspace.dependencies]\n"
        );
        assert_eq!(add_member(&out, "plugins/b").unwrap(), out);
        assert_eq!(
            add_member("[workspace]\nmembers = []\n", "x").unwrap(),
            "[workspace]\nmembers = [\n    \"x\",\n]\n"
        );
    }
}
