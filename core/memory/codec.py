"""How a case becomes bytes in a slot: orjson, chosen by measurement; and the slot checksum.

On a 2 KB case (tests/bench/bench_case_memory.py prints the figures) orjson
encodes about 3x and decodes about 2x faster than msgpack; msgpack's output is
~12 % smaller, which a 10 KB slot does not need, so msgpack is not a dependency.
The checksum backs up the slot seqlock against torn reads. It is XXH3-64: on a
2 KB case it takes ~0.07 us where zlib's CRC-32 takes ~0.53 us, and it runs on
every store and every get (about a tenth of a store+get+release cycle with CRC-32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import xxhash

# Bound directly (no wrapper): these run on every store and get.
encode_case: Callable[[Any], bytes] = orjson.dumps
decode_case: Callable[[bytes], dict[str, Any]] = orjson.loads
checksum: Callable[[bytes], int] = xxhash.xxh3_64_intdigest
EncodeError = orjson.JSONEncodeError  # a TypeError: what JSON cannot carry
