#!/usr/bin/env bash
# Module sizes of the `wasm` profile builds (opt-level z, LTO, stripped): raw and gzip -9 bytes,
# and the SDK hello-world against the same behaviour written on the raw proxy-wasm crate.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=target/wasm32-wasip1/wasm
size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
echo "| module | bytes | gzip -9 bytes |"
echo "|---|---:|---:|"
for f in raw_hello hello_world http_call request_block basic_auth key_auth custom_response transformer; do
  [ -f "$dir/$f.wasm" ] && echo "| $f | $(size $dir/$f.wasm) | $(gz $dir/$f.wasm) |"
done
raw=$(size $dir/raw_hello.wasm); sdk=$(size $dir/hello_world.wasm)
rawgz=$(gz $dir/raw_hello.wasm); sdkgz=$(gz $dir/hello_world.wasm)
echo
python3 -c "print(f'SDK hello-world / raw hello: {$sdk/$raw:.3f}x raw bytes, {$sdkgz/$rawgz:.3f}x gzip bytes')"
