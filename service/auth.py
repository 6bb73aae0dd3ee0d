"""Optional bearer-token authentication for inference and metadata (health stays open)."""

from __future__ import annotations

import hmac

from service.errors import Unauthenticated


class TokenAuth:
    """Checks ``Authorization: Bearer <token>``; with no token configured everything passes."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

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
