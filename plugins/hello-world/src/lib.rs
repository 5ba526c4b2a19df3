//! The seed example: with `mockEnable: true` the plugin answers 200 "hello world";
//! otherwise it adds `hello: world` to the request.

mod config;

use wasmplug_sdk::prelude::*;

pub use config::Config;

#[derive(Default)]
pub struct HelloWorld;

impl HttpPlugin for HelloWorld {
    type Config = Config;

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        if config.mock_enable {
            ctx.send_response(200, &[("content-type", "text/plain")], "hello world");
            return Action::Pause;
        }
        ctx.add_request_header("hello", "world");
        Action::Continue
    }
}

wasmplug_sdk::plugin!(HelloWorld);

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn config_defaults_and_refusals() {
        let c: Config = serde_json::from_str("{}").unwrap();
        assert!(!c.mock_enable);
        assert!(serde_json::from_str::<Config>(r#"{"mockEnable":"yes"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"mock_enable":true}"#).is_err());
    }
}
