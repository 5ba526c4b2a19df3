//! Header, trailer and body operations, local responses and resumption.

use proxy_wasm::hostcalls;

use super::{Direction, HttpContext};
use crate::host::{get_header, host_ok};

macro_rules! header_ops {
    ($dir:expr, $get:ident, $get_all:ident, $set:ident, $add:ident, $remove:ident, $set_all:ident, $side:literal) => {
        #[doc = concat!("The first value of a ", $side, " header.")]
        pub fn $get(&self, name: &str) -> Option<String> {
            get_header($dir.headers(), name)
        }
        #[doc = concat!("All ", $side, " headers, pseudo-headers included, in order.")]
        pub fn $get_all(&self) -> Vec<(String, String)> {
            hostcalls::get_map($dir.headers()).unwrap_or_default()
        }
        #[doc = concat!("Sets a ", $side, " header, replacing every existing value.")]
        pub fn $set(&mut self, name: &str, value: &str) -> bool {
            host_ok("set_map_value", hostcalls::set_map_value($dir.headers(), name, Some(value)))
        }
        #[doc = concat!("Adds a ", $side, " header value, keeping existing ones.")]
        pub fn $add(&mut self, name: &str, value: &str) -> bool {
            host_ok("add_map_value", hostcalls::add_map_value($dir.headers(), name, value))
        }
        #[doc = concat!("Removes a ", $side, " header.")]
        pub fn $remove(&mut self, name: &str) -> bool {
            host_ok("remove_map_value", hostcalls::remove_map_value($dir.headers(), name))
        }
        #[doc = concat!("Replaces all ", $side, " headers.")]
        pub fn $set_all(&mut self, headers: &[(&str, &str)]) -> bool {
            host_ok("set_map", hostcalls::set_map($dir.headers(), headers.to_vec()))
        }
    };
}

macro_rules! body_ops {
    ($dir:expr, $state:ident, $get:ident, $set:ident, $append:ident, $prepend:ident, $side:literal) => {
        #[doc = concat!("The ", $side, " body the host currently holds (the whole body in a buffered handler, the chunk in a streaming one).")]
        pub fn $get(&self) -> Option<Vec<u8>> {
            hostcalls::get_buffer($dir.body(), 0, self.$state.size).ok().flatten()
        }
        #[doc = concat!("Replaces the ", $side, " body the host holds.")]
        pub fn $set(&mut self, body: &[u8]) -> bool {
            let ok = host_ok("set_buffer", hostcalls::set_buffer($dir.body(), 0, self.$state.size, body));
            if ok {
                self.$state.size = body.len();
            }
            ok
        }
        #[doc = concat!("Appends to the ", $side, " body.")]
        pub fn $append(&mut self, data: &[u8]) -> bool {
            let ok = host_ok("set_buffer", hostcalls::set_buffer($dir.body(), self.$state.size, 0, data));
            if ok {
                self.$state.size += data.len();
            }
            ok
        }
        #[doc = concat!("Prepends to the ", $side, " body.")]
        pub fn $prepend(&mut self, data: &[u8]) -> bool {
            let ok = host_ok("set_buffer", hostcalls::set_buffer($dir.body(), 0, 0, data));
            if ok {
                self.$state.size += data.len();
            }
            ok
        }
    };
}

impl HttpContext {
    header_ops!(
        Direction::Request,
        request_header,
        request_headers,
        set_request_header,
        add_request_header,
        remove_request_header,
        set_request_headers,
        "request"
    );
    header_ops!(
        Direction::Response,
        response_header,
        response_headers,
        set_response_header,
        add_response_header,
        remove_response_header,
        set_response_headers,
        "response"
    );
    body_ops!(
        Direction::Request,
        request_body,
        request_body,
        set_request_body,
        append_request_body,
        prepend_request_body,
        "request"
    );
    body_ops!(
        Direction::Response,
        response_body,
        response_body,
        set_response_body,
        append_response_body,
        prepend_response_body,
        "response"
    );

    /// Request trailers (available once the request ended).
    pub fn request_trailers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(Direction::Request.trailers()).unwrap_or_default()
    }

    /// Response trailers (available once the response ended).
    pub fn response_trailers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(Direction::Response.trailers()).unwrap_or_default()
    }

    /// Sets a response trailer.
    pub fn set_response_trailer(&mut self, name: &str, value: &str) -> bool {
        host_ok("set_map_value", hostcalls::set_map_value(Direction::Response.trailers(), name, Some(value)))
    }

    /// A host property (`["route_name"]`, `["request", "id"]`, `["source", "address"]`, ...).
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    /// A host property as UTF-8 text.
    pub fn property_string(&self, path: &[&str]) -> Option<String> {
        self.property(path).and_then(|v| String::from_utf8(v).ok())
    }

    /// Sets a host property (filter state, readable by later filters and the access log).
    pub fn set_property(&mut self, path: &[&str], value: &[u8]) -> bool {
        host_ok("set_property", hostcalls::set_property(path.to_vec(), Some(value)))
    }

    /// Answers the request from the plugin. The request is not forwarded, later resumes are
    /// ignored, and handlers should return [`Action::Pause`](crate::Action::Pause).
    /// A second local response for the same request is ignored.
    pub fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> bool {
        if self.local_response_sent {
            log::warn!("a local response was already sent; ignoring another ({status})");
            return false;
        }
        let body = body.as_ref();
        let sent = host_ok(
            "send_http_response",
            hostcalls::send_http_response(u32::from(status), headers.to_vec(), (!body.is_empty()).then_some(body)),
        );
        if sent {
            self.local_response_sent = true;
            self.paused = None;
        }
        sent
    }

    /// Lets a paused request continue. Does nothing when the request is not paused or was
    /// answered locally.
    pub fn resume_request(&mut self) {
        self.resume(Direction::Request);
    }

    /// Lets a paused response continue. Does nothing when the response is not paused or was
    /// answered locally.
    pub fn resume_response(&mut self) {
        self.resume(Direction::Response);
    }

    /// Whether the SDK holds this direction of the stream for a callout.
    pub fn is_paused(&self, direction: Direction) -> bool {
        self.paused == Some(direction)
    }

    /// Marks a paused direction to be resumed; the runtime resumes it once the current
    /// callback returns (after handing over a body that arrived in the meantime).
    pub(crate) fn resume(&mut self, direction: Direction) {
        if self.local_response_sent || self.paused != Some(direction) {
            return;
        }
        self.resume_requested = Some(direction);
    }
}
