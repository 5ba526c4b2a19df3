//! transformer through the host, asserting what its Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use wasmplug_host::{HttpResponse, Request};
use wasmplug_testkit::host::{upstream_ok, vm};

#[test]
fn header_and_query_operations() {
    let config = r#"{"reqRules": [
        {"operate": "remove", "headers": [{"key": "X-Remove"}], "querys": [{"key": "debug"}]},
        {"operate": "rename", "headers": [{"oldKey": "x-old", "newKey": "x-new"}]},
        {"operate": "replace", "headers": [{"key": "x-env", "newValue": "prod"}, {"key": "x-absent", "newValue": "no"}]},
        {"operate": "add", "headers": [{"key": "x-keep", "value": "overwritten"}], "querys": [{"key": "lang", "value": "en us"}]},
        {"operate": "map", "mapSource": "querys", "headers": [{"fromKey": "tenant", "toKey": "x-tenant"}]}
    ]}"#;
    let mut vm = vm("transformer", config);
    let request = Request::get("/h?tenant=t%201&debug=1")
        .header("x-remove", "gone")
        .header("x-old", "moved")
        .header("x-env", "dev")
        .header("x-keep", "original");
    let req = vm.run(&request, &mut upstream_ok()).unwrap().upstream_request.unwrap();
    assert_eq!(req.header("x-remove"), None);
    assert_eq!((req.header("x-old"), req.header("x-new")), (None, Some("moved")));
    assert_eq!(req.header_all("x-env"), vec!["prod"]);
    assert_eq!(req.header("x-absent"), None);
    assert_eq!(req.header_all("x-keep"), vec!["original"]);
    assert_eq!(req.header("x-tenant"), Some("t 1"));
    assert_eq!(req.path, "/h?tenant=t%201&lang=en%20us");
}

#[test]
fn json_bodies_are_rewritten_both_ways() {
    let config = r#"{"reqRules": [{"operate": "remove", "body": [{"key": "password"}]},
                                  {"operate": "add", "body": [{"key": "meta.source", "value": "gateway"}]}],
        "respRules": [{"operate": "remove", "headers": [{"key": "x-internal"}], "body": [{"key": "data.token"}]}]}"#;
    let mut vm = vm("transformer", config);
    let sent = json!({"password": "p", "user": "a"}).to_string();
    let mut upstream = HttpResponse::new(200, r#"{"data":{"token":"secret","id":1}}"#)
        .header("content-type", "application/json")
        .header("x-internal", "1");
    let request = Request::post("/json", sent.clone()).header("content-type", "application/json");
    let ex = vm.run(&request, &mut upstream).unwrap();
    let req = ex.upstream_request.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&req.body).unwrap(),
        json!({"user": "a", "meta": {"source": "gateway"}})
    );
    assert_eq!(req.header("content-length"), None, "a stale length is removed");
    assert_eq!(serde_json::from_slice::<Value>(&ex.response.body).unwrap(), json!({"data": {"id": 1}}));
    assert_eq!(ex.response.get_header("x-internal"), None);

    let text = r#"{"password":"p"} as text"#;
    let ex = vm.run(&Request::post("/text", text).header("content-type", "text/plain"), &mut upstream_ok()).unwrap();
    let req = ex.upstream_request.unwrap();
    assert_eq!(req.body_text(), text);
    assert_eq!(req.header("content-length"), Some(text.len().to_string().as_str()));
}

#[test]
fn refused_configs_name_the_field() {
    let missing = r#"{"reqRules": [{"operate": "rename", "headers": [{"oldKey": "x-old"}]}]}"#;
    let err = wasmplug_testkit::host::plugin("transformer")
        .start(wasmplug_host::VmOptions::default().configuration(missing))
        .err()
        .unwrap();
    assert!(err.to_string().contains("`reqRules[0].headers[0].newKey`: required when operate is `rename`"), "{err}");
}
