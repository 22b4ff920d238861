"""Fixtures starting real sshd and Apache servers on loopback (helpers and rationale: transportlib.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from machine import need, need_program

from transports.transportlib import (
    APACHE, HTTP_BACKEND, PASSWORDS, PEOPLE, SSHD, HTTPServer, SSHServer, keygen, apache_config, free_port,
    gated_server, htpasswd_line, stop, wait_for_port,
)


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("ssh-keys")
    return {person: keygen(directory, person) for person in (*PEOPLE, "reader", "envprobe")}


@pytest.fixture
def ssh_server(tmp_path: Path, clean_env: Path, ssh_keys: dict[str, Path]) -> Iterator[SSHServer]:
    need(SSHD.exists(), str(SSHD), "openssh-server")
    srv, cli = gated_server(tmp_path)
    etc = tmp_path / "sshd"
    etc.mkdir()
    host_key = keygen(etc, "ssh_host_ed25519_key")
    root = srv.bare.parent
    lines = []
    for person in PEOPLE:
        command = f"{cli} ssh-command {person} --root {root}"
        lines.append(f'restrict,command="{command}" {ssh_keys[person].with_suffix(".pub").read_text().strip()}')
    reader = f"{cli} ssh-command bob --root {root} --read-only"
    lines.append(f'restrict,command="{reader}" {ssh_keys["reader"].with_suffix(".pub").read_text().strip()}')
    probe = ssh_keys["envprobe"].with_suffix(".pub").read_text().strip()
    lines.append(f'restrict,command="env" {probe}')
    (etc / "authorized_keys").write_text("\n".join(lines) + "\n")
    port = free_port()
    config = etc / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {etc / 'authorized_keys'}\n"
        f"PidFile {etc / 'sshd.pid'}\nStrictModes no\nPermitUserEnvironment no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
        # A careless AcceptEnv: clients may send these; the forced command must not believe any of them.
        "AcceptEnv GATEKEEPER_* GL_* GITEA_* REMOTE_USER GIT_* LANG LC_*\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = etc / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(SSHD), "-f", str(config), "-D", "-e", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, log)
        yield SSHServer(server=srv, port=port, keys=ssh_keys, log=log, repos=root)
    finally:
        stop(proc)


@pytest.fixture
def http_server(tmp_path: Path, clean_env: Path) -> Iterator[HTTPServer]:
    need(APACHE.exists(), str(APACHE), "apache2")
    need(HTTP_BACKEND.exists(), str(HTTP_BACKEND), "git")
    unshare = need_program("unshare", "util-linux")  # Apache runs unprivileged in a user namespace
    srv, _ = gated_server(tmp_path)
    etc = tmp_path / "httpd"
    etc.mkdir()
    (etc / "htpasswd").write_text("".join(htpasswd_line(p, pw) for p, pw in PASSWORDS.items()))
    port = free_port()
    config = etc / "httpd.conf"
    config.write_text(apache_config(etc, port, srv.bare.parent))
    log = etc / "error.log"
    # Apache never serves as root; as uid 33 in a user namespace mapped to our uid it needs no file permission changes.
    argv = [unshare, "--user", "--map-user=33", "--map-group=33", str(APACHE), "-X", "-f", str(config)]
    with (etc / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"})
    try:
        wait_for_port(port, proc, etc / "stdout.log")
        yield HTTPServer(server=srv, port=port, log=log)
    finally:
        stop(proc)
