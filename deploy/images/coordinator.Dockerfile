# musafarm/coordinator: the musafarm-coordinator package on Debian 12.
# Built by scripts/deploy/images.sh FROM a debootstrap root file system it
# `docker import`s (nothing is pulled), with the packages in the context:
#   docker build --network host -f deploy/images/coordinator.Dockerfile \
#     --build-arg BASE=musafarm/debian:bookworm-KEY -t musafarm/coordinator:0.1.0 CONTEXT
ARG BASE
FROM ${BASE}
# uid/gid 10001 before the package: its sysusers entry keeps an existing user,
# and the Kubernetes manifests run as 10001.
RUN groupadd --system --gid 10001 musafarm \
 && useradd --system --uid 10001 --gid musafarm --home-dir /var/lib/musafarm \
      --shell /usr/sbin/nologin musafarm
COPY musafarm-coordinator_*.deb musafarm_*.deb /tmp/debs/
# tini: PID 1 forwards SIGTERM. The CLI comes along for `kubectl exec` and probes.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      /tmp/debs/musafarm-coordinator_*.deb /tmp/debs/musafarm_*.deb tini \
 && rm -rf /var/lib/apt/lists/* /tmp/debs \
 && install -d -o musafarm -g musafarm -m 0700 /var/lib/musafarm \
 && musafarm-coordinator --help >/dev/null
USER musafarm
WORKDIR /var/lib/musafarm
EXPOSE 7070
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/usr/bin/musafarm-coordinator", "--listen=0.0.0.0:7070", "--data-dir=/var/lib/musafarm"]
