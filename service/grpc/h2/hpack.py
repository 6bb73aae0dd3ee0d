"""HPACK (RFC 7541) for Modelship's own gRPC server: a caching decoder and a stateless encoder.

Decoding goes through the ``hpack`` package (python-hyper's, MIT; one ``hpack.Decoder`` per
connection, since the dynamic table is per connection and every header block must be decoded in
arrival order), with a small per-connection cache keyed by the block's bytes: gRPC clients send
the same block call after call once its fields are in the dynamic table, so most calls skip the
decoder. A cached result is only valid while the dynamic table is what it was when the block was
decoded, so:

- a block is cached only if it does not change the table itself (no literal with incremental
  indexing, no dynamic table size update: checked by walking its representations), and
- the whole cache is dropped whenever a block that does change the table is decoded.

Encoding needs no library: the server only sends a few header sets, written as literals without
indexing (``:status 200`` as static index 8), so the encoder never touches the peer's view of our
dynamic table and a prebuilt block can be sent on any connection, any number of times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import hpack


class HpackError(Exception):
    """A header block that cannot be decoded: a connection error (COMPRESSION_ERROR)."""


# what a malformed block makes the hpack package raise (its own errors, or a value not UTF-8)
DECODE_ERRORS: tuple[type[Exception], ...] = (hpack.HPACKError, UnicodeDecodeError)
CACHE_LIMIT = 64  # header blocks kept per connection


def _read_int(block: bytes, i: int, prefix_bits: int) -> tuple[int, int]:
    """(value, index after it) of the integer at ``block[i]`` with an N-bit prefix (RFC 7541 5.1)."""
    mask = (1 << prefix_bits) - 1
    value = block[i] & mask
    i += 1
    if value < mask:
        return value, i
    shift = 0
    while True:
        b = block[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _skip_string(block: bytes, i: int) -> int:
    length, i = _read_int(block, i, 7)
    return i + length


def leaves_table_alone(block: bytes) -> bool:
    """Whether decoding ``block`` leaves the dynamic table as it was (``block`` already decoded fine)."""
    i, n = 0, len(block)
    while i < n:
        b = block[i]
        if b & 0x80:  # indexed header field
            _, i = _read_int(block, i, 7)
        elif b & 0xC0 == 0x40 or b & 0xE0 == 0x20:  # incremental indexing, table size update
            return False
        else:  # literal without indexing / never indexed, 4-bit name index (0: literal name)
            index, i = _read_int(block, i, 4)
            if index == 0:
                i = _skip_string(block, i)
            i = _skip_string(block, i)
    return True


class Decoder:
    """One connection's HPACK decoder, with the cache described in the module docstring."""

    def __init__(self) -> None:
        self._decoder = hpack.Decoder()
        self._cache: dict[bytes, list[tuple[str, str]]] = {}

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """The (name, value) pairs of one complete header block; raises :class:`HpackError`."""
        hit = self._cache.get(block)
        if hit is not None:
            return hit
        try:
            headers = cast(list[tuple[str, str]], self._decoder.decode(block))
        except DECODE_ERRORS as exc:
            raise HpackError(str(exc)) from None
        if leaves_table_alone(block):
            if len(self._cache) < CACHE_LIMIT:
                self._cache[block] = headers
        elif self._cache:
            self._cache.clear()
        return headers


def _int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """``value`` as an HPACK integer with an N-bit prefix, high bits of its first byte ``first``."""
    mask = (1 << prefix_bits) - 1
    if value < mask:
        return bytes([first | value])
    out = bytearray([first | mask])
    value -= mask
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("latin-1")  # header values are ASCII here (grpc-message is percent-encoded)
    return _int(len(raw), 7) + raw  # no Huffman coding


def encode(headers: Sequence[tuple[str, str]]) -> bytes:
    """A header block of literals without indexing (``:status 200`` indexed): stateless, reusable."""
    out = []
    for name, value in headers:
        if name == ":status" and value == "200":
            out.append(b"\x88")  # static table index 8
        elif name == ":status":
            out.append(b"\x08" + _string(value))  # literal without indexing, name = static index 8
        else:
            out.append(b"\x00" + _string(name) + _string(value))
    return b"".join(out)


def percent_encode(message: str) -> str:
    """``grpc-message`` encoding: UTF-8, then every byte outside printable ASCII and ``%`` as %XX."""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode())
