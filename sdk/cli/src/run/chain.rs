//! The plugin chain: one `wasmplug-host` VM per plugin, run in order like Envoy's filter chain.
//!
//! Each plugin's "upstream" is the rest of the chain: plugin 1 sees the client's request and
//! forwards what it lets through to plugin 2, and so on to the real upstream; the response
//! comes back through the plugins in reverse order. A local reply from plugin N never reaches
//! plugins after it, and passes back through the response phases of plugins before it (and of
//! N itself, as in Envoy).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use anyhow::{Context, Result};
use wasmplug_contract::Phase;
use wasmplug_host::{
    AsyncUpstream, CalloutHandler, Compilation, CompileCache, FailStrategy, HttpResponse, LogLevel, Pairs, Plugin,
    Request, UpstreamRequest, Vm, VmOptions, run_shared,
};

use super::network::AnswerBoard;

/// A plugin of the chain, as given on the command line.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub module: PathBuf,
    /// JSON text handed to `proxy_on_configure`.
    pub configuration: String,
    /// The file it was read from (watched for changes).
    pub config_path: Option<PathBuf>,
    pub phase: Phase,
    pub priority: i64,
}

/// Sorts as Higress chains plugins: by phase (AUTHN, AUTHZ, STATS, then none), then priority
/// (higher first); the command-line order breaks ties.
pub fn order(specs: &mut [PluginSpec]) {
    specs.sort_by_key(|s| (s.phase.rank(), std::cmp::Reverse(s.priority)));
}

pub struct Stage {
    pub spec: PluginSpec,
    /// How its running module was obtained (compiled, or from the compile cache).
    pub compilation: Compilation,
    vm: Hop,
}

/// A stage's running VM, shared by the requests in flight through it. A reload replaces the
/// stage's hop; requests that started before finish on the VM they started on.
#[derive(Clone)]
pub struct Hop {
    name: String,
    vm: Rc<RefCell<Vm>>,
    answers: AnswerBoard,
}

/// What one plugin did to one request.
#[derive(Debug, Default)]
pub struct StageReport {
    pub plugin: String,
    /// Changes to the request it passed on (method, path, headers, body).
    pub request_changes: Vec<String>,
    /// Changes to the response it passed back.
    pub response_changes: Vec<String>,
    /// Why it answered the request itself, if it did.
    pub local_reply: Option<String>,
    pub callouts: Vec<String>,
    pub fault: Option<String>,
    pub logs: Vec<String>,
    /// Whether the plugin ran at all (an earlier plugin may have answered).
    pub ran: bool,
}

/// How the chain's VMs are started: their callouts (answered on the VM's board), and where
/// compiled modules are kept.
pub struct Starter<'a> {
    pub callouts: &'a dyn Fn(AnswerBoard) -> Box<dyn CalloutHandler>,
    pub cache: Option<&'a CompileCache>,
}

/// Starts one VM per plugin (in the caller's thread: VMs stay on it).
pub fn start(specs: &[PluginSpec], starter: &Starter) -> Result<Vec<Stage>> {
    specs
        .iter()
        .map(|spec| {
            let (vm, compilation) = start_vm(spec, starter)?;
            Ok(Stage { spec: spec.clone(), compilation, vm })
        })
        .collect()
}

fn start_vm(spec: &PluginSpec, starter: &Starter) -> Result<(Hop, Compilation)> {
    let plugin = match starter.cache {
        Some(cache) => Plugin::load_cached(spec.name.clone(), &spec.module, cache),
        None => Plugin::load(spec.name.clone(), &spec.module),
    }
    .with_context(|| format!("cannot load {}", spec.module.display()))?;
    let answers = AnswerBoard::default();
    let options = VmOptions::default()
        .configuration(spec.configuration.clone())
        .fail_strategy(FailStrategy::FailClose)
        .log_level(LogLevel::Debug)
        .callouts((starter.callouts)(answers.clone()));
    let vm = plugin.start(options).with_context(|| format!("plugin {} refused to start", spec.name))?;
    Ok((Hop { name: spec.name.clone(), vm: Rc::new(RefCell::new(vm)), answers }, plugin.compilation()))
}

impl Stage {
    /// Replaces the VM with one of `spec` (module and configuration read again); on failure
    /// the running VM stays.
    pub fn reload(&mut self, spec: PluginSpec, starter: &Starter) -> Result<()> {
        (self.vm, self.compilation) = start_vm(&spec, starter)?;
        self.spec = spec;
        Ok(())
    }
}

/// How a module was obtained, for people: `compiled in 1.20 s` or `loaded compiled in 4 ms`.
pub fn describe(compilation: &Compilation) -> String {
    let took = compilation.took;
    let took =
        if took.as_secs() >= 1 { format!("{:.2} s", took.as_secs_f64()) } else { format!("{} ms", took.as_millis()) };
    if compilation.from_cache {
        format!("loaded compiled in {took} (compile cache)")
    } else {
        format!("compiled in {took}")
    }
}

/// The hops of a request through the chain as it is now.
pub fn hops(stages: &[Stage]) -> Vec<Hop> {
    stages.iter().map(|s| s.vm.clone()).collect()
}

/// Where requests go after the last plugin.
pub trait Origin {
    fn send(&self, request: &UpstreamRequest) -> impl Future<Output = HttpResponse>;
}

/// Runs `request` through `hops` and then `origin`; returns the client's response and one
/// report per hop (in chain order).
pub async fn run(hops: &[Hop], request: &Request, origin: &impl Origin) -> (HttpResponse, Vec<StageReport>) {
    let mut reports: Vec<StageReport> =
        hops.iter().map(|h| StageReport { plugin: h.name.clone(), ..StageReport::default() }).collect();
    let response = run_from(hops, &mut reports, request, origin).await;
    (response, reports)
}

/// The rest of the chain, as the upstream of one plugin.
struct Rest<'a, O> {
    hops: &'a [Hop],
    reports: &'a mut [StageReport],
    original: &'a Request,
    origin: &'a O,
    /// What came back through it (before this plugin's response phases).
    response: Option<HttpResponse>,
}

impl<O: Origin> AsyncUpstream for Rest<'_, O> {
    async fn handle(&mut self, forwarded: &UpstreamRequest) -> HttpResponse {
        let next = next_request(forwarded, self.original);
        let response = run_from(self.hops, self.reports, &next, self.origin).await;
        self.response = Some(response.clone());
        response
    }
}

fn run_from<'a, O: Origin>(
    hops: &'a [Hop],
    reports: &'a mut [StageReport],
    request: &'a Request,
    origin: &'a O,
) -> Pin<Box<dyn Future<Output = HttpResponse> + 'a>> {
    Box::pin(async move {
        let (Some((hop, hops)), Some((report, reports))) = (hops.split_first(), reports.split_first_mut()) else {
            return origin.send(&upstream_request(request)).await;
        };
        report.ran = true;
        let mut rest = Rest { hops, reports, original: request, origin, response: None };
        let exchange = run_shared(&hop.vm, request, &mut rest, &hop.answers).await;
        let inner_response = rest.response;
        if let Ok(exchange) = &exchange {
            let http = exchange.http_calls.iter().map(|c| c.token);
            hop.answers.forget(http.chain(exchange.grpc_calls.iter().map(|c| c.token)));
        }
        match exchange {
            Ok(exchange) => explain_hop(report, request, exchange, inner_response.as_ref()),
            Err(err) => {
                report.fault = Some(format!("{err:#}"));
                HttpResponse::new(500, format!("wasmplug run: plugin {} failed: {err}\n", hop.name))
            }
        }
    })
}

/// Fills `report` with what the plugin did; returns the response it passed back.
fn explain_hop(
    report: &mut StageReport,
    request: &Request,
    exchange: wasmplug_host::Exchange,
    inner_response: Option<&HttpResponse>,
) -> HttpResponse {
    report.logs = exchange.logs.iter().map(|l| format!("[{:?}] {}", l.level, l.message)).collect();
    if let Some(forwarded) = &exchange.upstream_request {
        report.request_changes = request_changes(request, forwarded);
    }
    match (&exchange.local_response, inner_response) {
        (Some(local), None) => {
            let why = match &exchange.fault {
                Some(_) => "the plugin failed (fail strategy FAIL_CLOSE)".to_string(),
                None if local.details.is_empty() => "the plugin sent a local response".to_string(),
                None => format!("the plugin sent a local response ({})", local.details),
            };
            report.local_reply = Some(format!("{} {:?}: {why}", local.status, preview(&local.body)));
            // What its response phases then changed in its own reply.
            let mut sent = HttpResponse::new(local.status, local.body.clone());
            sent.headers = local.headers.clone();
            report.response_changes = response_changes(&sent, &exchange.response);
        }
        (_, Some(inner)) => report.response_changes = response_changes(inner, &exchange.response),
        (None, None) if exchange.hung => {
            report.local_reply = Some("the plugin paused the request and nothing resumed it".to_string());
        }
        (_, None) => {}
    }
    if let (Some(local), Some(_)) = (&exchange.local_response, inner_response) {
        report.local_reply = Some(format!(
            "{} {:?}: the plugin replaced the upstream response with a local response",
            local.status,
            preview(&local.body)
        ));
    }
    report.callouts = exchange
        .http_calls
        .iter()
        .map(|c| {
            let get = |k: &str| c.headers.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.as_str());
            format!("{} {} {} (cluster {})", get(":method"), get(":authority"), get(":path"), c.cluster)
        })
        .collect();
    if let Some(fault) = &exchange.fault {
        report.fault = Some(fault.to_string());
    }
    if exchange.hung {
        return HttpResponse::new(504, format!("wasmplug run: plugin {} never resumed the request\n", report.plugin));
    }
    exchange.response
}

/// Headers the host adds itself on each hop (not changes made by a plugin).
const HOP_HEADERS: [&str; 5] = ["host", "x-request-id", "x-forwarded-proto", "content-length", "transfer-encoding"];

/// The request the next plugin sees: what this one forwarded.
fn next_request(forwarded: &UpstreamRequest, original: &Request) -> Request {
    let mut next = Request::new(&forwarded.method, &forwarded.path);
    next.authority = forwarded.header("host").unwrap_or(&original.authority).to_string();
    next.headers = forwarded.headers.iter().filter(|(k, _)| !HOP_HEADERS.contains(&k.as_str())).cloned().collect();
    next.body = forwarded.body.clone();
    next.trailers = forwarded.trailers.clone();
    next.route_name = original.route_name.clone();
    next.cluster_name = original.cluster_name.clone();
    next
}

/// The request as the upstream gets it when no plugin is configured.
fn upstream_request(request: &Request) -> UpstreamRequest {
    let mut headers = vec![("host".to_string(), request.authority.clone())];
    headers.extend(request.headers.iter().cloned());
    UpstreamRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        headers,
        body: request.body.clone(),
        trailers: request.trailers.clone(),
    }
}

fn comparable(headers: &Pairs) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !HOP_HEADERS.contains(&k.as_str()) && k != "date" && k != "connection")
        .collect()
}

/// `+name: value` for what appeared, `-name: value` for what disappeared (multiset difference).
fn header_diff(before: &Pairs, after: &Pairs) -> Vec<String> {
    let (before, after) = (comparable(before), comparable(after));
    let mut removed = before.clone();
    let mut added = Vec::new();
    for pair in after {
        match removed.iter().position(|p| *p == pair) {
            Some(i) => {
                removed.remove(i);
            }
            None => added.push(pair),
        }
    }
    removed
        .into_iter()
        .map(|(k, v)| format!("-{k}: {v}"))
        .chain(added.into_iter().map(|(k, v)| format!("+{k}: {v}")))
        .collect()
}

fn request_changes(request: &Request, forwarded: &UpstreamRequest) -> Vec<String> {
    let mut out = Vec::new();
    if request.method != forwarded.method {
        out.push(format!("method {} -> {}", request.method, forwarded.method));
    }
    if request.path != forwarded.path {
        out.push(format!("path {} -> {}", request.path, forwarded.path));
    }
    if let Some(host) = forwarded.header("host").filter(|h| *h != request.authority) {
        out.push(format!("host {} -> {host}", request.authority));
    }
    out.extend(header_diff(&request.headers, &forwarded.headers));
    if request.body != forwarded.body {
        out.push(format!(
            "body {} -> {} bytes: {:?}",
            request.body.len(),
            forwarded.body.len(),
            preview(&forwarded.body)
        ));
    }
    out
}

fn response_changes(before: &HttpResponse, after: &HttpResponse) -> Vec<String> {
    let mut out = Vec::new();
    if before.status != after.status {
        out.push(format!("status {} -> {}", before.status, after.status));
    }
    out.extend(header_diff(&before.headers, &after.headers));
    if before.body != after.body {
        out.push(format!("body {} -> {} bytes: {:?}", before.body.len(), after.body.len(), preview(&after.body)));
    }
    out
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text.into_owned()
    }
}

/// The `--explain` text for one request.
pub fn explain(request: &Request, response: &HttpResponse, reports: &[StageReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}{} -> {}", request.method, request.authority, request.path, response.status);
    if let Some((i, r)) = reports.iter().enumerate().find(|(_, r)| r.local_reply.is_some()) {
        let why = if r.fault.is_some() { ": it failed, fail strategy FAIL_CLOSE" } else { "" };
        let _ = writeln!(out, "  answered locally by plugin {} ({}){why}", i + 1, r.plugin);
    }
    for (i, r) in reports.iter().enumerate() {
        if !r.ran {
            let _ = writeln!(out, "  {}. {}: did not run (answered before it)", i + 1, r.plugin);
            continue;
        }
        let _ = writeln!(out, "  {}. {}: ran", i + 1, r.plugin);
        let list = |v: &[String]| if v.is_empty() { "unchanged".to_string() } else { v.join(", ") };
        if let Some(why) = &r.local_reply {
            let _ = writeln!(out, "     answered locally: {why}");
        } else {
            let _ = writeln!(out, "     request:  {}", list(&r.request_changes));
        }
        let _ = writeln!(out, "     response: {}", list(&r.response_changes));
        for c in &r.callouts {
            let _ = writeln!(out, "     callout:  {c}");
        }
        if let Some(f) = &r.fault {
            let _ = writeln!(out, "     fault:    {f}");
        }
        for l in &r.logs {
            let _ = writeln!(out, "     log:      {l}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_differences() {
        let p = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Pairs>();
        let diff = header_diff(&p(&[("a", "1"), ("b", "2"), ("x-request-id", "1")]), &p(&[("b", "2"), ("c", "3")]));
        assert_eq!(diff, vec!["-a: 1", "+c: 3"]);
    }

    #[test]
    fn chain_order() {
        let spec = |name: &str, phase: &str, priority| PluginSpec {
            name: name.into(),
            module: PathBuf::new(),
            configuration: String::new(),
            config_path: None,
            phase: Phase::parse_lenient(phase),
            priority,
        };
        let mut specs = vec![
            spec("a", "UNSPECIFIED_PHASE", 0),
            spec("b", "AUTHZ", 10),
            spec("c", "AUTHN", 1),
            spec("d", "AUTHZ", 20),
            spec("e", "", 0),
        ];
        order(&mut specs);
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["c", "d", "b", "a", "e"]);
    }
}
