//! The WASI preview1 surface Envoy 1.40 gives Wasm VMs (proxy-wasm-cpp-host), function by
//! function as `tests/wasi.rs` observes it in Envoy: `fd_write` to stdout/stderr becomes an
//! info/error log line, the environment is the plugin's `vm_config` environment, clocks and
//! randomness are real, stdout and stderr have write rights, there are no pre-opened
//! directories and no files, `poll_oneoff` returns at once without events. The other functions
//! Envoy provides answer its constant errno ([`ANSWERS`]); a module importing one it does not
//! provide (`proc_raise`, `path_link`, ...) is refused at load, as Envoy refuses it.

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::{Linker, Module, Val};

use crate::abi::LogLevel;
use crate::memory::{Ctx, Fail, HostResult, read, write, write_u32, write_u64};
use crate::state::HostState;

const MODULE: &str = "wasi_snapshot_preview1";
/// The functions [`add_to_linker`] defines.
const DEFINED: [&str; 12] = [
    "fd_fdstat_get",
    "poll_oneoff",
    "fd_write",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "random_get",
    "clock_time_get",
    "clock_res_get",
    "sched_yield",
    "proc_exit",
];
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_NOSYS: i32 = 52;
const ERRNO_NOTSUP: i32 = 58;

/// What Envoy 1.40 answers for the rest of what it provides, as observed with the arguments
/// `tests/wasi.rs` passes (other arguments are not probed).
const ANSWERS: &[(&str, i32)] = &[
    ("fd_advise", ERRNO_SUCCESS),
    ("fd_allocate", ERRNO_BADF),
    ("fd_close", ERRNO_SUCCESS),
    ("fd_datasync", ERRNO_BADF),
    ("fd_fdstat_set_flags", ERRNO_NOSYS),
    ("fd_filestat_get", ERRNO_BADF),
    ("fd_filestat_set_size", ERRNO_BADF),
    ("fd_filestat_set_times", ERRNO_BADF),
    ("fd_pread", ERRNO_NOSYS),
    ("fd_prestat_dir_name", ERRNO_NOSYS),
    ("fd_prestat_get", ERRNO_BADF),
    ("fd_pwrite", ERRNO_BADF),
    ("fd_read", ERRNO_NOSYS),
    ("fd_readdir", 20), // ENOTDIR
    ("fd_renumber", ERRNO_BADF),
    ("fd_seek", ERRNO_SUCCESS),
    ("fd_sync", ERRNO_BADF),
    ("fd_tell", ERRNO_BADF),
    ("path_create_directory", ERRNO_NOTSUP),
    ("path_filestat_get", ERRNO_NOTSUP),
    ("path_filestat_set_times", ERRNO_NOTSUP),
    ("path_open", 44), // ENOENT
    ("path_readlink", ERRNO_NOTSUP),
    ("path_remove_directory", ERRNO_NOTSUP),
    ("path_rename", ERRNO_NOTSUP),
    ("path_unlink_file", ERRNO_NOTSUP),
    ("sock_accept", ERRNO_NOTSUP),
    ("sock_recv", ERRNO_NOTSUP),
    ("sock_send", ERRNO_NOTSUP),
    ("sock_shutdown", ERRNO_NOTSUP),
];

fn errno(result: HostResult) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(ERRNO_SUCCESS),
        Err(Fail::Status(_)) => Ok(ERRNO_FAULT),
        Err(Fail::Trap(err)) => Err(err),
    }
}

fn fd_write(mut caller: Ctx<'_>, fd: i32, iovs: i32, iovs_len: i32, written_ptr: i32) -> HostResult {
    let mut data = Vec::new();
    for i in 0..iovs_len.max(0) {
        let iov = read(&caller, iovs.wrapping_add(i * 8), 8)?;
        let word = |at: usize| iov.get(at..at + 4).and_then(|b| b.try_into().ok()).map(i32::from_le_bytes);
        let (Some(ptr), Some(len)) = (word(0), word(4)) else {
            return Err(Fail::Status(ERRNO_FAULT));
        };
        data.extend_from_slice(&read(&caller, ptr, len)?);
    }
    let level = if fd == 2 { LogLevel::Error } else { LogLevel::Info };
    let text = String::from_utf8_lossy(&data);
    let text = text.trim_end_matches('\n');
    if !text.is_empty() {
        caller.data_mut().log(level, text.to_string());
    }
    write_u32(&mut caller, written_ptr, data.len() as u32)
}

fn environ(caller: &Ctx<'_>) -> Vec<Vec<u8>> {
    caller.data().env.iter().map(|(k, v)| format!("{k}={v}\0").into_bytes()).collect()
}

fn environ_get(mut caller: Ctx<'_>, environ_ptr: i32, buf_ptr: i32) -> HostResult {
    let mut at = buf_ptr;
    for (i, entry) in environ(&caller).iter().enumerate() {
        write_u32(&mut caller, environ_ptr.wrapping_add(i as i32 * 4), at as u32)?;
        write(&mut caller, at, entry)?;
        at = at.wrapping_add(entry.len() as i32);
    }
    Ok(())
}

fn environ_sizes_get(mut caller: Ctx<'_>, count_ptr: i32, size_ptr: i32) -> HostResult {
    let entries = environ(&caller);
    write_u32(&mut caller, count_ptr, entries.len() as u32)?;
    write_u32(&mut caller, size_ptr, entries.iter().map(Vec::len).sum::<usize>() as u32)
}

fn random_get(mut caller: Ctx<'_>, ptr: i32, len: i32) -> HostResult {
    let mut bytes = Vec::with_capacity(len.max(0) as usize);
    let state = std::collections::hash_map::RandomState::new();
    let mut counter = 0u64;
    while bytes.len() < len.max(0) as usize {
        let mut hasher = state.build_hasher();
        hasher.write_u64(counter);
        counter += 1;
        bytes.extend_from_slice(&hasher.finish().to_le_bytes());
    }
    bytes.truncate(len.max(0) as usize);
    write(&mut caller, ptr, &bytes)
}

fn clock_time_get(mut caller: Ctx<'_>, id: i32, ret: i32) -> wasmtime::Result<i32> {
    let nanos = match id {
        // realtime (with the harness's clock offset), then monotonic and CPU clocks.
        0 => caller.data().now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        1 => SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        _ => return Ok(ERRNO_NOTSUP),
    };
    errno(write_u64(&mut caller, ret, u64::try_from(nanos.as_nanos()).unwrap_or(u64::MAX)))
}

/// stdout and stderr: a character device with the right to write (`__WASI_RIGHTS_FD_WRITE`).
fn fd_fdstat_get(mut caller: Ctx<'_>, fd: i32, stat_ptr: i32) -> wasmtime::Result<i32> {
    if fd != 1 && fd != 2 {
        return Ok(ERRNO_BADF);
    }
    let mut stat = [0u8; 24];
    stat[8] = 64;
    errno(write(&mut caller, stat_ptr, &stat))
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "fd_fdstat_get", fd_fdstat_get)?;
    // Returns at once: no event happened (a sleep does not sleep).
    linker.func_wrap(MODULE, "poll_oneoff", |mut c: Ctx<'_>, _in: i32, _out: i32, _n: i32, events: i32| {
        errno(write_u32(&mut c, events, 0))
    })?;
    linker.func_wrap(MODULE, "fd_write", |c: Ctx<'_>, fd: i32, iovs: i32, n: i32, ret: i32| {
        if fd != 1 && fd != 2 {
            return Ok(ERRNO_BADF);
        }
        errno(fd_write(c, fd, iovs, n, ret))
    })?;
    linker.func_wrap(MODULE, "environ_get", |c: Ctx<'_>, e: i32, b: i32| errno(environ_get(c, e, b)))?;
    linker.func_wrap(MODULE, "environ_sizes_get", |c: Ctx<'_>, n: i32, s: i32| errno(environ_sizes_get(c, n, s)))?;
    linker.func_wrap(MODULE, "args_get", |_: Ctx<'_>, _: i32, _: i32| ERRNO_SUCCESS)?;
    linker.func_wrap(MODULE, "args_sizes_get", |mut c: Ctx<'_>, n: i32, s: i32| {
        errno(write_u32(&mut c, n, 0).and_then(|()| write_u32(&mut c, s, 0)))
    })?;
    linker.func_wrap(MODULE, "random_get", |c: Ctx<'_>, p: i32, l: i32| errno(random_get(c, p, l)))?;
    linker.func_wrap(MODULE, "clock_time_get", |c: Ctx<'_>, id: i32, _precision: i64, ret: i32| {
        clock_time_get(c, id, ret)
    })?;
    linker.func_wrap(MODULE, "clock_res_get", |mut c: Ctx<'_>, _id: i32, ret: i32| errno(write_u64(&mut c, ret, 1)))?;
    linker.func_wrap(MODULE, "sched_yield", |_: Ctx<'_>| ERRNO_SUCCESS)?;
    linker.func_wrap(MODULE, "proc_exit", |_: Ctx<'_>, code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::msg(format!("proc_exit({code})")))
    })?;
    Ok(())
}

/// Defines the WASI functions `module` imports that [`add_to_linker`] does not implement and
/// Envoy answers with a constant errno ([`ANSWERS`]). Others are left undefined: the module
/// does not load, as in Envoy.
pub fn stub_missing(linker: &mut Linker<HostState>, module: &Module) -> wasmtime::Result<()> {
    for import in module.imports() {
        if import.module() != MODULE || DEFINED.contains(&import.name()) {
            continue;
        }
        let Some(ty) = import.ty().func().cloned() else { continue };
        let Some(&(_, answer)) = ANSWERS.iter().find(|(name, _)| *name == import.name()) else { continue };
        let name = import.name().to_string();
        linker.func_new(MODULE, import.name(), ty, move |mut caller, _params, out| {
            if answer == ERRNO_NOSYS {
                caller.data_mut().unsupported_wasi.get_or_insert_with(|| name.clone());
            }
            if let Some(slot) = out.first_mut() {
                *slot = Val::I32(answer);
            }
            Ok(())
        })?;
    }
    Ok(())
}
