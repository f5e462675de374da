"""How datastore values are encoded: JSON (orjson), not Go gob.

Owncast stores every setting `encoding/gob`-encoded (reference §6.3), which no Python library reads
reliably. owncast-fast deliberately stores JSON instead: readable with `sqlite3`/`psql`, queryable
(PostgreSQL keeps it as JSONB), and exactly what the admin API sends and returns anyway. An existing
Owncast database is therefore not opened in place; importing one is a separate, one-off job.

What round-trips: str, int (64-bit), float, bool, None, and lists and str-keyed dicts of those.
orjson also *encodes* datetimes, UUIDs and dataclasses; they come back as their JSON form (str, dict).
PostgreSQL's JSONB additionally forgets the order of object keys, rejects the character U+0000 inside
strings, and prints numbers without exponents, so a float of magnitude 1e16 or more (which orjson writes
as `1e+16`) comes back as the int of the same decimal digits. Callers must not rely on any of these;
settings never need them.
"""

from __future__ import annotations

from typing import Any

import orjson


def encode_value(value: Any) -> str:
    """JSON text for `value`; raises orjson.JSONEncodeError (a TypeError) when it has none."""
    return orjson.dumps(value).decode()


def decode_value(text: str | bytes) -> Any:
    """The value whose JSON text is `text`."""
    return orjson.loads(text)
