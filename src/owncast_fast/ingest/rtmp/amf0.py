"""AMF0 encoding and decoding (Action Message Format AMF 0 specification, Adobe, December 2007), sans-I/O.

RTMP command (type 20) and data (type 18) messages are a plain sequence of AMF0 values: ``decode_all`` reads
them all, ``encode_all`` writes them. Python types map as follows:

    AMF0 number 0x00        float (int is accepted when encoding)
    boolean 0x01            bool
    string 0x02 / 0x0C      str (long string when the UTF-8 is over 65535 bytes)
    object 0x03             dict (typed objects 0x10 decode to dict too; the class name is dropped)
    null 0x05               None
    undefined 0x06          UNDEFINED (also what the "unsupported" marker 0x0D decodes to)
    reference 0x07          the object it refers to (decoding only)
    ECMA array 0x08         EcmaArray
    strict array 0x0A       list (tuple is accepted when encoding)
    date 0x0B               datetime, timezone-aware, UTC
    XML document 0x0F       str (decoding only)
    AMF3 switch 0x11        AMF3 scalars: undefined, null, booleans, integers, doubles, strings

Every malformed input raises ``ProtocolError`` naming what broke and the byte offset where it starts; the
decoder never lets an IndexError, struct.error or UnicodeDecodeError escape.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from owncast_fast.errors import ProtocolError

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED_VALUES",
    "UNDEFINED",
    "EcmaArray",
    "decode",
    "decode_all",
    "encode",
    "encode_all",
]

# Bound: containers nest at most this deep. Real RTMP commands nest two or three levels; the limit keeps
# both decoding and any later walk of the result far from Python's recursion limit.
MAX_DEPTH: Final = 64
# Bound: how many values references may add by pointing at earlier objects. Without it a few hundred bytes
# of nested references describe a structure with 2**64 nodes ("billion laughs"), and whatever walks it
# later (logging, JSON for webhooks) never finishes. Real clients do not send references at all.
MAX_EXPANDED_VALUES: Final = 1 << 16

NUMBER: Final = 0x00
BOOLEAN: Final = 0x01
STRING: Final = 0x02
OBJECT: Final = 0x03
MOVIECLIP: Final = 0x04
NULL: Final = 0x05
UNDEFINED_MARKER: Final = 0x06
REFERENCE: Final = 0x07
ECMA_ARRAY: Final = 0x08
OBJECT_END: Final = 0x09
STRICT_ARRAY: Final = 0x0A
DATE: Final = 0x0B
LONG_STRING: Final = 0x0C
UNSUPPORTED: Final = 0x0D
RECORDSET: Final = 0x0E
XML_DOCUMENT: Final = 0x0F
TYPED_OBJECT: Final = 0x10
AVMPLUS_OBJECT: Final = 0x11

_AMF3_UNDEFINED: Final = 0x00
_AMF3_NULL: Final = 0x01
_AMF3_FALSE: Final = 0x02
_AMF3_TRUE: Final = 0x03
_AMF3_INTEGER: Final = 0x04
_AMF3_DOUBLE: Final = 0x05
_AMF3_STRING: Final = 0x06
_AMF3_COMPLEX_NAMES: Final = {
    0x07: "XML document",
    0x08: "date",
    0x09: "array",
    0x0A: "object",
    0x0B: "XML",
    0x0C: "byte array",
    0x0D: "int vector",
    0x0E: "uint vector",
    0x0F: "double vector",
    0x10: "object vector",
    0x11: "dictionary",
}

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")


class _Undefined:
    """The AMF ``undefined`` value: distinct from ``None``, which is AMF ``null``."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()


class EcmaArray(dict[str, Any]):
    """An AMF0 ECMA array (associative array), kept apart from anonymous objects so it round-trips.

    ``onMetaData`` from OBS and ffmpeg arrives as one of these.
    """

    def __repr__(self) -> str:
        return f"EcmaArray({dict.__repr__(self)})"


class _Container:
    """A decoded object or array in the reference table, with the size it stands for."""

    __slots__ = ("height", "value", "weight")

    def __init__(self, value: Any) -> None:
        self.value = value
        # None while the container is still being decoded: a reference to it then would build a cycle.
        self.weight: int | None = None
        self.height = 0


class _Decoder:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = memoryview(data).cast("B")
        # "AMF0 defines a complex object as an anonymous object, a typed object, an array or an
        # ecma-array. If the exact same instance of a complex object appears more than once in an object
        # graph then it must be sent by reference. [...] Indices start at 0." The table lives for one
        # decode_all call (one RTMP message).
        self.references: list[_Container] = []
        # AMF3 strings met after 0x11 switches; kept per message too, which accepts encoders that reset
        # the table at each switch (they never refer back) as well as ones that do not.
        self.amf3_strings: list[str] = []
        self.expanded = 0

    # -- primitive reads ---------------------------------------------------------------------------------

    def _need(self, position: int, size: int, what: str, start: int) -> None:
        if position + size > len(self.data):
            raise ProtocolError(f"AMF0: truncated {what} at offset {start}")

    def _utf8(self, position: int, size: int, what: str, start: int) -> str:
        self._need(position, size, what, start)
        try:
            return str(self.data[position : position + size], "utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"AMF0: invalid UTF-8 in {what} at offset {start}") from None

    def _short_string(self, position: int, what: str, start: int) -> tuple[str, int]:
        self._need(position, 2, what, start)
        (size,) = _U16.unpack_from(self.data, position)
        return self._utf8(position + 2, size, what, start), position + 2 + size

    def _long_string(self, position: int, what: str, start: int) -> tuple[str, int]:
        self._need(position, 4, what, start)
        (size,) = _U32.unpack_from(self.data, position)
        return self._utf8(position + 4, size, what, start), position + 4 + size

    # -- values --------------------------------------------------------------------------------------------
    # Each reader returns (value, next position, weight, height): weight counts the values the result
    # stands for (references included, for MAX_EXPANDED_VALUES), height the containers nested in it.

    def value(self, position: int, depth: int) -> tuple[Any, int, int, int]:
        self._need(position, 1, "value", position)
        marker = self.data[position]
        body = position + 1
        if marker == NUMBER:
            self._need(body, 8, "number", position)
            return _DOUBLE.unpack_from(self.data, body)[0], body + 8, 1, 0
        if marker == BOOLEAN:
            self._need(body, 1, "boolean", position)
            # "boolean-type = boolean-marker U8 ; 0 is false, <> 0 is true"
            return self.data[body] != 0, body + 1, 1, 0
        if marker == STRING:
            text, end = self._short_string(body, "string", position)
            return text, end, 1, 0
        if marker == LONG_STRING:
            text, end = self._long_string(body, "long string", position)
            return text, end, 1, 0
        if marker == XML_DOCUMENT:
            text, end = self._long_string(body, "XML document", position)
            return text, end, 1, 0
        if marker == NULL:
            return None, body, 1, 0
        if marker in (UNDEFINED_MARKER, UNSUPPORTED):
            # "If a type cannot be serialized a special unsupported marker can be used in place of the
            # type." It carries no value, so it reads as undefined.
            return UNDEFINED, body, 1, 0
        if marker == DATE:
            return self._date(position)
        if marker == REFERENCE:
            return self._reference(position, depth)
        if marker in (OBJECT, ECMA_ARRAY, TYPED_OBJECT, STRICT_ARRAY):
            return self._container(marker, position, depth)
        if marker == AVMPLUS_OBJECT:
            amf3_value, end = self._amf3_value(body)
            return amf3_value, end, 1, 0
        if marker == OBJECT_END:
            raise ProtocolError(f"AMF0: object-end marker outside an object at offset {position}")
        if marker in (MOVIECLIP, RECORDSET):
            # "This type is not supported and is reserved for future use."
            raise ProtocolError(f"AMF0: reserved type marker 0x{marker:02x} at offset {position}")
        raise ProtocolError(f"AMF0: unknown type marker 0x{marker:02x} at offset {position}")

    def _date(self, position: int) -> tuple[datetime, int, int, int]:
        # "An ActionScript Date is serialized as the number of milliseconds elapsed since the epoch of
        # midnight on 1st Jan 1970 in the UTC time zone." "time-zone = S16 ; reserved, not supported
        # should be set to 0x0000"
        self._need(position + 1, _DATE.size, "date", position)
        milliseconds, _timezone = _DATE.unpack_from(self.data, position + 1)
        try:
            moment = _EPOCH + timedelta(milliseconds=milliseconds)
        except (OverflowError, ValueError):
            raise ProtocolError(f"AMF0: date out of range at offset {position}") from None
        return moment, position + 1 + _DATE.size, 1, 0

    def _reference(self, position: int, depth: int) -> tuple[Any, int, int, int]:
        self._need(position + 1, 2, "reference", position)
        (index,) = _U16.unpack_from(self.data, position + 1)
        if index >= len(self.references):
            raise ProtocolError(
                f"AMF0: reference {index} at offset {position} but only {len(self.references)} objects precede it"
            )
        target = self.references[index]
        if target.weight is None:
            raise ProtocolError(f"AMF0: reference {index} at offset {position} points into itself")
        if depth + target.height > MAX_DEPTH:
            raise ProtocolError(f"AMF0: nesting deeper than {MAX_DEPTH} levels")
        self.expanded += target.weight
        if self.expanded > MAX_EXPANDED_VALUES:
            raise ProtocolError(f"AMF0: references expand to more than {MAX_EXPANDED_VALUES} values")
        return target.value, position + 3, target.weight, target.height

    def _container(self, marker: int, position: int, depth: int) -> tuple[Any, int, int, int]:
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"AMF0: nesting deeper than {MAX_DEPTH} levels")
        body = position + 1
        value: Any
        if marker == STRICT_ARRAY:
            self._need(body, 4, "strict array", position)
            (count,) = _U32.unpack_from(self.data, body)
            body += 4
            # Every value takes at least its marker byte: a larger count cannot be honest.
            if count > len(self.data) - body:
                raise ProtocolError(
                    f"AMF0: strict array of {count} values at offset {position} "
                    f"cannot fit in the {len(self.data) - body} bytes left"
                )
            value = []
        elif marker == ECMA_ARRAY:
            # "associative-count" is read as a hint only: the object-end marker decides where the array
            # stops, so an encoder that miscounts (or writes 0) cannot desynchronise the rest of the message.
            self._need(body, 4, "ECMA array", position)
            body += 4
            value = EcmaArray()
        else:
            if marker == TYPED_OBJECT:
                _class_name, body = self._short_string(body, "typed object class name", body)
            value = {}
        entry = _Container(value)
        self.references.append(entry)
        if marker == STRICT_ARRAY:
            end, weight, height = self._items(value, body, count, depth + 1)
        else:
            end, weight, height = self._properties(value, body, depth + 1)
        entry.weight, entry.height = weight, height
        return value, end, weight, height

    def _items(self, items: list[Any], position: int, count: int, depth: int) -> tuple[int, int, int]:
        weight, height = 1, 1
        for _ in range(count):
            item, position, item_weight, item_height = self.value(position, depth)
            items.append(item)
            weight += item_weight
            height = max(height, item_height + 1)
        return position, weight, height

    def _properties(self, properties: dict[str, Any], position: int, depth: int) -> tuple[int, int, int]:
        # "object-property = (UTF-8 value-type) | (UTF-8-empty object-end-marker)": properties run until an
        # empty name followed by the object-end marker 0x09.
        weight, height = 1, 1
        while True:
            name, value_at = self._short_string(position, "property name", position)
            if name == "" and value_at < len(self.data) and self.data[value_at] == OBJECT_END:
                return value_at + 1, weight, height
            if value_at < len(self.data) and self.data[value_at] == OBJECT_END:
                raise ProtocolError(f"AMF0: object-end marker after property name at offset {position}")
            item, position, item_weight, item_height = self.value(value_at, depth)
            properties[name] = item
            weight += item_weight
            height = max(height, item_height + 1)

    # -- AMF3 scalars after the avmplus-object marker -----------------------------------------------------

    def _amf3_value(self, position: int) -> tuple[Any, int]:
        # "The presence of this marker signifies that the following Object is formatted in AMF 3."
        # Commands carry scalars at most; objects, arrays and the rest are refused.
        if position >= len(self.data):
            raise ProtocolError(f"AMF3: truncated value at offset {position}")
        marker = self.data[position]
        body = position + 1
        if marker == _AMF3_UNDEFINED:
            return UNDEFINED, body
        if marker == _AMF3_NULL:
            return None, body
        if marker in (_AMF3_FALSE, _AMF3_TRUE):
            return marker == _AMF3_TRUE, body
        if marker == _AMF3_INTEGER:
            raw, end = self._u29(body, "integer", position)
            # AMF3 integers are 29-bit two's complement: bit 28 is the sign.
            return float(raw - (1 << 29) if raw & (1 << 28) else raw), end
        if marker == _AMF3_DOUBLE:
            if body + 8 > len(self.data):
                raise ProtocolError(f"AMF3: truncated double at offset {position}")
            return _DOUBLE.unpack_from(self.data, body)[0], body + 8
        if marker == _AMF3_STRING:
            return self._amf3_string(body, position)
        name = _AMF3_COMPLEX_NAMES.get(marker)
        if name is not None:
            raise ProtocolError(f"AMF3: unsupported {name} value (marker 0x{marker:02x}) at offset {position}")
        raise ProtocolError(f"AMF3: unknown type marker 0x{marker:02x} at offset {position}")

    def _u29(self, position: int, what: str, start: int) -> tuple[int, int]:
        # "up to 4 bytes are required to hold the value however the high bit of the first 3 bytes are used
        # as flags to determine whether the next byte is part of the integer. With up to 3 bits of the 32
        # bits being used as flags, only 29 significant bits remain": the 4th byte gives all 8 bits.
        result = 0
        for index in range(4):
            if position + index >= len(self.data):
                raise ProtocolError(f"AMF3: truncated {what} at offset {start}")
            byte = self.data[position + index]
            if index == 3:
                return (result << 8) | byte, position + 4
            result = (result << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return result, position + index + 1
        raise AssertionError("unreachable: the fourth byte always returns")

    def _amf3_string(self, body: int, start: int) -> tuple[str, int]:
        # "U29S-ref = U29 ; The first (low) bit is a flag with value 0. The remaining 1 to 28 significant
        # bits are used to encode a string reference table index". "The empty String is never sent by
        # reference" and never enters the table.
        header, text_at = self._u29(body, "string", start)
        if not header & 1:
            index = header >> 1
            if index >= len(self.amf3_strings):
                raise ProtocolError(f"AMF3: string reference {index} at offset {start} is not in the table")
            return self.amf3_strings[index], text_at
        size = header >> 1
        if text_at + size > len(self.data):
            raise ProtocolError(f"AMF3: truncated string at offset {start}")
        try:
            text = str(self.data[text_at : text_at + size], "utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"AMF3: invalid UTF-8 in string at offset {start}") from None
        if text:
            self.amf3_strings.append(text)
        return text, text_at + size


def decode(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Any, int]:
    """Decode one AMF0 value starting at ``offset``; return it and the offset just past it."""
    value, end, _weight, _height = _Decoder(data).value(offset, 0)
    return value, end


def decode_all(data: bytes | bytearray | memoryview) -> list[Any]:
    """Decode every AMF0 value in a command or data message body (references resolve across them)."""
    decoder = _Decoder(data)
    values = []
    position = 0
    while position < len(decoder.data):
        value, position, _weight, _height = decoder.value(position, 0)
        values.append(value)
    return values


def encode(value: Any) -> bytes:
    """Encode one Python value as AMF0 (see the module docstring for the type mapping)."""
    out = bytearray()
    _encode_into(out, value, 0)
    return bytes(out)


def encode_all(*values: Any) -> bytes:
    """Encode several values back to back, as an RTMP command or data message body."""
    out = bytearray()
    for value in values:
        _encode_into(out, value, 0)
    return bytes(out)


def _encode_into(out: bytearray, value: Any, depth: int) -> None:
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, value))
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _DOUBLE.pack(float(value))
    elif isinstance(value, str):
        text = value.encode("utf-8")
        if len(text) <= 0xFFFF:
            out.append(STRING)
            out += _U16.pack(len(text))
        else:
            out.append(LONG_STRING)
            out += _U32.pack(len(text))
        out += text
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("AMF0 dates are instants: pass a timezone-aware datetime")
        # Whole microseconds first, so dates near the epoch keep sub-millisecond precision exactly.
        milliseconds = (value - _EPOCH) // timedelta(microseconds=1) / 1000
        out.append(DATE)
        out += _DATE.pack(milliseconds, 0)
    elif isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            raise ValueError(f"AMF0: nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, list | tuple):
            out.append(STRICT_ARRAY)
            out += _U32.pack(len(value))
            for item in value:
                _encode_into(out, item, depth + 1)
            return
        if isinstance(value, EcmaArray):
            out.append(ECMA_ARRAY)
            out += _U32.pack(len(value))
        else:
            out.append(OBJECT)
        for name, item in value.items():
            if not isinstance(name, str):
                raise TypeError(f"AMF0 property names are strings, got {type(name).__name__}")
            encoded_name = name.encode("utf-8")
            if len(encoded_name) > 0xFFFF:
                raise ValueError("AMF0: property name longer than 65535 bytes")
            out += _U16.pack(len(encoded_name)) + encoded_name
            _encode_into(out, item, depth + 1)
        out += b"\x00\x00" + bytes((OBJECT_END,))
    else:
        raise TypeError(f"AMF0 cannot encode {type(value).__name__}")
