//! Building the xDS resources: the gateway listener (LDS) and one Wasm filter per plugin (ECDS).

use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, AsyncDataSource, ConfigSource, DataSource, ExtensionConfigSource,
    HttpUri, RemoteDataSource, SocketAddress, TypedExtensionConfig, address, async_data_source, config_source,
    data_source, http_uri, socket_address,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::wasm::v3::{EnvironmentVariables, PluginConfig, VmConfig, plugin_config};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, StringValue};
use envoy_types::util::pack_any;

use wasmplug_envoy::Code;
use wasmplug_envoy::filter::RUNTIME;

use crate::{FailStrategy, PluginFilter, XdsOptions};

/// `type_url` of LDS resources.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `type_url` of ECDS resources.
pub const ECDS_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
/// `type_url` of the Wasm HTTP filter's config.
pub use wasmplug_envoy::filter::WASM_TYPE;
/// The name of the listener served to every gateway.
pub const LISTENER_NAME: &str = "wasmplug-gateway";

fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        resource_api_version: ApiVersion::V3 as i32,
        ..ConfigSource::default()
    }
}

fn duration(d: std::time::Duration) -> PbDuration {
    PbDuration { seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX), nanos: d.subsec_nanos() as i32 }
}

/// The gateway listener: an HTTP connection manager whose filters are the plugins (by ECDS
/// name, in order) then the router, routing everything to the upstream cluster.
pub fn listener(host: &str, port: u16, opts: &XdsOptions, filters: &[String]) -> Any {
    let mut http_filters: Vec<HttpFilter> = filters
        .iter()
        .map(|name| HttpFilter {
            name: name.clone(),
            config_type: Some(http_filter::ConfigType::ConfigDiscovery(ExtensionConfigSource {
                config_source: Some(ads()),
                type_urls: vec![WASM_TYPE.to_string()],
                ..ExtensionConfigSource::default()
            })),
            ..HttpFilter::default()
        })
        .collect();
    http_filters.push(HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
        ..HttpFilter::default()
    });
    let routes = RouteConfiguration {
        name: "wasmplug-routes".into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "all".into(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..RouteMatch::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(opts.upstream_cluster.clone())),
                    ..RouteAction::default()
                })),
                ..Route::default()
            }],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: "wasmplug".into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)),
        http_filters,
        ..HttpConnectionManager::default()
    };
    pack_any(Listener {
        name: LISTENER_NAME.into(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: host.to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
                ..SocketAddress::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    })
}

/// The ECDS resource of one plugin: its filter description as protobuf.
pub fn wasm_filter(plugin: &PluginFilter) -> Any {
    let f = &plugin.filter;
    let code = match &f.code {
        Code::Remote(r) => async_data_source::Specifier::Remote(RemoteDataSource {
            http_uri: Some(HttpUri {
                uri: r.uri.clone(),
                timeout: Some(duration(r.timeout)),
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(r.cluster.clone())),
            }),
            sha256: r.sha256.clone(),
            ..RemoteDataSource::default()
        }),
        Code::Local(path) => async_data_source::Specifier::Local(DataSource {
            specifier: Some(data_source::Specifier::Filename(path.to_string_lossy().into_owned())),
            ..DataSource::default()
        }),
    };
    let environment_variables = (!f.env.is_empty() || !f.host_env_keys.is_empty()).then(|| EnvironmentVariables {
        host_env_keys: f.host_env_keys.clone(),
        key_values: f.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    });
    let vm = VmConfig {
        vm_id: f.vm_id.clone(),
        runtime: RUNTIME.into(),
        code: Some(AsyncDataSource { specifier: Some(code) }),
        environment_variables,
        ..VmConfig::default()
    };
    let failure_policy = match f.failure_policy {
        FailStrategy::FailClose => envoy_types::pb::envoy::extensions::wasm::v3::FailurePolicy::FailClosed,
        FailStrategy::FailOpen => envoy_types::pb::envoy::extensions::wasm::v3::FailurePolicy::FailOpen,
        FailStrategy::FailReload => envoy_types::pb::envoy::extensions::wasm::v3::FailurePolicy::FailReload,
    };
    let config = PluginConfig {
        name: f.name.clone(),
        root_id: f.root_id.clone(),
        configuration: f.configuration.clone().map(|value| pack_any(StringValue { value })),
        failure_policy: failure_policy as i32,
        allow_on_headers_stop_iteration: f.allow_on_headers_stop_iteration.map(|value| BoolValue { value }),
        vm: Some(plugin_config::Vm::VmConfig(vm)),
        ..PluginConfig::default()
    };
    pack_any(TypedExtensionConfig {
        name: plugin.name.clone(),
        typed_config: Some(pack_any(Wasm { config: Some(config) })),
    })
}
