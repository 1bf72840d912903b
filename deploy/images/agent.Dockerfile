# musafarm/agent: the musafarm-agent package and Debian's docker CLI on Debian 12.
# Built by scripts/deploy/images.sh FROM a debootstrap root file system it
# `docker import`s (nothing is pulled), with the packages in the context.
# Debian 12 ships /usr/bin/docker only inside docker.io (with the engine, unused
# here: the agent drives the node's dockerd through its mounted socket), which
# is the package's Recommends; /usr/bin/docker is where the agent looks.
ARG BASE
FROM ${BASE}
COPY musafarm-agent_*.deb musafarm_*.deb /tmp/debs/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      /tmp/debs/musafarm-agent_*.deb /tmp/debs/musafarm_*.deb docker.io tini git \
 && rm -rf /var/lib/apt/lists/* /tmp/debs \
 && test -x /usr/bin/docker \
 && musafarm-agent --help >/dev/null
# Runs as root: it drives the node's docker socket and GPUs (deploy/kubernetes/agent.yaml).
WORKDIR /var/lib/musafarm-agent
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/usr/bin/musafarm-agent", "--help"]
