# The zedctr image. Built offline (no registry):
#   podman build --pull=never --network=none -t zedctr CONTEXT
# FROM is a local base, made once per machine by tests/image/podman-env.sh
# (`mmdebstrap --variant=minbase bookworm` with the shipped services' packages: dnsmasq,
# OpenSSH, cron, logrotate, ethtool, CA certificates; no ssh host key and no cron job of
# the packages' own: + `podman import`). Its tag names what is in it, so a machine's cached base is
# never taken for another.
#
# The build context is assembled by tests/image/smoke.sh, not the repository root
# (so the context stays small and holds only what the image gets):
#   CONTEXT/Dockerfile      this file
#   CONTEXT/zedinit         binaries built on the host with `cargo build --release`;
#   CONTEXT/supctl, downloader, logtail, zedwatchdog, dnsmasq-render, localds
#                           (a Debian 12 host's glibc matches this bookworm base)
#   CONTEXT/rootfs/         the repository's rootfs/, laid at / (service definitions in
#                           rootfs/etc/zedctr/services/, /etc/crontab, scripts in
#                           /usr/lib/zedctr)
FROM localhost/zedctr-base:bookworm-dnsmasq-openssh-cron-logrotate-ethtool-cacerts

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
COPY zedinit supctl downloader logtail zedwatchdog dnsmasq-render localds /usr/bin/
COPY rootfs/ /

# Service logs go to the host's /var/log/zedctr (the root is read-only).
CMD ["/usr/bin/zedinit", "--log-dir", "/var/log/dom0/zedctr", "--service-output", "stdout"]
