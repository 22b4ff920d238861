"""gatekeeper: a server-side review gate for Git repositories that hold ML code and models.

Kept empty on purpose: the pre-receive hook imports this package on every push, so nothing here may import anything.
"""

__version__ = "0.1.0"
