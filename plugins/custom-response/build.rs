#[allow(dead_code)]
mod config {
    include!("src/config.rs");
}

fn main() -> std::io::Result<()> {
    wasmplug_sdk_build::PluginInfo::new()
        .title("Custom Response")
        .phase("UNSPECIFIED_PHASE")
        .priority(910)
        .emit::<config::Config>()
}
