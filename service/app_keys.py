"""The public keys of an app's RS256 and ES256 JWTs (APP_JWT_KEYS), read once, at start.

The file is a PEM public key, or a JWKS (`{"keys": [...]}`, or one JWK alone).

Guarantees
- Each key is pinned to the one algorithm of its type: an RSA public key (2048 bits or more)
  verifies RS256 only, an EC P-256 public key ES256 only. What a token says cannot change that
  (app_tokens.py picks the algorithm from the key).
- Anything else stops the start (SettingsError naming APP_JWT_KEYS and the key): a file that
  cannot be read or parsed, a private key (the service needs the public half only), a symmetric
  `oct` key (the shared secret is APP_JWT_SECRET), another key type or curve, a shorter RSA key,
  a JWK whose `alg` names another algorithm, two keys of a JWKS with the same `kid` or without
  one. A key the operator listed is never skipped quietly, as `PyJWKSet` would; keys marked for
  encryption (`"use": "enc"`) are no signing keys and are left out.
- A JWKS names its keys by `kid` (one key alone may go without); a PEM key has no name.
- Messages name the problem, never a key's content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK, PyJWTError

from .settings import SettingsError

MAX_FILE_BYTES = 1_000_000
MIN_RSA_BITS = 2048
VerifyingKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class PublicKey:
    kid: str | None  # None: the key has no name (a PEM key, or a JWKS's only key)
    algorithm: str  # "RS256" or "ES256": the only one this key verifies
    key: VerifyingKey


def load_keys(path: str) -> tuple[PublicKey, ...]:
    """The keys in the file at `path`; SettingsError naming APP_JWT_KEYS if it cannot serve."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise refused(f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise refused(f"{path} is larger than {MAX_FILE_BYTES} bytes: no key file is")
    if data.lstrip().startswith(b"-----BEGIN"):
        return (PublicKey(None, *pinned(pem_key(data, path), f"the PEM key in {path}")),)
    return jwks_keys(data, path)


def refused(problem: str) -> SettingsError:
    return SettingsError(f"APP_JWT_KEYS: {problem}")


def pinned(key: Any, what: str) -> tuple[str, VerifyingKey]:
    """The one algorithm `key` verifies, and the key; SettingsError if it verifies none."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise refused(f"{what} is an RSA key of {key.key_size} bits: at least "
                          f"{MIN_RSA_BITS} are needed")
        return "RS256", key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise refused(f"{what} is an EC key on {key.curve.name}: ES256 needs P-256")
        return "ES256", key
    if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise refused(f"{what} is a private key: give the service the public key only")
    raise refused(f"{what} is neither an RSA public key (RS256) nor an EC P-256 public key "
                  f"(ES256)")


def pem_key(data: bytes, path: str) -> Any:
    if b"PRIVATE KEY" in data:
        raise refused(f"{path} holds a private key: give the service the public key only")
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise refused(f"{path} is no PEM public key (-----BEGIN PUBLIC KEY-----) that this "
                      f"service can read") from None


def jwks_keys(data: bytes, path: str) -> tuple[PublicKey, ...]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise refused(f"{path} is neither a PEM public key nor a JWKS (JSON)") from None
    if isinstance(document, dict) and "kty" in document:
        document = {"keys": [document]}  # one JWK alone
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise refused(f"{path} is no JWKS: an object whose `keys` is a list of JWKs")
    entries = [entry for entry in entries if entry.get("use") != "enc"]
    if not entries:
        raise refused(f"{path} holds no signing key")
    keys = tuple(jwk_key(entry, index, path) for index, entry in enumerate(entries))
    named = [key.kid for key in keys if key.kid is not None]
    if len(keys) > 1 and len(named) < len(keys):
        raise refused(f"{path} holds several keys: each needs a `kid`, which a JWT names")
    if len(set(named)) < len(named):
        raise refused(f"{path} has two keys with the same `kid`")
    return keys


def jwk_key(entry: dict[str, Any], index: int, path: str) -> PublicKey:
    kid = entry.get("kid")
    if kid is not None and not (isinstance(kid, str) and kid):
        raise refused(f"key {index + 1} of {path} has a `kid` that is no text")
    what = f"key {kid!r}" if kid is not None else f"key {index + 1}"
    what += f" of {path}"
    kty = entry.get("kty")
    if kty == "oct":
        raise refused(f"{what} is a shared secret: that is APP_JWT_SECRET's, not a public key")
    if kty not in ("RSA", "EC"):
        raise refused(f"{what} has kty {str(kty)[:16]!r}: only RSA (RS256) and EC P-256 (ES256) "
                      f"keys are taken")
    if "d" in entry:
        raise refused(f"{what} is a private key: give the service the public key only")
    wanted = "RS256" if kty == "RSA" else "ES256"
    if entry.get("alg", wanted) != wanted:
        raise refused(f"{what} says alg {str(entry.get('alg'))[:16]!r}: an {kty} key verifies "
                      f"{wanted} only here")
    if kty == "EC" and entry.get("crv") != "P-256":
        raise refused(f"{what} is on curve {str(entry.get('crv'))[:16]!r}: ES256 needs P-256")
    try:
        key = PyJWK(entry, algorithm=wanted).key
    except (PyJWTError, ValueError, TypeError, AttributeError):
        raise refused(f"{what} is no valid {kty} public key") from None
    algorithm, verifying = pinned(key, what)
    return PublicKey(kid, algorithm, verifying)
