"""Signed, expiring access tokens for API and Socket.IO clients."""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .errors import ServiceError

SALT = "access-token"


@dataclass(frozen=True)
class TokenClaims:
    user: str
    expires_at: float
    session: str | None = None  # a browser session's id: its log-out ends the connection too


class TokenSigner:
    def __init__(self, secret_key: str, ttl_s: int):
        self.ttl_s = ttl_s
        self._serializer = URLSafeTimedSerializer(secret_key, salt=SALT)

    def issue(self, username: str, session: str | None = None) -> str:
        """A token for `username`; with `session`, bound to that browser session (the page's
        connections then end when it logs out)."""
        claims = {"u": username} if session is None else {"u": username, "s": session}
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
        session = data.get("s")
        if session is not None and not isinstance(session, str):
            raise ServiceError("unauthorized", "bad token")
        return TokenClaims(data["u"], signed_at.timestamp() + self.ttl_s, session)
