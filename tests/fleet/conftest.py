"""Fixtures for the fleet (PostgreSQL) tests: a real server per session, a fresh database per test."""

from __future__ import annotations

from pgserver import fleet_db, pg_server  # noqa: F401  (pytest fixtures)
