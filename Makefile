# ocho: one static binary for the Ochonetes proxy, its tools and the Ochopod agent.
BIN    := ocho
TARGET := x86_64-unknown-linux-musl
STATIC := target/$(TARGET)/release/$(BIN)
# ring's build script needs a musl C compiler (docs/platform.md §2).
export CC_x86_64_unknown_linux_musl ?= musl-gcc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: what `make run` needs (ZooKeeper, a JVM, unshare), and what the static
# build, the tests and the images need besides.
RUN_PACKAGES  := zookeeper openjdk-17-jdk-headless util-linux
TEST_PACKAGES := musl-tools file curl unzip jq umoci runc chromium buildah zsh fish
PACKAGES      := $(RUN_PACKAGES) $(TEST_PACKAGES)

# `make run` / `make demo` addresses: the portal's and ZooKeeper's (host:port).
PORTAL ?= 127.0.0.1:9000
ZK     ?= 127.0.0.1:2181
ZK_HOST = $(firstword $(subst :, ,$(ZK)))
ZK_PORT = $(lastword $(subst :, ,$(ZK)))

IMAGE_DIR := target/image
IMAGE     ?= ocho:latest

.PHONY: deps run-deps build static check test bench run demo clean-run rootfs image image-oci image-test image-agent-oci image-buildah-test

# Installs the Debian packages of $(1) that are missing (idempotent).
define install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps:        ## every system package (run, build, tests, images) and the musl target (idempotent)
	$(call install,$(PACKAGES))
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

run-deps:    ## only what `make run` needs: ZooKeeper, a JVM, unshare
	$(call install,$(RUN_PACKAGES))

build:
	cargo build --locked

static: deps  ## the shippable artifact; fails unless statically linked
	cargo build --locked --release --target $(TARGET)
	file $(STATIC) | grep -q 'static-pie linked'
	ls -l $(STATIC)

check:       ## formatting and lints, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

test: deps   ## unit + integration tests against real ZooKeeper, processes and signals
	cargo test --locked

bench: static  ## the figures each issue asks for, measured on the static binary
	OCHO_BIN=$(CURDIR)/$(STATIC) cargo bench --locked

rootfs: static  ## the image's root filesystem, from this machine's Debian packages (offline)
	image/rootfs.sh $(STATIC) $(IMAGE_DIR)/rootfs

image-oci: rootfs  ## OCI layout + archive without any container engine
	image/oci.sh $(IMAGE_DIR)/rootfs $(IMAGE_DIR) $(IMAGE)

image-agent-oci: rootfs  ## the example workload image: ZooKeeper as an Ochopod cluster (image/agent)
	image/agent/build.sh $(IMAGE_DIR)/rootfs $(IMAGE_DIR)/agent

image: rootfs  ## build with whichever of docker, podman or buildah works here
	@if docker info >/dev/null 2>&1; then docker build -f image/Dockerfile -t $(IMAGE) $(IMAGE_DIR)/rootfs; \
	elif command -v podman >/dev/null; then podman build -f image/Dockerfile -t $(IMAGE) $(IMAGE_DIR)/rootfs; \
	elif command -v buildah >/dev/null; then buildah --storage-driver vfs bud -f image/Dockerfile -t $(IMAGE) $(IMAGE_DIR)/rootfs; \
	else echo "no docker engine, podman or buildah here: 'make image-oci' writes $(IMAGE_DIR)/ocho.oci.tar"; exit 1; fi

image-test: deps image-oci  ## run the image with runc as a real container (needs root)
	image/test.sh $(IMAGE_DIR)

image-buildah-test: deps rootfs  ## image/Dockerfile built by buildah (daemonless), then the same container test
	buildah --storage-driver vfs bud -q -f image/Dockerfile -t $(IMAGE) $(IMAGE_DIR)/rootfs
	rm -rf $(IMAGE_DIR)/buildah && mkdir -p $(IMAGE_DIR)/buildah
	buildah --storage-driver vfs push -q $(IMAGE) oci:$(IMAGE_DIR)/buildah/oci:latest
	image/test.sh $(IMAGE_DIR)/buildah

run: run-deps build  ## a local proxy (PORTAL=host:port ZK=host:port): ocho init as PID 1 of a private PID namespace, data in ./.run
	mkdir -p .run/zk
	@echo "starting the proxy: portal on $(PORTAL), ZooKeeper on $(ZK) (Ctrl-C stops it)"
	@echo "next, from another terminal:"
	@echo "  make demo PORTAL=$(PORTAL) ZK=$(ZK)     three local pods to look at"
	@echo "  target/debug/$(BIN) cli $(PORTAL)           the REPL ('help' lists the tools)"
	@echo "  or a browser at http://$(PORTAL)/"
	unshare --user --map-root-user --pid --fork --mount-proc --kill-child \
	    target/debug/$(BIN) init --zk-data $(CURDIR)/.run/zk --zk-bind $(ZK_HOST) \
	    --zk-port $(ZK_PORT) --portal-bind $(PORTAL)

demo: build  ## three local agents in cluster default.demo, against the proxy of `make run` (same PORTAL= ZK=)
	OCHO=target/debug/$(BIN) ZK=$(ZK) PORTAL=$(PORTAL) demo/run.sh

clean-run:
	rm -rf .run
