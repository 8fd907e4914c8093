# The zedctr image, built from source the way EVE's pkg/*/Dockerfiles are: a builder
# stage compiles the workspace, the final stage holds only the runtime (Debian bookworm
# with the shipped services' packages), the binaries and rootfs/.
#
# With a registry (a user, linuxkit, EVE's pkg/zedctr/): from the repository root,
#   docker build -t zedctr .            (or podman build; `linuxkit pkg build .`)
# Offline (tests/image/smoke.sh): both bases are made locally and the crates vendored:
#   cargo vendor --locked vendor
#   podman build --pull=never --network=none \
#       --build-arg BUILDER_IMAGE=localhost/zedctr-builder:... \
#       --build-arg RUNTIME_IMAGE=localhost/zedctr-base:... -t zedctr .
# The context is the repository, narrowed by .dockerignore to what the build needs.

# The builder: a Rust toolchain of rust-toolchain.toml's version (another rustc names
# symbols differently, and zedinit's link order, supervisor/zedinit/zedinit.order,
# would no longer fit) with a C compiler (ring) on bookworm, whose glibc the runtime has.
ARG BUILDER_IMAGE=docker.io/library/rust:1.95.0-bookworm
# The runtime: Debian bookworm. The packages below are installed when missing (the
# offline test's base already holds them, so nothing is fetched there).
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# ONE build of every binary of the workspace: features are unified over what is built,
# and zedinit's link order lists symbol names of exactly this build (scripts/test builds
# the same on the host and checks the order). Crates come from vendor/ when the context
# has it (the offline build: source replacement, no network), else from crates.io
# (`cargo fetch`, before the offline build). The target directory is a cache mount, so
# a rebuild compiles only what changed; the binaries are copied out of it.
RUN --mount=type=cache,id=zedctr-target,target=/src/target \
    set -eu; \
    if [ -d vendor ]; then \
        mkdir -p .cargo; \
        printf '[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "/src/vendor"\n' \
            > .cargo/config.toml; \
    else \
        cargo fetch --locked; \
    fi; \
    cargo build --release --locked --offline --workspace --bins; \
    mkdir -p /out; \
    for b in zedinit supctl downloader logtail zedwatchdog dnsmasq-render localds; do \
        cp target/release/$b /out/; \
    done

FROM ${RUNTIME_IMAGE} AS runtime
# The shipped services' packages (rootfs/etc/zedctr/services/):
#   dnsmasq-base     the dnsmasq of dnsmasq-render's generated dnsmasq@<bridge> (its
#                    maintainer script makes the `dnsmasq` user it drops to);
#   openssh-server   sshd and sshd-keys' ssh-keygen (openssh-client);
#   cron, logrotate  crond and its one job;
#   ethtool          tcp-offload;
#   ca-certificates  the downloader's trust roots.
# No ssh host key in any layer (sshd-keys makes each device's at its first start), and
# no cron job of the packages' own (the image's /etc/crontab is the only one).
RUN set -eu; \
    pkgs="dnsmasq-base openssh-server cron logrotate ethtool ca-certificates"; \
    missing=""; \
    for p in $pkgs; do \
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/sbin/policy-rc.d; \
    fi; \
    rm -f /etc/ssh/ssh_host_*; \
    rm -rf /etc/cron.d /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly /etc/cron.yearly; \
    mkdir /etc/cron.d

# Mount points for build.yml's binds and for zedinit's runtime directory. The root
# filesystem is read-only at run time (`readonly: true`), so they must exist in the
# image. Before the COPYs, so this layer stays cached when only the binaries change.
# Mount points of the services' own binds too (their roots are the image's, without the
# container's binds), since zedinit can't make them in a read-only root: the downloader's
# /persist/downloads, sshd-keys' and sshd's /persist/ssh, zedwatchdog's
# /persist/zedctr/watchdog, tcp-offload's /config/zedctr (crond's /tmp and /var/log exist).
RUN mkdir -p /config/zedctr /var/log/dom0 /persist/downloads /persist/ssh \
             /persist/zedctr/watchdog /run/zedctr /etc/zedctr/services

# localds is not a service: operators run it (`localds resolve NAME.local`, see
# docs/local-datastore.md) to see what the downloader would find on the bridges.
COPY --from=build /out/ /usr/bin/
COPY rootfs/ /

# Service logs go to the host's /var/log/zedctr (the root is read-only).
CMD ["/usr/bin/zedinit", "--log-dir", "/var/log/dom0/zedctr", "--service-output", "stdout"]
