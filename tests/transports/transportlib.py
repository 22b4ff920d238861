"""Real transports on loopback: an OpenSSH server whose keys carry ``gatekeeper ssh-command`` forced commands, and
Apache running ``git http-backend`` behind basic authentication. Both serve one gated bare repository; people push with
the real ``git`` client, as themselves.

Both servers run this checkout's code: the hooks and the forced command go through a small wrapper that puts this
checkout first on ``sys.path`` (a worktree's venv may point elsewhere; in CI it is the same code either way). sshd and
Apache give their children a minimal environment, so the wrapper's absolute interpreter path is what makes it work.

Apache refuses to serve as root (a compile-time rule) and would switch to ``www-data``, which cannot read the test's
files or the interpreter under ``/root``. It is started in a user namespace instead, as uid 33 (``www-data``) mapped to
the test's own uid: an unprivileged web server whose CGI children can read and write exactly what the test owns.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gitserver import REPO_ROOT, Clone, Server, run_git, seed_content

SSHD = Path("/usr/sbin/sshd")
APACHE = Path("/usr/sbin/apache2")
APACHE_MODULES = Path("/usr/lib/apache2/modules")
HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
PEOPLE = ("alice", "bob", "carol", "dave")  # DEFAULT_POLICY: alice, bob review; dave may break glass; carol is infra
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before listening:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server not listening on 127.0.0.1:{port} after {START_TIMEOUT} s:\n{_tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:])
    except OSError:
        return "(no log)"


def this_checkout_wrappers(directory: Path) -> tuple[Path, Path]:
    """(python wrapper for the hook shims, ``gatekeeper`` wrapper for forced commands), both running this checkout."""
    bootstrap = (
        f"import sys; sys.path.insert(0, {json.dumps(str(REPO_ROOT))}); "
        "from gatekeeper.main import main; raise SystemExit(main())"
    )
    python = directory / "python-this-checkout"
    python.write_text(
        "#!/bin/sh\n# called by the shim as: python -I -m gatekeeper ARGS...\nshift 3\n"
        f"exec {sys.executable} -I -c '{bootstrap}' \"$@\"\n"
    )
    cli = directory / "gatekeeper-this-checkout"
    cli.write_text(f"#!/bin/sh\nexec {sys.executable} -I -c '{bootstrap}' \"$@\"\n")
    for path in (python, cli):
        path.chmod(0o755)
    return python, cli


def gated_server(root: Path, repos: Path | None = None) -> tuple[Server, Path]:
    """A seeded bare repository (in ``repos``, by default ``root/srv``) with the gate (DEFAULT_POLICY, enforce) whose
    hooks run this checkout."""
    srv = Server(repos or root / "srv")
    seed_content(srv.clone("seeder"))
    srv.write_policy()
    srv.install()
    python, cli = this_checkout_wrappers(root)
    hook = srv.bare / "hooks" / "pre-receive"
    lines = hook.read_text().splitlines(keepends=True)
    patched = [f"GATEKEEPER_PYTHON={python}\n" if ln.startswith("GATEKEEPER_PYTHON=") else ln for ln in lines]
    assert patched != lines
    hook.write_text("".join(patched))
    (srv.bare / "hooks" / "post-receive").unlink()  # outcomes are covered by tests/e2e; one Python start per push
    return srv, cli


# --------------------------------------------------------------------------------------------------- SSH


@dataclass
class SSHServer:
    server: Server
    port: int
    keys: dict[str, Path]
    log: Path
    repos: Path  # the --root of the forced commands

    def ssh_argv(self, person: str, *extra: str) -> list[str]:
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.keys[person]), "-p", str(self.port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", *extra,
        ]

    def ssh_command(self, person: str, *extra: str) -> str:
        """For ``core.sshCommand`` (git runs it through the shell)."""
        return shlex.join(self.ssh_argv(person, *extra))

    def url(self, path: str = "llama-train.git") -> str:
        return f"root@127.0.0.1:{path}"

    def clone(self, person: str, name: str | None = None, *, url: str | None = None) -> Clone:
        return clone_as(self.server, person, url or self.url(), {"core.sshCommand": self.ssh_command(person)}, name)

    def run(self, person: str, command: str | None, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [*self.ssh_argv(person, *extra), "root@127.0.0.1"]
        if command is not None:
            argv.append(command)
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)


@contextmanager
def running_sshd(etc: Path, authorized_keys: Path) -> Iterator[tuple[int, Path]]:
    """sshd on a free loopback port, keys from ``authorized_keys``; yields (port, log). Clients may send ``GL_*`` and
    friends (a careless AcceptEnv): what runs behind a key must not believe any of them."""
    host_key = keygen(etc, "ssh_host_ed25519_key")
    port = free_port()
    config = etc / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {authorized_keys}\n"
        f"PidFile {etc / 'sshd.pid'}\nStrictModes no\nPermitUserEnvironment no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
        "AcceptEnv GATEKEEPER_* GL_* GITEA_* REMOTE_USER GIT_* LANG LC_*\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = etc / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(SSHD), "-f", str(config), "-D", "-e", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, log)
        yield port, log
    finally:
        stop(proc)


def keygen(directory: Path, name: str) -> Path:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True,
                   timeout=30)
    return key


# -------------------------------------------------------------------------------------------------- HTTP

PASSWORDS = {person: f"{person}-secret-{i}" for i, person in enumerate(PEOPLE)}


@dataclass
class HTTPServer:
    server: Server
    port: int
    log: Path
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    def url(self, person: str | None, password: str | None = None) -> str:
        auth = "" if person is None else f"{person}:{password or self.passwords[person]}@"
        return f"http://{auth}127.0.0.1:{self.port}/git/llama-train.git"

    def clone(self, person: str, name: str | None = None) -> Clone:
        return clone_as(self.server, person, self.url(person), {}, name)


def htpasswd_line(user: str, password: str) -> str:
    """An Apache ``{SHA}`` entry (mod_authn_file reads it); enough for a test. Real servers: ``htpasswd -B``."""
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{user}:{{SHA}}{digest}\n"


def apache_config(etc: Path, port: int, project_root: Path) -> str:
    modules = ("mpm_prefork", "authn_core", "authn_file", "authz_core", "authz_user", "auth_basic", "alias", "cgi",
               "env")
    loads = "".join(f"LoadModule {m}_module {APACHE_MODULES / f'mod_{m}.so'}\n" for m in modules)
    return (
        f"ServerRoot {etc}\n{loads}"
        f"Listen 127.0.0.1:{port}\nServerName 127.0.0.1\nPidFile {etc / 'httpd.pid'}\n"
        f"DefaultRuntimeDir {etc}\nMutex file:{etc} default\nErrorLog {etc / 'error.log'}\nLogLevel warn\n"
        f"DocumentRoot {etc}\nTimeout 60\n"
        f"SetEnv GIT_PROJECT_ROOT {project_root}\nSetEnv GIT_HTTP_EXPORT_ALL 1\n"
        f"ScriptAlias /git/ {HTTP_BACKEND}/\n"
        "<Location /git/>\n"
        "    AuthType Basic\n    AuthName \"git\"\n"
        f"    AuthBasicProvider file\n    AuthUserFile {etc / 'htpasswd'}\n"
        "    Require valid-user\n"
        "</Location>\n"
    )


def clone_as(srv: Server, person: str, url: str, config: dict[str, str], name: str | None) -> Clone:
    path = srv.root / (name or f"{person}-clone")
    options = [arg for key, value in config.items() for arg in ("-c", f"{key}={value}")]
    run_git("clone", "-q", *options, url, str(path))
    for key, value in {**config, "user.name": person, "user.email": f"{person}@example.com"}.items():
        run_git("config", key, value, cwd=path)
    return Clone(path, url)
