"""Free TCP ports for servers the tests start."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now: bind port 0, read what the kernel chose, let it go.

    Another process could take it before the caller binds it; callers that
    start a server on it retry on "address in use" (see ``SandboxProcess``).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
