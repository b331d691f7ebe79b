"""Verifying the JWTs an app's backend issues (PROTOCOL.md, "Tokens from your app"), with PyJWT.

Guarantees
- The algorithm is the key's, never the token's: APP_JWT_SECRET verifies HS256 only, each key
  of APP_JWT_KEYS the one algorithm of its type (app_keys.py: RSA RS256, EC P-256 ES256). A
  token whose `alg` is anything else, `none` included, is refused before a key is touched, and
  PyJWT is given that one algorithm: an RS256 public key can never serve as an HS256 secret.
- A token with a `kid` is verified with the JWKS key of that `kid` only, and refused when no key
  has it; a token without one, with the unnamed key of its algorithm (the secret, a PEM key, a
  JWKS's only key).
- Accepted only with: `sub` a user name (names.USER, not a reserved one) and `exp` a number not
  past; `nbf` and `iat` not in the future; APP_JWT_LEEWAY_S of clock skew either way; `aud`
  naming APP_JWT_AUDIENCE and `iss` equal to APP_JWT_ISSUER when they are set (unchecked when
  not); `rooms`, when present, a list of room names and prefixes ending in `*`; the whole token
  at most MAX_TOKEN_CHARS.
- The claims last until `exp` plus the leeway: the moment this verifier stops accepting the
  token is the moment a connection that brought it expires.
- Every refusal is ServiceError('unauthorized') whose message says which problem it was. No
  message holds the token, a key, or a claim's value.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError

from .app_keys import PublicKey, VerifyingKey, load_keys
from .errors import ServiceError
from .primitives.names import ROOM_GRANT_RULE, USER_RULE, is_reserved, is_room_grant, is_user
from .settings import Settings
from .tokens import TokenClaims

MAX_TOKEN_CHARS = 8192
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
SHOWN_ALG = re.compile(r"[A-Za-z0-9+_-]{1,16}")  # an `alg` safe to name in a message


def looks_like_jwt(token: object) -> bool:
    """Whether `token` is a JWT in compact form: three base64url parts, the first a JSON object
    with `alg`. The service's own tokens (tokens.py) have three parts too, but no `alg`."""
    if not isinstance(token, str):
        return False
    parts = token.split(".", 3)
    if len(parts) != 3 or not BASE64URL.fullmatch(parts[0]) or len(parts[0]) > MAX_TOKEN_CHARS:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return False
    return isinstance(header, dict) and "alg" in header


def refused(problem: str) -> ServiceError:
    return ServiceError("unauthorized", problem)


class AppTokens:
    """The app's JWTs, as the settings describe them: `verify` turns one into its claims."""

    def __init__(self, *, secret: str | None = None, keys: tuple[PublicKey, ...] = (),
                 audience: str | None = None, issuer: str | None = None, leeway_s: int = 0):
        self.audience, self.issuer, self.leeway_s = audience, issuer, leeway_s
        self._named: dict[str, PublicKey] = {key.kid: key for key in keys if key.kid is not None}
        # algorithm -> the key a token without a `kid` is verified with
        self._unnamed: dict[str, str | VerifyingKey] = {
            key.algorithm: key.key for key in keys if key.kid is None}
        if secret:
            self._unnamed["HS256"] = secret
        self.algorithms = frozenset({*self._unnamed, *(k.algorithm for k in keys)})

    @classmethod
    def from_settings(cls, settings: Settings) -> AppTokens | None:
        """The verifier the settings ask for, its keys loaded (SettingsError naming
        APP_JWT_KEYS if they cannot be); None when app JWTs are off."""
        if not settings.app_jwts:
            return None
        return cls(secret=settings.app_jwt_secret,
                   keys=load_keys(settings.app_jwt_keys) if settings.app_jwt_keys else (),
                   audience=settings.app_jwt_audience, issuer=settings.app_jwt_issuer,
                   leeway_s=settings.app_jwt_leeway_s)

    def verify(self, token: object) -> TokenClaims:
        """The claims of a valid app JWT: the user, until when, the rooms it grants.
        ServiceError('unauthorized') saying which problem it has otherwise."""
        if not isinstance(token, str) or not token:
            raise refused("bad token: a JWT is a string")
        if len(token) > MAX_TOKEN_CHARS:
            raise refused(f"token too large: at most {MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:  # PyJWT's messages hold no token data
            raise refused(f"malformed token: {str(error)[:120]}") from None
        key, algorithm = self._key_for(header.get("alg"), header.get("kid"))
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["sub", "exp"], "verify_aud": self.audience is not None,
                         "enforce_minimum_key_length": True})
        except jwt.PyJWTError as error:
            raise refused(why(error)) from None
        return TokenClaims(user=subject(claims), expires_at=expiry(claims) + self.leeway_s,
                           room_grants=room_grants(claims))

    def _key_for(self, alg: Any, kid: Any) -> tuple[str | VerifyingKey, str]:
        """The key and algorithm a token with this header is verified with; never the
        algorithm the token asks for unless it is its key's."""
        if not isinstance(alg, str) or alg not in self.algorithms:
            shown = alg if isinstance(alg, str) and SHOWN_ALG.fullmatch(alg) else "(unreadable)"
            raise refused(f"algorithm {shown} not accepted: this service takes "
                          f"{', '.join(sorted(self.algorithms))}")
        if kid is not None:
            named = self._named.get(kid)
            if named is None:
                raise refused("unknown kid: no key of APP_JWT_KEYS has it")
            if named.algorithm != alg:
                raise refused(f"algorithm {alg} not accepted for that kid: its key verifies "
                              f"{named.algorithm} only")
            return named.key, alg
        unnamed = self._unnamed.get(alg)
        if unnamed is None:
            raise refused(f"missing kid: the {alg} keys of APP_JWT_KEYS are named, and the "
                          f"token's header must name one")
        return unnamed, alg


def why(error: jwt.PyJWTError) -> str:
    """A refusal's reason, from PyJWT's exception (whose messages hold no token data)."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "token not yet valid: its nbf or iat is in the future"
    if isinstance(error, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing claim {error.claim}"
    if isinstance(error, jwt.InvalidAudienceError):
        return "wrong audience (aud)"
    if isinstance(error, jwt.InvalidIssuerError):
        return "wrong issuer (iss)"
    if isinstance(error, InvalidSubjectError):
        return f"bad sub: it must be {USER_RULE}"
    if isinstance(error, jwt.InvalidIssuedAtError):
        return "bad iat: it must be a number"
    if isinstance(error, jwt.InvalidKeyError):
        return "the key for this token cannot verify it"
    if isinstance(error, jwt.DecodeError):
        return f"malformed token: {str(error)[:120]}"
    return f"bad token: {str(error)[:120]}"


def subject(claims: dict[str, Any]) -> str:
    sub = claims["sub"]
    if not is_user(sub):
        raise refused(f"bad sub: it must be {USER_RULE}")
    if is_reserved(sub):
        raise refused("bad sub: that name is reserved")
    return sub


def expiry(claims: dict[str, Any]) -> float:
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise refused("bad exp: it must be a number")
    return float(exp)


def room_grants(claims: dict[str, Any]) -> tuple[str, ...]:
    if "rooms" not in claims:
        return ()
    rooms = claims["rooms"]
    if not isinstance(rooms, list) or not all(is_room_grant(room) for room in rooms):
        raise refused(f"bad rooms claim: it must be a list, each item {ROOM_GRANT_RULE}")
    return tuple(rooms)
