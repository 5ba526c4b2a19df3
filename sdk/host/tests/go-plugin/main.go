// A proxy-wasm plugin written in Go against the raw ABI (//go:wasmexport, //go:wasmimport,
// standard library only), built the way Higress builds its Go plugins:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o go_plugin.wasm .
//
// Its configuration is a path prefix: requests under it get a local 403 reply, the others go
// upstream with `x-go-plugin: <configuration length>`. Besides:
//   - the body of a request under /upper is held whole and passed on in upper case;
//   - a request under /call waits for a GET /token to cluster outbound|8080||token.static
//     (timeout: header x-go-timeout-ms, default 5000) and goes on with the answer's x-token
//     as x-go-token; a failed call answers 504 "callout failed".
package main

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unsafe"
)

func main() {}

const (
	mapRequestHeaders      = 0
	mapCallResponseHeaders = 6
	bufferRequestBody      = 0
	bufferPluginConfig     = 7
	tokenCluster           = "outbound|8080||token.static"
)

// Buffers handed to the host, kept reachable until it is done with them.
var allocated = map[uintptr][]byte{}

var denyPrefix string

// The stream each callout was made for: Envoy answers callouts on the root context.
var callers = map[uint32]uint32{}

// Each stream's path, kept from the headers phase: once that phase continued, Envoy no longer
// lets the plugin read the request headers.
var paths = map[uint32]string{}

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(kind, start, size uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(kind uint32, key unsafe.Pointer, keySize uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(kind uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_set_buffer_bytes
func proxySetBufferBytes(kind, start, size uint32, data unsafe.Pointer, dataSize uint32) uint32

//go:wasmimport env proxy_http_call
func proxyHttpCall(cluster unsafe.Pointer, clusterSize uint32, headers unsafe.Pointer, headersSize uint32, body unsafe.Pointer, bodySize uint32, trailers unsafe.Pointer, trailersSize uint32, timeout uint32, token unsafe.Pointer) uint32

//go:wasmimport env proxy_set_effective_context
func proxySetEffectiveContext(context uint32) uint32

//go:wasmimport env proxy_continue_stream
func proxyContinueStream(kind uint32) uint32

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

func mapValue(kind uint32, name string) string {
	var ptr, n uint32
	if proxyGetHeaderMapValue(kind, ptrOf(name), uint32(len(name)), unsafe.Pointer(&ptr), unsafe.Pointer(&n)) != 0 {
		return ""
	}
	return taken(ptr, n)
}

func header(name string) string { return mapValue(mapRequestHeaders, name) }

func addHeader(name, value string) {
	proxyAddHeaderMapValue(mapRequestHeaders, ptrOf(name), uint32(len(name)), ptrOf(value), uint32(len(value)))
}

func localReply(status uint32, body string) {
	proxySendLocalResponse(status, nil, 0, ptrOf(body), uint32(len(body)), nil, 0, -1)
}

// pairs serializes a header map as proxy-wasm does: the count, each name's and value's
// length, then every name and value followed by a NUL.
func pairs(kv ...string) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(kv)/2))
	for _, s := range kv {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(s)))
	}
	for _, s := range kv {
		out = append(append(out, s...), 0)
	}
	return out
}

func callToken(context uint32) bool {
	timeout, err := strconv.Atoi(header("x-go-timeout-ms"))
	if err != nil {
		timeout = 5000
	}
	headers := pairs(":method", "GET", ":path", "/token", ":authority", "token")
	cluster := tokenCluster
	var token uint32
	status := proxyHttpCall(ptrOf(cluster), uint32(len(cluster)), unsafe.Pointer(&headers[0]), uint32(len(headers)), nil, 0, nil, 0, uint32(timeout), unsafe.Pointer(&token))
	if status != 0 {
		return false
	}
	callers[token] = context
	return true
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(context, headers, endOfStream uint32) uint32 {
	path := header(":path")
	paths[context] = path
	if denyPrefix != "" && strings.HasPrefix(path, denyPrefix) {
		localReply(403, "denied by go-plugin\n")
		return 1
	}
	addHeader("x-go-plugin", strconv.Itoa(len(denyPrefix)))
	if strings.HasPrefix(path, "/call") {
		if !callToken(context) {
			localReply(500, "callout refused\n")
		}
		return 1
	}
	return 0
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(context, size, endOfStream uint32) uint32 {
	if !strings.HasPrefix(paths[context], "/upper") {
		return 0
	}
	if endOfStream == 0 {
		return 1
	}
	var ptr, n uint32
	if proxyGetBufferBytes(bufferRequestBody, 0, size, unsafe.Pointer(&ptr), unsafe.Pointer(&n)) != 0 {
		return 0
	}
	upper := strings.ToUpper(taken(ptr, n))
	proxySetBufferBytes(bufferRequestBody, 0, size, ptrOf(upper), uint32(len(upper)))
	return 0
}

//go:wasmexport proxy_on_http_call_response
func proxyOnHttpCallResponse(root, token, headers, bodySize, trailers uint32) {
	stream, ok := callers[token]
	delete(callers, token)
	if !ok || proxySetEffectiveContext(stream) != 0 {
		return
	}
	if headers == 0 {
		localReply(504, "callout failed\n")
		return
	}
	addHeader("x-go-token", mapValue(mapCallResponseHeaders, "x-token"))
	proxyContinueStream(0)
}

//go:wasmexport proxy_on_done
func proxyOnDone(context uint32) uint32 {
	delete(paths, context)
	return 1
}
