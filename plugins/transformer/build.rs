#[allow(dead_code)]
mod config {
    include!("src/config.rs");
}

fn main() -> std::io::Result<()> {
    // Higress runs transformer in the AUTHN phase with priority 410.
    wasmplug_sdk_build::PluginInfo::new().title("Transformer").phase("AUTHN").priority(410).emit::<config::Config>()
}
