# ocho: one static binary for the Ochonetes proxy, its tools and the Ochopod agent.
BIN    := ocho
TARGET := x86_64-unknown-linux-musl
STATIC := target/$(TARGET)/release/$(BIN)
# ring's build script needs a musl C compiler (docs/platform.md §2).
export CC_x86_64_unknown_linux_musl ?= musl-gcc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the build, the tests and the image need.
PACKAGES := musl-tools zookeeper openjdk-17-jdk-headless util-linux file curl unzip jq umoci runc chromium buildah

IMAGE_DIR := target/image
IMAGE     ?= ocho:latest

.PHONY: deps build static check test bench run clean-run rootfs image image-oci image-test image-agent-oci image-buildah-test

deps:        ## system packages and the musl target (idempotent)
	@missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

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

run: deps build  ## a local proxy: ocho init as PID 1 of a private PID namespace, data in ./.run
	mkdir -p .run/zk
	unshare --user --map-root-user --pid --fork --mount-proc --kill-child \
	    target/debug/$(BIN) init --zk-data $(CURDIR)/.run/zk --zk-bind 127.0.0.1 \
	    --portal-bind 127.0.0.1:9000

clean-run:
	rm -rf .run
