"""Exceptions shared by the sans-I/O cores, the Cython modules and their pure-Python twins."""

from __future__ import annotations

from collections.abc import Sequence


class ProtocolError(Exception):
    """The peer broke a wire protocol or one of our hard limits; the message names the limit.

    Raised by the RTMP chunk decoder, AMF0, the handshake, FLV parsing and the RTMP session.
    The adapter that owns the socket logs the message once and closes that connection.

    `partial` holds what the failing call completed before the error (chunk messages, session
    events): good media that arrived in the same network read as the bad bytes is still
    delivered before the connection closes.
    """

    partial: Sequence[object] = ()
