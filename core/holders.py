"""Who holds a lease: ``host:pid:nonce``, and whether such a holder is known to be gone.

Recorders hold streams and transcription workers hold jobs under leases in the catalog.
A holder that stops renewing loses its lease when it runs out; a holder on this machine
whose process no longer runs is gone at once, so its work can be taken without waiting.
"""

from __future__ import annotations

import os
import secrets
import socket

# The names this process gave out: a holder with this process's id that is not among them
# was an earlier process with the same id (a restarted container's process is pid 1 again).
_ISSUED: set[str] = set()


def holder_id() -> str:
    """A lease holder's name: host, process and a nonce (a process holds many leases)."""
    name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    _ISSUED.add(name)
    return name


def holder_gone(holder: str) -> bool:
    """Whether a lease holder is a process of this machine that no longer runs.

    Holders on other machines are never known to be gone: only their lease says so. (A
    container is a machine of its own here: its hostname is its own.)
    """
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return holder not in _ISSUED
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user
    return False
