"""Tests of the server-side policy (a package, so that its conftest is not imported as a top-level ``conftest``)."""
