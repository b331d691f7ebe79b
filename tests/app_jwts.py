"""What an app's backend makes, for the tests: its keys (generated here, never committed), the
files the service reads them from (a PEM public key, a JWKS), and the JWTs it signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

SECRET = "an-app-secret-of-more-than-32-characters"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@cache
def rsa_key(name: str = "rsa") -> rsa.RSAPrivateKey:
    """An RSA key of 2048 bits; the same one for the same name within a test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(name: str = "ec") -> ec.EllipticCurvePrivateKey:
    """An EC P-256 key; the same one for the same name within a test run."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def public_jwk(key: PrivateKey, kid: str | None = None) -> dict[str, Any]:
    """The key's public half as a JWK (no `alg`: the service pins it by the key's type)."""
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid} if kid is not None else jwk


def write_jwks(path: Path, keys: dict[str, PrivateKey]) -> Path:
    """A JWKS file holding the public halves of `keys`, by kid."""
    path.write_text(json.dumps({"keys": [public_jwk(key, kid) for kid, key in keys.items()]}))
    return path


def write_pem(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(public_pem(key))
    return path


def claims(sub: str = "alice", ttl_s: float = 60, **more: Any) -> dict[str, Any]:
    """`sub`, `iat` now and `exp` in `ttl_s`; `more` adds claims, or drops one given as None."""
    now = int(time.time())
    found = {"sub": sub, "iat": now, "exp": int(now + ttl_s), **more}
    return {name: value for name, value in found.items() if value is not None}


def sign(key: Any, algorithm: str, payload: dict[str, Any], kid: str | None = None) -> str:
    """A JWT of `payload` signed with `key` (a secret or a private key) by PyJWT."""
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A JWT made by hand, as an attacker would: any header; signed with HMAC-SHA256 over
    `hmac_key` (any bytes, a public key's PEM included, which PyJWT itself refuses to use), or
    with no signature at all."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"
