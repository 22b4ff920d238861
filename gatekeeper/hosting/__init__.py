"""Putting the gate on servers: hook shims (``install``), Gitea/GitLab layouts (``forges``), the plain-SSH forced
command (``sshcommand``) and forge API clients for ``trust sync`` (``forgeapi``, ``trustsync``; the only users of
``requests``). The push path never imports this package.
"""
