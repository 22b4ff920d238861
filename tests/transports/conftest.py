"""Fixtures starting real sshd and Apache servers on loopback (helpers and rationale: transportlib.py)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from machine import need, need_program

from transports.transportlib import (
    APACHE, HTTP_BACKEND, PASSWORDS, PEOPLE, SSHD, HTTPServer, SSHServer, keygen, apache_config, free_port,
    gated_server, htpasswd_line, running_sshd, stop, wait_for_port,
)

# alice, bob and dave may push (gitolite's rules); carol may only read: gitolite refuses her before git runs.
GITOLITE_CONF = """
repo llama-train
    RW+     =   alice bob dave
    R       =   carol
"""


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
    with running_sshd(etc, etc / "authorized_keys") as (port, log):
        yield SSHServer(server=srv, port=port, keys=ssh_keys, log=log, repos=root)


@pytest.fixture
def gitolite_server(tmp_path: Path, clean_env: Path, ssh_keys: dict[str, Path]) -> Iterator[SSHServer]:
    """A real gitolite (Debian's gitolite3) hosting the gated repository behind sshd: gitolite itself maps each key to
    its person (keydir/NAME.pub -> ``gitolite-shell NAME`` in authorized_keys), checks its own access rules and hands
    the push to git with ``GL_USER`` set. The hosting account is ours, with HOME in tmp_path."""
    need(SSHD.exists(), str(SSHD), "openssh-server")
    gitolite = need_program("gitolite", "gitolite3")
    home = tmp_path / "gitolite-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    srv, _ = gated_server(tmp_path, repos=home / "repositories")
    admin = keygen(tmp_path, "gitolite-admin")
    subprocess.run([gitolite, "setup", "-pk", str(admin.with_suffix(".pub"))], env=env, check=True,
                   capture_output=True, timeout=120)
    keydir = home / ".gitolite" / "keydir"
    for person in PEOPLE:
        (keydir / f"{person}.pub").write_text(ssh_keys[person].with_suffix(".pub").read_text())
    conf = home / ".gitolite" / "conf" / "gitolite.conf"
    conf.write_text(conf.read_text() + GITOLITE_CONF)
    for step in (["compile"], ["setup"], ["trigger", "POST_COMPILE"]):  # rules, hooks of every repo, authorized_keys
        subprocess.run([gitolite, *step], env=env, check=True, capture_output=True, timeout=120)
    assert (srv.bare / "hooks" / "update").exists(), "gitolite did not adopt the repository"
    assert "gatekeeper" in (srv.bare / "hooks" / "pre-receive").read_text()
    # sshd starts the forced command with the account's passwd HOME; gitolite finds its rc and repositories there.
    keys_file = home / ".ssh" / "authorized_keys"
    text, count = re.subn(r'command="(\S*gitolite-shell) ', rf'command="HOME={home} \1 ', keys_file.read_text())
    assert count == len(PEOPLE) + 1, text  # the people and the admin, each under the name gitolite gave the key
    keys_file.write_text(text)
    etc = tmp_path / "sshd"
    etc.mkdir()
    with running_sshd(etc, keys_file) as (port, log):
        yield SSHServer(server=srv, port=port, keys=ssh_keys, log=log, repos=home / "repositories")


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
