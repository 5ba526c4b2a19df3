//! Plugin images for wasmplug: references, registry access (auth, TLS, plain-HTTP allowlist,
//! retries), every blob size-checked and digest-verified, the image layouts Higress, Istio,
//! Envoy Gateway and the CNCF use, hostile-input defences, and a content-addressed cache.
//!
//! ```no_run
//! # async fn demo() -> wasmplug_oci::Result<()> {
//! use wasmplug_oci::{Cache, ImageRef, Registry, RegistryConfig};
//! let registry = Registry::new(RegistryConfig::default())?;
//! let cache = Cache::new("/var/cache/wasmplug", registry)?;
//! let image = ImageRef::parse("oci://registry.example.com/plugins/hello:1.0.0")?;
//! let module = cache.resolve(&image, None, None, None).await?;
//! println!("{} at {}", module.module_digest, module.path.display());
//! # Ok(()) }
//! ```

mod address;
pub mod archive;
pub mod auth;
pub mod cache;
pub mod error;
mod http;
pub mod layout;
pub mod media;
pub mod metadata;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;

pub use auth::DockerConfig;
pub use cache::{Cache, CachedModule, PullPolicy};
pub use error::{Error, Result};
pub use layout::Format;
pub use media::Limits;
pub use metadata::PluginMetadata;
pub use pull::{MetadataSource, PulledImage, fetch_image_manifest, pull, pull_layers};
pub use push::{BuiltImage, PluginPackage, PushFormat, build_image, push};
pub use reference::{Digest, ImageRef};
pub use registry::{Registry, RegistryConfig, RetryPolicy};
