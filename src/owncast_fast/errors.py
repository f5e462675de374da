"""Exceptions shared by the sans-I/O cores, the Cython modules and their pure-Python twins."""


class ProtocolError(Exception):
    """The peer broke a wire protocol or one of our hard limits; the message names the limit.

    Raised by the RTMP chunk decoder, AMF0, the handshake, FLV parsing and the RTMP session.
    The adapter that owns the socket logs the message once and closes that connection.
    """
