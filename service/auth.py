"""Optional bearer-token authentication for inference and metadata (health stays open)."""

from __future__ import annotations

import hmac
from pathlib import Path

from service.errors import Unauthenticated


class TokenAuth:
    """Checks ``Authorization: Bearer <token>``; with no token configured everything passes."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @classmethod
    def from_sources(cls, token: str | None, token_file: Path | None) -> TokenAuth:
        if token_file is not None:
            text = token_file.read_text().strip()
            if not text:
                raise ValueError(f"auth token file {token_file} is empty")
            return cls(text)
        return cls(token or None)

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def check(self, authorization: bytes | None) -> None:
        """Raise :class:`Unauthenticated` unless ``authorization`` carries the token."""
        if self._token is None:
            return
        if not authorization or not authorization[:7].lower() == b"bearer ":
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        if not hmac.compare_digest(authorization[7:].strip(), self._token):
            raise Unauthenticated("invalid bearer token")
