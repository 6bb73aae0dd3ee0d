"""HPACK for Modelship's gRPC server: the caching decoder agrees with the plain one, always.

The ``hpack`` package's decoder is the oracle: the same header blocks, fed in the same order,
must decode the same through the cache, including a block whose bytes stay the same while its
meaning shifts with the dynamic table; and the stateless encoder's blocks decode with it.
"""

from __future__ import annotations

import hpack as oracle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.grpc.h2 import hpack


def test_only_blocks_that_leave_the_table_alone_are_cached() -> None:
    encoder = oracle.Encoder()
    first = encoder.encode([(":path", "/a"), ("x-k", "v1")])  # incremental indexing
    again = encoder.encode([(":path", "/a"), ("x-k", "v1")])  # all indexed now
    insert = encoder.encode([("x-k", "v2")])  # a new entry shifts every dynamic index
    assert not hpack.leaves_table_alone(first)
    assert hpack.leaves_table_alone(again)
    assert not hpack.leaves_table_alone(insert)
    cached, plain = hpack.Decoder(), oracle.Decoder()
    for block in (first, again, again, insert, again, again):  # the same bytes, other meanings
        assert cached.decode(block) == plain.decode(block)
    assert cached.decode(again) != [(":path", "/a"), ("x-k", "v1")]  # after the shift


HEADER = st.tuples(
    st.sampled_from([":path", "x-a", "x-b", "grpc-timeout", "user-agent"]),
    st.sampled_from(["1", "2", "/p/M", "x" * 40, "5S"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(HEADER, min_size=1, max_size=6), min_size=1, max_size=30), st.integers(0, 4096))
def test_the_cache_agrees_with_the_plain_decoder_on_any_sequence(
    blocks: list[list[tuple[str, str]]], table: int
) -> None:
    encoder = oracle.Encoder()
    cached, plain = hpack.Decoder(), oracle.Decoder()
    for i, fields in enumerate(blocks):
        if i == len(blocks) // 2:
            encoder.header_table_size = table  # a table size update mid-way
        block = encoder.encode(fields)
        assert cached.decode(block) == plain.decode(block) == fields


def test_a_malformed_block_is_an_hpack_error() -> None:
    with pytest.raises(hpack.HpackError):
        hpack.Decoder().decode(b"\xff\xff\xff")  # an index that never ends
    with pytest.raises(hpack.HpackError):
        hpack.Decoder().decode(b"\xbe")  # dynamic index 62 of an empty table


def test_encoded_blocks_decode_with_the_oracle_and_leave_its_table_alone() -> None:
    fields = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-message", "x" * 300)]
    block = hpack.encode(fields)
    decoder = oracle.Decoder()
    assert decoder.decode(block) == decoder.decode(block) == fields
    assert hpack.leaves_table_alone(block)
    assert oracle.Decoder().decode(hpack.encode([(":status", "404")])) == [(":status", "404")]


@pytest.mark.parametrize(
    ("text", "wire"),
    [("plain", "plain"), ("100%", "100%25"), ("é\n", "%C3%A9%0A"), ("", "")],
)
def test_grpc_message_is_percent_encoded(text: str, wire: str) -> None:
    assert hpack.percent_encode(text) == wire
