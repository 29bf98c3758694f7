"""Password hashing for recipe users: only a crypt(3) SHA-512 hash is ever stored.

Python's `crypt` module is deprecated (gone in 3.13) and passlib is unmaintained, so this uses
`openssl passwd -6`, reading the password on stdin so it never shows in a process listing.
"""
from __future__ import annotations

import subprocess


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("password must not be empty")
    if "\n" in password:
        raise ValueError("password must be a single line")
    try:
        out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True,
                             text=True, timeout=10, check=True)
    except FileNotFoundError:
        raise ValueError("cannot hash the password: openssl is not installed") from None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        raise ValueError(f"cannot hash the password with openssl: {err}") from None
    hashed = out.stdout.strip()
    if not hashed.startswith("$6$"):
        raise ValueError("openssl did not return a SHA-512 crypt hash")
    return hashed
