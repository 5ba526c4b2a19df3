#[allow(dead_code)]
mod config {
    include!("src/config.rs");
}

fn main() -> std::io::Result<()> {
    wasmplug_sdk_build::PluginInfo::new().title("SDK probe").emit::<config::Config>()
}
