"""How a case becomes bytes in a slot: orjson, chosen by measurement.

On a 2 KB case (tests/bench/bench_case_memory.py prints the figures) orjson
encodes about 3x and decodes about 2x faster than msgpack; msgpack's output is
~12 % smaller, which a 10 KB slot does not need, so msgpack is not a dependency.
The checksum (CRC-32) backs up the slot seqlock against torn reads.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import orjson

# Bound directly (no wrapper): these run on every store and get.
encode_case: Callable[[Any], bytes] = orjson.dumps
decode_case: Callable[[bytes], dict[str, Any]] = orjson.loads
checksum: Callable[[bytes], int] = zlib.crc32
EncodeError = orjson.JSONEncodeError  # a TypeError: what JSON cannot carry
