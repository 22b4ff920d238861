"""``gatekeeper install|uninstall [REPO] [--gitea ROOT|APP_INI] [--gitlab-custom-hooks-dir DIR]``.

One bare repository (the gate in ``hooks/``, existing hooks chained), every repository of a Gitea/Forgejo server (the
gate in each ``hooks/<hook>.d/``), or GitLab's server-wide custom hooks directory (``<dir>/<hook>.d/``). Forge
installs are :func:`gatekeeper.hosting.forges.run_forge` with ``fix=True``, i.e. exactly what ``gatekeeper sync`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gatekeeper.cli.forges import add_forge_options, print_report


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("repo", type=Path, nargs="?", help="path of the (bare) repository")
    add_forge_options(parser)
    if verb == "install":
        parser.add_argument("--config", required=True, type=Path, help="server-side policy file")
        parser.add_argument(
            "--python", help="interpreter the hooks run (default: this one, recorded as an absolute path)",
        )


def run(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.cli._output import UsageError

    chosen = [x for x in (args.repo, args.gitea, args.gitlab_custom_hooks_dir) if x is not None]
    if len(chosen) != 1:
        raise UsageError("give exactly one of REPO, --gitea or --gitlab-custom-hooks-dir",
                         hint=f"gatekeeper {verb} --help")
    if args.repo is None:
        return _run_forge(args, verb)
    from gatekeeper.hosting import install as installer

    if verb == "uninstall":
        actions = installer.uninstall(args.repo)
        for action in actions or ["nothing to do: no gatekeeper hooks found"]:
            print(action)
        return 0
    report = installer.install(args.repo, config=args.config, python=args.python)
    for path in report.written:
        print(f"installed {path}")
    for path in report.chained:
        print(f"chained   {path} (the previous hook; it must pass too)")
    if report.key_created:
        print(f"created   audit signing key {report.key_created} (public key: {report.key_created}.pub)")
    print(f"audit log {report.log}")
    return 0


def _run_forge(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.hosting import forges

    if verb == "uninstall":
        if args.gitea is not None:
            _, sites = forges.gitea_sites(args.gitea)
        else:
            sites = [forges.gitlab_site(args.gitlab_custom_hooks_dir)]
        removed = [path for site in sites for path in forges.remove_site(site)]
        for path in removed:
            print(f"removed {path}")
        print(f"uninstall: removed {len(removed)} gate file(s) from {len(sites)} location(s)")
        return 0
    report = forges.run_forge(
        gitea=args.gitea, gitlab=args.gitlab_custom_hooks_dir, config=args.config, python=args.python, fix=True,
    )
    return print_report(report, verb)
