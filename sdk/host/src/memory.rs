//! Reading and writing guest memory from host functions. Every access is bounds-checked: a
//! bad pointer from the guest is a status (`InvalidMemoryAccess`), never a host panic.

use wasmtime::Caller;

use crate::abi::status;
use crate::state::HostState;

pub type Ctx<'a> = Caller<'a, HostState>;

/// Why a host function stops: a status for the guest, or a trap to propagate (a trap in a
/// nested guest call such as `proxy_on_memory_allocate`, or `proc_exit`).
pub enum Fail {
    Status(i32),
    Trap(wasmtime::Error),
}

impl From<wasmtime::Error> for Fail {
    fn from(err: wasmtime::Error) -> Self {
        Fail::Trap(err)
    }
}

pub type HostResult = Result<(), Fail>;

/// The status a host function returns to the guest.
pub fn finish(result: HostResult) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(status::OK),
        Err(Fail::Status(code)) => Ok(code),
        Err(Fail::Trap(err)) => Err(err),
    }
}

pub fn fail<T>(code: i32) -> Result<T, Fail> {
    Err(Fail::Status(code))
}

fn range(ptr: i32, len: i32) -> Result<std::ops::Range<usize>, Fail> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize).ok_or(Fail::Status(status::INVALID_MEMORY_ACCESS))?;
    Ok(start..end)
}

pub fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Fail> {
    let memory = caller.data().memory.ok_or(Fail::Status(status::INTERNAL_FAILURE))?;
    let range = range(ptr, len)?;
    memory.data(caller).get(range).map(<[u8]>::to_vec).ok_or(Fail::Status(status::INVALID_MEMORY_ACCESS))
}

pub fn read_string(caller: &Ctx<'_>, ptr: i32, len: i32) -> Result<String, Fail> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

pub fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> HostResult {
    let memory = caller.data().memory.ok_or(Fail::Status(status::INTERNAL_FAILURE))?;
    let range = range(ptr, bytes.len() as i32)?;
    let target = memory.data_mut(caller).get_mut(range).ok_or(Fail::Status(status::INVALID_MEMORY_ACCESS))?;
    target.copy_from_slice(bytes);
    Ok(())
}

pub fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

pub fn write_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into memory the guest allocates (`proxy_on_memory_allocate`) and writes the
/// pointer and size to `ptr_ptr` and `size_ptr`, as proxy-wasm hosts do.
pub fn copy_out(caller: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let mut pointer = 0u32;
    if !bytes.is_empty() {
        let malloc = caller.data().malloc.clone().ok_or(Fail::Status(status::INTERNAL_FAILURE))?;
        let len = i32::try_from(bytes.len()).map_err(|_| Fail::Status(status::BAD_ARGUMENT))?;
        let ptr = malloc.call(&mut *caller, len)?;
        if ptr == 0 {
            return fail(status::INTERNAL_FAILURE);
        }
        write(caller, ptr, bytes)?;
        pointer = ptr as u32;
    }
    write_u32(caller, ptr_ptr, pointer)?;
    write_u32(caller, size_ptr, bytes.len() as u32)
}
