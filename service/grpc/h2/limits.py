"""What one HTTP/2 connection of Modelship's gRPC server allows its peer (from grpc's channel args)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection allows its peer."""

    max_concurrent_streams: int = 1000
    max_receive_message: int = 4 << 20
    max_send_message: int = 2**31 - 1
    max_header_list: int = 16 << 10  # decoded header bytes (+32 per field) per request
    stream_window: int = 1 << 20
    connection_window: int = 4 << 20
