module wasmplug.dev/go-plugin

go 1.24
