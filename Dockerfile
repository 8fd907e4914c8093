# The zedctr image. Built offline (no registry):
#   podman build --pull=never --network=none -t zedctr CONTEXT
# FROM is a local base, made once per machine by tests/image/podman-env.sh
# (`mmdebstrap --variant=minbase bookworm` + `podman import`).
#
# The build context is assembled by tests/image/smoke.sh, not the repository root
# (so the context stays small and holds only what the image gets):
#   CONTEXT/Dockerfile      this file
#   CONTEXT/zedinit         binaries built on the host with `cargo build --release`;
#   CONTEXT/supctl, downloader, logtail, zedwatchdog, dnsmasq-render          a Debian 12 host's glibc matches this bookworm base
#   CONTEXT/rootfs/         the repository's rootfs/, laid at / (service definitions in
#                           rootfs/etc/zedctr/services/)
FROM localhost/zedctr-base:bookworm-dnsmasq

# Mount points for build.yml's binds and for zedinit's runtime directory. The root
# filesystem is read-only at run time (`readonly: true`), so they must exist in the
# image. Before the COPYs, so this layer stays cached when only the binaries change.
# Mount points of the services' own binds too (outside their private /run): the root is
# read-only at run time, so zedinit can't make them then (downloader: /persist/downloads;
# sshd-keys, sshd: /persist/ssh).
RUN mkdir -p /config /var/log/dom0 /hostfs /lib/modules /run/zedctr /etc/zedctr/services \
             /persist/downloads /persist/ssh /persist/zedctr/watchdog

COPY zedinit supctl downloader logtail zedwatchdog dnsmasq-render /usr/bin/
COPY rootfs/ /

# Service logs go to the host's /var/log/zedctr (the root is read-only).
CMD ["/usr/bin/zedinit", "--log-dir", "/var/log/dom0/zedctr", "--service-output", "stdout"]
