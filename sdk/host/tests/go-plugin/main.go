// A proxy-wasm plugin written in Go against the raw ABI (//go:wasmexport, //go:wasmimport,
// standard library only), built the way Higress builds its Go plugins:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o go_plugin.wasm .
//
// Its configuration is a path prefix: requests under it get a local 403 reply, the others go
// upstream with `x-go-plugin: <configuration length>`.
package main

import (
	"strconv"
	"strings"
	"unsafe"
)

func main() {}

const (
	mapRequestHeaders = 0
	bufferPluginConfig = 7
)

// Buffers handed to the host, kept reachable until it is done with them.
var allocated = map[uintptr][]byte{}

var denyPrefix string

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(kind, start, size uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(kind uint32, key unsafe.Pointer, keySize uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(kind uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_send_local_response
func proxySendLocalResponse(status uint32, details unsafe.Pointer, detailsSize uint32, body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpcStatus int32) uint32

//go:wasmexport proxy_abi_version_0_2_1
func proxyAbiVersion() {}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	buf := make([]byte, size)
	ptr := uintptr(unsafe.Pointer(&buf[0]))
	allocated[ptr] = buf
	return uint32(ptr)
}

// taken returns a buffer the host filled and lets it be collected.
func taken(ptr, size uint32) string {
	if ptr == 0 {
		return ""
	}
	buf := allocated[uintptr(ptr)]
	delete(allocated, uintptr(ptr))
	if int(size) > len(buf) {
		return ""
	}
	return string(buf[:size])
}

func ptrOf(s string) unsafe.Pointer {
	if s == "" {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(context, parent uint32) {}

//go:wasmexport proxy_on_vm_start
func proxyOnVmStart(root, size uint32) uint32 { return 1 }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(root, size uint32) uint32 {
	var ptr, n uint32
	if size > 0 && proxyGetBufferBytes(bufferPluginConfig, 0, size, unsafe.Pointer(&ptr), unsafe.Pointer(&n)) != 0 {
		return 0
	}
	denyPrefix = strings.TrimSpace(taken(ptr, n))
	return 1
}

func header(name string) string {
	var ptr, n uint32
	if proxyGetHeaderMapValue(mapRequestHeaders, ptrOf(name), uint32(len(name)), unsafe.Pointer(&ptr), unsafe.Pointer(&n)) != 0 {
		return ""
	}
	return taken(ptr, n)
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(context, headers, endOfStream uint32) uint32 {
	if denyPrefix != "" && strings.HasPrefix(header(":path"), denyPrefix) {
		body := "denied by go-plugin\n"
		proxySendLocalResponse(403, nil, 0, ptrOf(body), uint32(len(body)), nil, 0, -1)
		return 1
	}
	name, value := "x-go-plugin", strconv.Itoa(len(denyPrefix))
	proxyAddHeaderMapValue(mapRequestHeaders, ptrOf(name), uint32(len(name)), ptrOf(value), uint32(len(value)))
	return 0
}

//go:wasmexport proxy_on_done
func proxyOnDone(context uint32) uint32 { return 1 }
