#[allow(dead_code)]
mod config {
    include!("src/config.rs");
}

fn main() -> std::io::Result<()> {
    wasmplug_sdk_build::PluginInfo::new()
        .title("HTTP Call")
        .phase("UNSPECIFIED_PHASE")
        .priority(0)
        .emit::<config::Config>()
}
