"""The store's ACL users a test fleet runs as: one per role, with its password."""

from __future__ import annotations

NAMES = {"member": "medops-member", "reader": "medops-reader", "operator": "medops-operator",
         "oncall": "medops-oncall"}
PASSWORDS = {"member": "member-secret", "reader": "reader-secret", "operator": "operator-secret",
             "oncall": "oncall-secret"}


def as_user(url: str, role: str) -> str:
    """The store's URL with a role's user and password in it."""
    return url.replace("redis://", f"redis://{NAMES[role]}:{PASSWORDS[role]}@")
