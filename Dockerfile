# gatekeeper CLI and hooks in one image.
#
#   docker build -t gatekeeper .
#   docker run --rm -v /srv/audit:/audit:ro gatekeeper audit verify --log /audit/audit.jsonl
#
# The hooks installed from this image run /opt/gatekeeper/venv/bin/python, so install into repositories from a
# container that sees them at the same paths as the git server (see README, "Docker").
FROM python:3.11-slim-bookworm

# git: the hooks run under git-receive-pack and `install` edits repository config;
# openssh-client: ssh-keygen signs approvals (`gatekeeper approve`).
# Debian's security updates move these versions, so they are not pinned (pin the base image digest instead).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/gatekeeper
COPY setup.cfg setup.py README.md ./
COPY gatekeeper ./gatekeeper
RUN python -m venv /opt/gatekeeper/venv \
    && /opt/gatekeeper/venv/bin/pip install --no-cache-dir /opt/gatekeeper \
    && /opt/gatekeeper/venv/bin/gatekeeper --version

ENV PATH=/opt/gatekeeper/venv/bin:$PATH
# Gitea's and GitLab's git user is uid 1000 in their official images; audits need no privileges at all.
USER 1000:1000
ENTRYPOINT ["gatekeeper"]
CMD ["--help"]
