"""Kernel deadlines for every connection of the web listener (Robyn 0.88 sets none of its own).

Theory of operation. Robyn gives Python no handle on a connection's socket: no websocket ping
frames, no read deadline, no bound on what it buffers for a peer that stopped reading. Owncast
pings each chat socket every 54 s and drops it after 60 s without an answer, and drops a socket
it cannot write to. We get the same outcomes from the kernel, on the listening socket, once at
start-up: Linux copies a listener's TCP options into every connection it accepts, so

* `TCP_USER_TIMEOUT` (the web timeout, 60 s by default): a connection whose sent data stays
  unacknowledged, or unsent behind a zero window (a peer that does not read), for that long is
  aborted. Robyn's next write fails, it closes the socket, and the chat hub forgets the client:
  what Robyn buffers for a slow consumer is bounded by that much of the chat's traffic.
* TCP keepalive (`SO_KEEPALIVE`, first probe after the timeout less six seconds, then every two):
  an idle connection whose peer vanished (a closed laptop, a dropped NAT mapping) is found by the
  probes and, with the user timeout above, aborted about one timeout after its last sign of life,
  where it used to linger until TCP's own limits (~15 min).

The listener is found among this process's descriptors by its port (a duplicate is opened, set
and closed: Robyn's descriptor is never touched). Nothing per request or per socket runs in
Python. Linux only; elsewhere, or if the listener cannot be found, a warning says so and the
server runs without the deadlines.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

KEEPALIVE_LEAD_S = 6  # first keepalive probe this long before the timeout (Owncast: ping 54 s, drop 60 s)
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_PROBES = 3


def find_listener(port: int, fd_dir: str = "/proc/self/fd") -> socket.socket | None:
    """A duplicate of this process's listening TCP socket on `port`; the caller closes it."""
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return None
    for name in names:
        try:
            if not os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except (OSError, ValueError):
            continue  # closed since the listing, or not ours to read
        try:
            if (
                sock.type == socket.SOCK_STREAM
                and sock.family in (socket.AF_INET, socket.AF_INET6)
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                and sock.getsockname()[1] == port
            ):
                return sock
        except OSError:
            pass
        sock.close()
    return None


def apply_deadlines(port: int, timeout_s: float) -> bool:
    """Set the user timeout and keepalive on the listener of `port`; False if it was not found."""
    sock = find_listener(port)
    if sock is None:
        log.warning(
            "web listener on port %d not found: connections get no kernel deadlines (dead chat peers and "
            "clients that stop reading are dropped only when TCP gives up)",
            port,
        )
        return False
    with sock:
        idle = max(1, round(timeout_s) - KEEPALIVE_LEAD_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, round(timeout_s * 1000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
    log.debug("web connections: %g s user timeout, keepalive after %d s idle", timeout_s, idle)
    return True
