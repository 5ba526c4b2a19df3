//! The proxy-wasm ABI 0.2.1 host functions (module `env`), and Higress's Redis functions.
//!
//! Semantics follow Envoy's (proxy-wasm-cpp-host + `source/extensions/common/wasm`): header
//! names are lowercased, `get` returns the first value, `replace` sets a single value, `add`
//! appends an entry; `proxy_set_buffer_bytes` with start 0 replaces `size` bytes (prepends
//! when size is 0) and with start at or past the end appends; an unknown cluster fails
//! `proxy_http_call` with `BadArgument`.

use wasmtime::Linker;

use crate::abi::{self, LogLevel, Pairs, buffer, map, status};
use crate::callout::{CalloutReply, HttpCall, RedisCall, RedisReply};
use crate::grpc;
use crate::memory::{Ctx, Fail, HostResult, copy_out, fail, finish, read, read_string, write_u32, write_u64};
use crate::state::{CallRecord, Delivery, HostState, LocalResponse, Metric, MetricKind, Queue};

type L = Linker<HostState>;

fn headers_of(caller: &mut Ctx<'_>, map_type: i32) -> Result<Pairs, Fail> {
    let state = caller.data_mut();
    if map_type == map::HTTP_CALL_RESPONSE_HEADERS || map_type == map::HTTP_CALL_RESPONSE_TRAILERS {
        // Envoy answers an absent map (no response: timeout, reset) with an empty one.
        let Some(response) = state.call_response.as_ref() else {
            return Ok(Vec::new());
        };
        return Ok(if map_type == map::HTTP_CALL_RESPONSE_HEADERS {
            let mut pairs = vec![(":status".to_string(), response.status.to_string())];
            pairs.extend(response.headers.iter().cloned());
            pairs
        } else {
            response.trailers.clone()
        });
    }
    if map_type == map::GRPC_RECEIVE_INITIAL_METADATA || map_type == map::GRPC_RECEIVE_TRAILING_METADATA {
        return state.grpc_metadata.clone().ok_or(Fail::Status(status::NOT_FOUND));
    }
    Ok(map_mut(state, map_type)?.clone())
}

fn map_mut(state: &mut HostState, map_type: i32) -> Result<&mut Pairs, Fail> {
    let stream = state.stream().ok_or(Fail::Status(status::BAD_ARGUMENT))?;
    // Envoy drops its reference to a map once the phase that brought it returned Continue.
    if usize::try_from(map_type).ok().and_then(|i| stream.released.get(i)).copied().unwrap_or(false) {
        return fail(status::BAD_ARGUMENT);
    }
    Ok(match map_type {
        map::REQUEST_HEADERS => &mut stream.request_headers,
        map::REQUEST_TRAILERS => &mut stream.request_trailers,
        map::RESPONSE_HEADERS => &mut stream.response_headers,
        map::RESPONSE_TRAILERS => &mut stream.response_trailers,
        _ => return fail(status::BAD_ARGUMENT),
    })
}

fn buffer_mut(state: &mut HostState, buffer_type: i32) -> Result<&mut Vec<u8>, Fail> {
    match buffer_type {
        buffer::REQUEST_BODY | buffer::RESPONSE_BODY => {
            let stream = state.stream().ok_or(Fail::Status(status::NOT_FOUND))?;
            Ok(if buffer_type == buffer::REQUEST_BODY { &mut stream.request_body } else { &mut stream.response_body })
        }
        buffer::HTTP_CALL_RESPONSE_BODY => {
            state.call_response.as_mut().map(|r| &mut r.body).ok_or(Fail::Status(status::NOT_FOUND))
        }
        buffer::VM_CONFIGURATION => Ok(&mut state.vm_config),
        buffer::PLUGIN_CONFIGURATION => Ok(&mut state.plugin_config),
        buffer::REDIS_CALL_RESPONSE => state.redis_response.as_mut().ok_or(Fail::Status(status::NOT_FOUND)),
        buffer::GRPC_RECEIVE_BUFFER => state.grpc_message.as_mut().ok_or(Fail::Status(status::NOT_FOUND)),
        _ => fail(status::NOT_FOUND),
    }
}

fn log(mut caller: Ctx<'_>, level: i32, ptr: i32, len: i32) -> HostResult {
    let message = read_string(&caller, ptr, len)?;
    let level = LogLevel::from_raw(level).ok_or(Fail::Status(status::BAD_ARGUMENT))?;
    caller.data_mut().log(level, message);
    Ok(())
}

fn get_buffer_bytes(mut caller: Ctx<'_>, kind: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let bytes = buffer_mut(caller.data_mut(), kind)?;
    let start = start as u32 as usize;
    let end = start.saturating_add(max as u32 as usize).min(bytes.len());
    let slice = bytes.get(start..end.max(start)).map(<[u8]>::to_vec).unwrap_or_default();
    copy_out(&mut caller, &slice, ptr_ptr, size_ptr)
}

fn set_buffer_bytes(mut caller: Ctx<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32) -> HostResult {
    if !matches!(kind, buffer::REQUEST_BODY | buffer::RESPONSE_BODY) {
        return fail(status::BAD_ARGUMENT);
    }
    let data = read(&caller, ptr, len)?;
    let bytes = buffer_mut(caller.data_mut(), kind)?;
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    if start == 0 {
        bytes.drain(..size.min(bytes.len()));
        bytes.splice(0..0, data);
    } else if start >= bytes.len() {
        bytes.extend_from_slice(&data);
    } else {
        return fail(status::BAD_ARGUMENT);
    }
    Ok(())
}

fn get_map_pairs(mut caller: Ctx<'_>, map_type: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    // As in Envoy, a map that does not exist in this context reads as empty.
    let pairs = match headers_of(&mut caller, map_type) {
        Err(Fail::Status(_)) => Vec::new(),
        other => other?,
    };
    copy_out(&mut caller, &abi::encode_pairs(&pairs), ptr_ptr, size_ptr)
}

fn set_map_pairs(mut caller: Ctx<'_>, map_type: i32, ptr: i32, len: i32) -> HostResult {
    let bytes = read(&caller, ptr, len)?;
    let pairs = abi::decode_pairs(&bytes).ok_or(Fail::Status(status::BAD_ARGUMENT))?;
    let target = map_mut(caller.data_mut(), map_type)?;
    *target = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    Ok(())
}

fn get_map_value(mut caller: Ctx<'_>, map_type: i32, kp: i32, kl: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let key = read_string(&caller, kp, kl)?.to_ascii_lowercase();
    let pairs = headers_of(&mut caller, map_type)?;
    let value = pairs.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).ok_or(Fail::Status(status::NOT_FOUND))?;
    copy_out(&mut caller, value.as_bytes(), ptr_ptr, size_ptr)
}

fn edit_map(caller: Ctx<'_>, map_type: i32, kp: i32, kl: i32, value: Option<(i32, i32)>, add: bool) -> HostResult {
    let key = read_string(&caller, kp, kl)?.to_ascii_lowercase();
    let value = match value {
        Some((vp, vl)) => Some(read_string(&caller, vp, vl)?),
        None => None,
    };
    let mut caller = caller;
    let pairs = map_mut(caller.data_mut(), map_type)?;
    match value {
        Some(value) if add => pairs.push((key, value)),
        Some(value) => match pairs.iter().position(|(k, _)| *k == key) {
            Some(at) => {
                if let Some(slot) = pairs.get_mut(at) {
                    slot.1 = value;
                }
                let mut index = 0;
                pairs.retain(|(k, _)| {
                    index += 1;
                    index - 1 == at || *k != key
                });
            }
            None => pairs.push((key, value)),
        },
        None => pairs.retain(|(k, _)| *k != key),
    }
    Ok(())
}

fn get_property(mut caller: Ctx<'_>, pp: i32, pl: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let path = abi::decode_path(&read(&caller, pp, pl)?);
    let value = caller.data().property(&path).ok_or(Fail::Status(status::NOT_FOUND))?;
    copy_out(&mut caller, &value, ptr_ptr, size_ptr)
}

fn set_property(mut caller: Ctx<'_>, pp: i32, pl: i32, vp: i32, vl: i32) -> HostResult {
    let key = abi::decode_path(&read(&caller, pp, pl)?).join(".");
    let value = read(&caller, vp, vl)?;
    let state = caller.data_mut();
    match state.stream() {
        Some(stream) => stream.properties.insert(key, value),
        None => state.properties.insert(key, value),
    };
    Ok(())
}

fn get_shared_data(mut caller: Ctx<'_>, kp: i32, kl: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32) -> HostResult {
    let key = read_string(&caller, kp, kl)?;
    let entry = caller.data().shared.lock().data.get(&key).cloned();
    let (value, cas) = entry.ok_or(Fail::Status(status::NOT_FOUND))?;
    copy_out(&mut caller, &value, ptr_ptr, size_ptr)?;
    write_u32(&mut caller, cas_ptr, cas)
}

fn set_shared_data(caller: Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> HostResult {
    let key = read_string(&caller, kp, kl)?;
    let value = read(&caller, vp, vl)?;
    let mut store = caller.data().shared.lock();
    let current = store.data.get(&key).map(|(_, c)| *c);
    if cas != 0 && current.is_some_and(|c| c != cas as u32) {
        return fail(status::CAS_MISMATCH);
    }
    let next = current.unwrap_or(0).wrapping_add(1).max(1);
    store.data.insert(key, (value, next));
    Ok(())
}

fn register_queue(mut caller: Ctx<'_>, np: i32, nl: i32, id_ptr: i32) -> HostResult {
    let name = read_string(&caller, np, nl)?;
    let vm_id = caller.data().vm_id.clone();
    let id = {
        let mut store = caller.data().shared.lock();
        match store.queues.iter().position(|q| q.vm_id == vm_id && q.name == name) {
            Some(at) => at,
            None => {
                store.queues.push(Queue { vm_id, name, items: Default::default() });
                store.queues.len() - 1
            }
        }
    };
    write_u32(&mut caller, id_ptr, id as u32 + 1)
}

fn resolve_queue(mut caller: Ctx<'_>, vp: i32, vl: i32, np: i32, nl: i32, id_ptr: i32) -> HostResult {
    let vm_id = read_string(&caller, vp, vl)?;
    let name = read_string(&caller, np, nl)?;
    let found = caller.data().shared.lock().queues.iter().position(|q| q.vm_id == vm_id && q.name == name);
    let id = found.ok_or(Fail::Status(status::NOT_FOUND))?;
    write_u32(&mut caller, id_ptr, id as u32 + 1)
}

fn dequeue(mut caller: Ctx<'_>, id: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let item = {
        let mut store = caller.data().shared.lock();
        let queue =
            store.queues.get_mut((id as u32 as usize).wrapping_sub(1)).ok_or(Fail::Status(status::NOT_FOUND))?;
        queue.items.pop_front().ok_or(Fail::Status(status::EMPTY))?
    };
    copy_out(&mut caller, &item, ptr_ptr, size_ptr)
}

fn enqueue(mut caller: Ctx<'_>, id: i32, ptr: i32, len: i32) -> HostResult {
    let data = read(&caller, ptr, len)?;
    let own = {
        let vm_id = caller.data().vm_id.clone();
        let mut store = caller.data().shared.lock();
        let queue =
            store.queues.get_mut((id as u32 as usize).wrapping_sub(1)).ok_or(Fail::Status(status::NOT_FOUND))?;
        queue.items.push_back(data);
        queue.vm_id == vm_id
    };
    if own {
        caller.data_mut().deliveries.push_back(Delivery::QueueReady { queue_id: id as u32 });
    }
    Ok(())
}

fn continue_stream(mut caller: Ctx<'_>, kind: i32, close: bool) -> HostResult {
    // Envoy answers Ok outside a stream (on the root context) and does nothing.
    let Some(stream) = caller.data_mut().stream() else { return Ok(()) };
    match (kind, close) {
        (0, false) => stream.continue_request = true,
        (1, false) => stream.continue_response = true,
        (0 | 1, true) => stream.closed = true,
        _ => return fail(status::BAD_ARGUMENT),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn send_local_response(
    mut caller: Ctx<'_>,
    code: i32,
    dp: i32,
    dl: i32,
    bp: i32,
    bl: i32,
    hp: i32,
    hl: i32,
    grpc_status: i32,
) -> HostResult {
    let details = read_string(&caller, dp, dl)?;
    let body = read(&caller, bp, bl)?;
    let headers = abi::decode_pairs(&read(&caller, hp, hl)?).ok_or(Fail::Status(status::BAD_ARGUMENT))?;
    let headers = headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let status = u16::try_from(code).map_err(|_| Fail::Status(status::BAD_ARGUMENT))?;
    let stream = caller.data_mut().stream().ok_or(Fail::Status(status::NOT_FOUND))?;
    // Envoy keeps the first local reply of a stream.
    if stream.local_response.is_none() {
        stream.local_response = Some(LocalResponse { status, details, headers, body, grpc_status });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    mut caller: Ctx<'_>,
    up: i32,
    ul: i32,
    hp: i32,
    hl: i32,
    bp: i32,
    bl: i32,
    tp: i32,
    tl: i32,
    timeout_ms: i32,
    token_ptr: i32,
) -> HostResult {
    let cluster = read_string(&caller, up, ul)?;
    let headers = abi::decode_pairs(&read(&caller, hp, hl)?).ok_or(Fail::Status(status::BAD_ARGUMENT))?;
    let body = read(&caller, bp, bl)?;
    let trailers = abi::decode_pairs(&read(&caller, tp, tl)?).ok_or(Fail::Status(status::BAD_ARGUMENT))?;
    // Envoy refuses a call without :method, :path or :authority.
    for required in [":method", ":path", ":authority"] {
        if !headers.iter().any(|(k, v)| k == required && !v.is_empty()) {
            return fail(status::BAD_ARGUMENT);
        }
    }
    let state = caller.data_mut();
    let token = state.next_token();
    let call = HttpCall {
        token,
        context_id: state.effective,
        cluster,
        headers,
        body,
        trailers,
        timeout_ms: timeout_ms as u32,
    };
    let reply = state.callouts.http_call(&call);
    if reply == CalloutReply::UnknownCluster {
        state.log(LogLevel::Debug, format!("http call to unknown cluster `{}` refused", call.cluster));
        return fail(status::BAD_ARGUMENT);
    }
    if reply != CalloutReply::Pending {
        state.deliveries.push_back(Delivery::Http { token, reply });
    }
    state.http_calls.push(CallRecord { call, answered: false });
    write_u32(&mut caller, token_ptr, token)
}

fn define_metric(mut caller: Ctx<'_>, kind: i32, np: i32, nl: i32, id_ptr: i32) -> HostResult {
    let name = read_string(&caller, np, nl)?;
    let kind = match kind {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return fail(status::BAD_ARGUMENT),
    };
    let metrics = &mut caller.data_mut().metrics;
    let id = match metrics.iter().position(|m| m.name == name && m.kind == kind) {
        Some(at) => at,
        None => {
            metrics.push(Metric { name, kind, value: 0, samples: Vec::new() });
            metrics.len() - 1
        }
    };
    write_u32(&mut caller, id_ptr, id as u32 + 1)
}

fn metric_mut(state: &mut HostState, id: i32) -> Result<&mut Metric, Fail> {
    state.metrics.get_mut((id as u32 as usize).wrapping_sub(1)).ok_or(Fail::Status(status::NOT_FOUND))
}

#[allow(clippy::too_many_arguments)]
fn redis_init(caller: Ctx<'_>, cp: i32, cl: i32, up: i32, ul: i32, pp: i32, pl: i32, timeout: i32) -> HostResult {
    let cluster = read_string(&caller, cp, cl)?;
    let user = read_string(&caller, up, ul)?;
    let password = read_string(&caller, pp, pl)?;
    let mut caller = caller;
    let state = caller.data_mut();
    if !state.callouts.redis_init(&cluster, &user, &password, timeout as u32) {
        return fail(status::BAD_ARGUMENT);
    }
    state.redis_clusters.insert(cluster);
    Ok(())
}

fn redis_call(mut caller: Ctx<'_>, cp: i32, cl: i32, qp: i32, ql: i32, token_ptr: i32) -> HostResult {
    let cluster = read_string(&caller, cp, cl)?;
    let query = read(&caller, qp, ql)?;
    let state = caller.data_mut();
    if !state.redis_clusters.contains(&cluster) {
        return fail(status::BAD_ARGUMENT);
    }
    let token = state.next_token();
    let call = RedisCall { token, context_id: state.effective, cluster, query };
    let reply = state.callouts.redis_call(&call);
    if reply == RedisReply::UnknownCluster {
        return fail(status::BAD_ARGUMENT);
    }
    if reply != RedisReply::Pending {
        state.deliveries.push_back(Delivery::Redis { token, reply });
    }
    state.redis_calls.push(CallRecord { call, answered: false });
    write_u32(&mut caller, token_ptr, token)
}

/// Registers every host function of module `env`.
pub fn add_to_linker(linker: &mut L) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_log", |c: Ctx<'_>, l: i32, p: i32, s: i32| finish(log(c, l, p, s)))?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, ret: i32| {
        let level = c.data().log_level as u32;
        finish(write_u32(&mut c, ret, level))
    })?;
    linker.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: Ctx<'_>, ret: i32| {
        let now = c.data().now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        finish(write_u64(&mut c, ret, u64::try_from(now.as_nanos()).unwrap_or(u64::MAX)))
    })?;
    linker.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: Ctx<'_>, period: i32| {
        let period = period as u32;
        c.data_mut().tick_period = (period > 0).then(|| std::time::Duration::from_millis(u64::from(period)));
        finish(Ok(()))
    })?;
    linker.func_wrap("env", "proxy_get_buffer_bytes", |c: Ctx<'_>, t: i32, s: i32, m: i32, pp: i32, sp: i32| {
        finish(get_buffer_bytes(c, t, s, m, pp, sp))
    })?;
    linker.func_wrap("env", "proxy_set_buffer_bytes", |c: Ctx<'_>, t: i32, s: i32, z: i32, p: i32, l: i32| {
        finish(set_buffer_bytes(c, t, s, z, p, l))
    })?;
    linker.func_wrap("env", "proxy_get_header_map_pairs", |c: Ctx<'_>, t: i32, pp: i32, sp: i32| {
        finish(get_map_pairs(c, t, pp, sp))
    })?;
    linker.func_wrap("env", "proxy_set_header_map_pairs", |c: Ctx<'_>, t: i32, p: i32, l: i32| {
        finish(set_map_pairs(c, t, p, l))
    })?;
    linker.func_wrap("env", "proxy_get_header_map_size", |mut c: Ctx<'_>, t: i32, ret: i32| {
        let result = headers_of(&mut c, t).and_then(|p| write_u32(&mut c, ret, abi::encode_pairs(&p).len() as u32));
        finish(result)
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |c: Ctx<'_>, t: i32, kp: i32, kl: i32, pp: i32, sp: i32| finish(get_map_value(c, t, kp, kl, pp, sp)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |c: Ctx<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| finish(edit_map(c, t, kp, kl, Some((vp, vl)), false)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |c: Ctx<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| finish(edit_map(c, t, kp, kl, Some((vp, vl)), true)),
    )?;
    linker.func_wrap("env", "proxy_remove_header_map_value", |c: Ctx<'_>, t: i32, kp: i32, kl: i32| {
        finish(edit_map(c, t, kp, kl, None, false))
    })?;
    linker.func_wrap("env", "proxy_get_property", |c: Ctx<'_>, p: i32, l: i32, pp: i32, sp: i32| {
        finish(get_property(c, p, l, pp, sp))
    })?;
    linker.func_wrap("env", "proxy_set_property", |c: Ctx<'_>, p: i32, l: i32, vp: i32, vl: i32| {
        finish(set_property(c, p, l, vp, vl))
    })?;
    linker.func_wrap("env", "proxy_get_shared_data", |c: Ctx<'_>, kp: i32, kl: i32, pp: i32, sp: i32, cas: i32| {
        finish(get_shared_data(c, kp, kl, pp, sp, cas))
    })?;
    linker.func_wrap("env", "proxy_set_shared_data", |c: Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| {
        finish(set_shared_data(c, kp, kl, vp, vl, cas))
    })?;
    linker.func_wrap("env", "proxy_register_shared_queue", |c: Ctx<'_>, np: i32, nl: i32, id: i32| {
        finish(register_queue(c, np, nl, id))
    })?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |c: Ctx<'_>, vp: i32, vl: i32, np: i32, nl: i32, id: i32| finish(resolve_queue(c, vp, vl, np, nl, id)),
    )?;
    linker.func_wrap("env", "proxy_dequeue_shared_queue", |c: Ctx<'_>, id: i32, pp: i32, sp: i32| {
        finish(dequeue(c, id, pp, sp))
    })?;
    linker.func_wrap("env", "proxy_enqueue_shared_queue", |c: Ctx<'_>, id: i32, p: i32, l: i32| {
        finish(enqueue(c, id, p, l))
    })?;
    linker.func_wrap("env", "proxy_continue_stream", |c: Ctx<'_>, t: i32| finish(continue_stream(c, t, false)))?;
    linker.func_wrap("env", "proxy_close_stream", |c: Ctx<'_>, t: i32| finish(continue_stream(c, t, true)))?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |c: Ctx<'_>, code: i32, dp: i32, dl: i32, bp: i32, bl: i32, hp: i32, hl: i32, grpc: i32| {
            finish(send_local_response(c, code, dp, dl, bp, bl, hp, hl, grpc))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |c: Ctx<'_>, up: i32, ul: i32, hp: i32, hl: i32, bp: i32, bl: i32, tp: i32, tl: i32, to: i32, tok: i32| {
            finish(http_call(c, up, ul, hp, hl, bp, bl, tp, tl, to, tok))
        },
    )?;
    add_grpc(linker)?;
    add_unsupported(linker)?;
    linker.func_wrap("env", "proxy_set_effective_context", |mut c: Ctx<'_>, id: i32| {
        let state = c.data_mut();
        let id = id as u32;
        if id != state.root_id && !state.streams.contains_key(&id) {
            return finish(fail(status::BAD_ARGUMENT));
        }
        state.effective = id;
        finish(Ok(()))
    })?;
    linker.func_wrap("env", "proxy_define_metric", |c: Ctx<'_>, t: i32, np: i32, nl: i32, id: i32| {
        finish(define_metric(c, t, np, nl, id))
    })?;
    linker.func_wrap("env", "proxy_get_metric", |mut c: Ctx<'_>, id: i32, ret: i32| {
        let value = metric_mut(c.data_mut(), id).map(|m| m.value);
        finish(value.and_then(|v| write_u64(&mut c, ret, v)))
    })?;
    linker.func_wrap("env", "proxy_record_metric", |mut c: Ctx<'_>, id: i32, value: i64| {
        let result = metric_mut(c.data_mut(), id).map(|m| {
            m.value = value as u64;
            if m.kind == MetricKind::Histogram {
                m.samples.push(value as u64);
            }
        });
        finish(result)
    })?;
    linker.func_wrap("env", "proxy_increment_metric", |mut c: Ctx<'_>, id: i32, offset: i64| {
        let result = metric_mut(c.data_mut(), id).and_then(|m| match m.kind {
            MetricKind::Histogram => fail(status::BAD_ARGUMENT),
            _ => {
                m.value = m.value.saturating_add_signed(offset);
                Ok(())
            }
        });
        finish(result)
    })?;
    linker.func_wrap(
        "env",
        "proxy_redis_init",
        |c: Ctx<'_>, cp: i32, cl: i32, up: i32, ul: i32, pp: i32, pl: i32, timeout: i32| {
            finish(redis_init(c, cp, cl, up, ul, pp, pl, timeout))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dispatch_redis_call",
        |c: Ctx<'_>, cp: i32, cl: i32, qp: i32, ql: i32, tok: i32| finish(redis_call(c, cp, cl, qp, ql, tok)),
    )?;
    Ok(())
}

/// gRPC calls and streams (`grpc.rs`).
fn add_grpc(linker: &mut L) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |c: Ctx<'_>,
         sp: i32,
         sl: i32,
         np: i32,
         nl: i32,
         mp: i32,
         ml: i32,
         hp: i32,
         hl: i32,
         rp: i32,
         rl: i32,
         to: i32,
         tok: i32| {
            let target =
                grpc::Target { service: (sp, sl), service_name: (np, nl), method: (mp, ml), metadata: (hp, hl) };
            finish(grpc::call(c, &target, (rp, rl), to, tok))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |c: Ctx<'_>, sp: i32, sl: i32, np: i32, nl: i32, mp: i32, ml: i32, hp: i32, hl: i32, tok: i32| {
            let target =
                grpc::Target { service: (sp, sl), service_name: (np, nl), method: (mp, ml), metadata: (hp, hl) };
            finish(grpc::stream(c, &target, tok))
        },
    )?;
    linker.func_wrap("env", "proxy_grpc_send", |c: Ctx<'_>, tok: i32, mp: i32, ml: i32, end: i32| {
        finish(grpc::send(c, tok, mp, ml, end))
    })?;
    linker.func_wrap("env", "proxy_grpc_cancel", |c: Ctx<'_>, tok: i32| finish(grpc::end(c, tok, true)))?;
    linker.func_wrap("env", "proxy_grpc_close", |c: Ctx<'_>, tok: i32| finish(grpc::end(c, tok, false)))?;
    linker.func_wrap("env", "proxy_get_status", |c: Ctx<'_>, code: i32, pp: i32, sp: i32| {
        finish(grpc::get_status(c, code, pp, sp))
    })?;
    Ok(())
}

/// Foreign functions and `proxy_done`: present so modules link (every proxy-wasm SDK imports
/// them), answering as Envoy does when nothing is configured for them.
fn add_unsupported(linker: &mut L) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| status::NOT_FOUND,
    )?;
    linker.func_wrap("env", "proxy_done", |_: Ctx<'_>| status::NOT_FOUND)?;
    Ok(())
}
