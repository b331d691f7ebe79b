"""Signed, expiring access tokens for API and Socket.IO clients."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .errors import ServiceError

SALT = "access-token"


@dataclass(frozen=True)
class TokenClaims:
    user: str
    expires_at: float
    # a browser session's binding (TokenSigner.binding): the token is good only with that
    # session's cookie, and the session's log-out ends the connections it opened
    session_binding: str | None = None
    # an app JWT's `rooms` claim (app_tokens.py): the private rooms it may join
    room_grants: tuple[str, ...] = ()


class TokenSigner:
    def __init__(self, secret_key: str, ttl_s: int):
        self.ttl_s = ttl_s
        self._serializer = URLSafeTimedSerializer(secret_key, salt=SALT)
        self._binding_key = hmac.new(secret_key.encode(), b"session-binding",
                                     hashlib.sha256).digest()

    def binding(self, session_id: str) -> str:
        """What a token bound to a browser session carries instead of the session's id (which
        is the HttpOnly cookie: a token is readable, signed but not encrypted)."""
        return hmac.new(self._binding_key, session_id.encode(), hashlib.sha256).hexdigest()

    def binds(self, claims: TokenClaims, session_id: str | None) -> bool:
        """Whether `claims` are bound to the browser session `session_id`."""
        return (claims.session_binding is not None and session_id is not None
                and hmac.compare_digest(claims.session_binding, self.binding(session_id)))

    def issue(self, username: str, session_id: str | None = None) -> str:
        """A token for `username`; with `session_id`, bound to that browser session: good only
        together with its cookie, and ended with it (the page's connections)."""
        claims = {"u": username}
        if session_id is not None:
            claims["s"] = self.binding(session_id)
        return self._serializer.dumps(claims)

    def verify(self, token: object) -> TokenClaims:
        """Claims of a valid token; ServiceError('unauthorized') saying why otherwise."""
        if not isinstance(token, str) or not token or len(token) > 1024:
            raise ServiceError("unauthorized", "bad token")
        try:
            data, signed_at = self._serializer.loads(
                token, max_age=self.ttl_s, return_timestamp=True
            )
        except SignatureExpired:
            raise ServiceError("unauthorized", "token expired") from None
        except BadSignature:
            raise ServiceError("unauthorized", "bad token") from None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str):
            raise ServiceError("unauthorized", "bad token")
        binding = data.get("s")
        if binding is not None and not isinstance(binding, str):
            raise ServiceError("unauthorized", "bad token")
        return TokenClaims(data["u"], signed_at.timestamp() + self.ttl_s, binding)
