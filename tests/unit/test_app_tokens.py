"""Verifying an app's JWTs (service/app_tokens.py) against the issue's "Bad input and attacks":
other algorithms, `alg` confusion, a `kid` that names no key, oversize tokens, bad `sub`, clock
skew within and beyond the leeway, `aud`/`iss`, a missing `exp`, `nbf`, the `rooms` claim's
shapes; and what passes: HS256 with the secret, RS256 and ES256 with a PEM key and with a JWKS.
Every refusal is `unauthorized` with a message that says which problem it was and holds neither
the token nor a secret."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from service.app_keys import load_keys
from service.app_tokens import MAX_TOKEN_CHARS, AppTokens, looks_like_jwt
from service.errors import ServiceError
from service.tokens import TokenSigner
from tests.app_jwts import (
    SECRET,
    claims,
    ec_key,
    forge,
    public_jwk,
    public_pem,
    rsa_key,
    sign,
    write_jwks,
    write_pem,
)

LEEWAY_S = 5


@pytest.fixture
def jwks(tmp_path):
    """Keys from a JWKS with an RSA and an EC key, and the shared secret."""
    keys = load_keys(str(write_jwks(tmp_path / "jwks.json", {"r1": rsa_key(), "e1": ec_key()})))
    return AppTokens(secret=SECRET, keys=keys, leeway_s=LEEWAY_S)


def pem_verifier(tmp_path, key, secret: str | None = None) -> AppTokens:
    return AppTokens(secret=secret, keys=load_keys(str(write_pem(tmp_path / "key.pem", key))),
                     leeway_s=LEEWAY_S)


def refusal(verifier: AppTokens, token: str) -> str:
    """Why `verifier` refuses `token`; the message holds neither the token nor the secret."""
    with pytest.raises(ServiceError) as refused:
        verifier.verify(token)
    error = refused.value
    assert error.code == "unauthorized"
    assert token not in error.message and SECRET not in error.message
    return error.message


# ---- what passes -------------------------------------------------------------------------------

def test_hs256_with_the_secret_gives_the_user_its_expiry_and_its_rooms():
    verifier = AppTokens(secret=SECRET, leeway_s=LEEWAY_S)
    payload = claims("user@example.com", rooms=["team-a", "team-*", "*"])
    verified = verifier.verify(sign(SECRET, "HS256", payload))
    assert verified.user == "user@example.com"
    assert verified.expires_at == payload["exp"] + LEEWAY_S  # as long as it is accepted
    assert verified.room_grants == ("team-a", "team-*", "*")
    assert verified.session_binding is None
    assert verifier.verify(sign(SECRET, "HS256", claims("bob"))).room_grants == ()


@pytest.mark.parametrize(("key", "algorithm"), [(rsa_key(), "RS256"), (ec_key(), "ES256")])
def test_rs256_and_es256_with_a_pem_key(tmp_path, key, algorithm):
    verifier = pem_verifier(tmp_path, key)
    assert verifier.verify(sign(key, algorithm, claims("tenant:42"))).user == "tenant:42"


def test_rs256_and_es256_with_a_jwks_and_the_kid(jwks):
    assert jwks.verify(sign(rsa_key(), "RS256", claims("r-user"), kid="r1")).user == "r-user"
    assert jwks.verify(sign(ec_key(), "ES256", claims("e-user"), kid="e1")).user == "e-user"
    assert jwks.verify(sign(SECRET, "HS256", claims("h-user"))).user == "h-user"


def test_a_jwks_of_one_unnamed_key_takes_tokens_without_a_kid(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps({"keys": [public_jwk(ec_key())]}))
    keys = load_keys(str(tmp_path / "one.json"))
    verifier = AppTokens(keys=keys)
    assert verifier.verify(sign(ec_key(), "ES256", claims())).user == "alice"
    assert "unknown kid" in refusal(verifier, sign(ec_key(), "ES256", claims(), kid="e1"))


# ---- algorithms --------------------------------------------------------------------------------

def test_none_is_refused_whatever_the_keys(jwks, tmp_path):
    for verifier in (jwks, pem_verifier(tmp_path, rsa_key()), AppTokens(secret=SECRET)):
        for alg in ("none", "None", "NONE", ""):
            token = forge({"alg": alg, "typ": "JWT"}, claims(), hmac_key=None)
            message = refusal(verifier, token)
            assert "not accepted" in message, message
        assert "algorithm none not accepted" in refusal(
            verifier, forge({"alg": "none"}, claims(), None))


@pytest.mark.parametrize(("key", "algorithm"), [
    (SECRET, "HS384"), (SECRET, "HS512"), (rsa_key(), "RS384"), (rsa_key(), "RS512"),
    (rsa_key(), "PS256"), (ec.generate_private_key(ec.SECP384R1()), "ES384"),
    (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
])
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the app's
def test_other_algorithms_are_refused_even_when_correctly_signed(jwks, key, algorithm):
    for kid in (None, "r1", "e1"):
        message = refusal(jwks, sign(key, algorithm, claims(), kid=kid))
        assert f"algorithm {algorithm} not accepted" in message, message


def test_an_algorithm_the_settings_do_not_give_is_refused(tmp_path):
    only_secret = AppTokens(secret=SECRET)
    assert "algorithm RS256 not accepted" in refusal(
        only_secret, sign(rsa_key(), "RS256", claims()))
    only_rsa = pem_verifier(tmp_path, rsa_key())
    assert "algorithm HS256 not accepted" in refusal(only_rsa, sign(SECRET, "HS256", claims()))
    assert "algorithm ES256 not accepted" in refusal(only_rsa, sign(ec_key(), "ES256", claims()))


def test_an_alg_that_is_not_text_is_refused_without_echoing_it(jwks):
    for alg in (["HS256"], {"x": 1}, 256, "HS256<script>", "x" * 40):
        message = refusal(jwks, forge({"alg": alg}, claims(), SECRET.encode()))
        assert "algorithm (unreadable) not accepted" in message, message


# ---- alg confusion: the RSA public key as an HMAC secret ----------------------------------------

def confused(header_extra: dict | None = None) -> str:
    """HS256 signed with the RSA public key's PEM as the secret: the classic attack."""
    return forge({"alg": "HS256", "typ": "JWT", **(header_extra or {})}, claims("mallory"),
                 hmac_key=public_pem(rsa_key()))


def test_an_rs256_public_key_never_serves_as_an_hs256_secret(tmp_path, jwks):
    # keys only: HS256 is no algorithm of theirs
    assert "algorithm HS256 not accepted" in refusal(pem_verifier(tmp_path, rsa_key()),
                                                     confused())
    # keys and a secret: HS256 is verified with the secret, never the public key
    assert refusal(pem_verifier(tmp_path, rsa_key(), SECRET), confused()) == "bad signature"
    assert refusal(jwks, confused()) == "bad signature"
    # naming the RSA key's kid: that key verifies RS256 only
    message = refusal(jwks, confused({"kid": "r1"}))
    assert "algorithm HS256 not accepted for that kid" in message, message
    # the public key as a JWK's JSON, or its DER, as the secret: no better
    for secret in (str(public_jwk(rsa_key())).encode(), public_pem(rsa_key()).strip()):
        token = forge({"alg": "HS256"}, claims("mallory"), secret)
        assert refusal(jwks, token) == "bad signature"


def test_a_key_verifies_only_its_own_algorithm(jwks):
    ec_for_rsa = sign(ec_key(), "ES256", claims(), kid="r1")
    assert "algorithm ES256 not accepted for that kid" in refusal(jwks, ec_for_rsa)
    rsa_for_ec = sign(rsa_key(), "RS256", claims(), kid="e1")
    assert "algorithm RS256 not accepted for that kid" in refusal(jwks, rsa_for_ec)


def test_a_signature_by_another_key_is_bad(jwks):
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refusal(jwks, sign(other_rsa, "RS256", claims(), kid="r1")) == "bad signature"
    other_ec = ec.generate_private_key(ec.SECP256R1())
    assert refusal(jwks, sign(other_ec, "ES256", claims(), kid="e1")) == "bad signature"
    assert refusal(jwks, sign("another-secret-of-32-characters!!", "HS256", claims())) == (
        "bad signature")
    tampered = sign(SECRET, "HS256", claims("alice"))
    header, _payload, signature = tampered.split(".")
    evil = forge({"alg": "HS256"}, claims("admin-ish"), None).split(".")[1]
    assert refusal(jwks, f"{header}.{evil}.{signature}") == "bad signature"


# ---- kid -------------------------------------------------------------------------------------

def test_a_kid_that_names_no_key_is_refused(jwks, tmp_path):
    assert "unknown kid" in refusal(jwks, sign(rsa_key(), "RS256", claims(), kid="r2"))
    assert "unknown kid" in refusal(jwks, sign(SECRET, "HS256", claims(), kid="secret"))
    pem = pem_verifier(tmp_path, rsa_key())
    assert "unknown kid" in refusal(pem, sign(rsa_key(), "RS256", claims(), kid="r1"))
    assert "malformed token" in refusal(jwks, forge({"alg": "RS256", "kid": 7}, claims(), None))


def test_a_named_key_needs_its_kid(jwks):
    message = refusal(jwks, sign(rsa_key(), "RS256", claims()))
    assert "missing kid" in message, message


# ---- size and shape ------------------------------------------------------------------------------

def test_an_oversize_token_is_refused_before_anything_else(jwks):
    padding = "x" * (MAX_TOKEN_CHARS * 3 // 4 - 200)  # base64 makes 4 characters of 3
    fits = sign(SECRET, "HS256", claims(pad=padding))
    assert len(fits) <= MAX_TOKEN_CHARS and jwks.verify(fits).user == "alice"
    oversize = sign(SECRET, "HS256", claims(pad=padding + "x" * 300))
    assert len(oversize) > MAX_TOKEN_CHARS
    assert "token too large" in refusal(jwks, oversize)
    assert "token too large" in refusal(jwks, "e" * 10**6)


@pytest.mark.parametrize("token", ["a.b.c", "not a token", "....", "eyJhbGciOiJIUzI1NiJ9.e30",
                                   "eyJhbGciOiJIUzI1NiJ9.e30.%%%"])
def test_a_malformed_token_is_refused(jwks, token):
    assert "malformed token" in refusal(jwks, token)


@pytest.mark.parametrize("token", [None, 42, ["a.b.c"], ""])
def test_a_token_that_is_no_text_is_refused(jwks, token):
    with pytest.raises(ServiceError, match="bad token"):
        jwks.verify(token)


# ---- claims ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sub", ["", "x" * 65, "a b", "a{b}", "a|b", "a/b", "Ålice", 42,
                                 ["alice"], {"u": "alice"}, True, "api", "API", "admin",
                                 "system"])
def test_a_bad_sub_is_refused(jwks, sub):
    message = refusal(jwks, sign(SECRET, "HS256", claims(sub)))
    assert message.startswith("bad sub"), message


@pytest.mark.parametrize("sub", ["a", "x" * 64, "user@example.com", "tenant:42", "a.b_c-d"])
def test_any_user_name_is_a_sub(jwks, sub):
    assert jwks.verify(sign(SECRET, "HS256", claims(sub))).user == sub


@pytest.mark.parametrize("missing", ["sub", "exp"])
def test_sub_and_exp_are_required(jwks, missing):
    message = refusal(jwks, sign(SECRET, "HS256", claims(**{missing: None})))
    assert message == f"missing claim {missing}"


@pytest.mark.parametrize("exp", ["9999999999", None])
def test_an_exp_that_is_no_number_is_refused(jwks, exp):
    payload = {"sub": "alice", "exp": exp}
    message = refusal(jwks, sign(SECRET, "HS256", payload))
    assert message in ("bad exp: it must be a number", "missing claim exp")
    assert "malformed token" in refusal(jwks, sign(SECRET, "HS256", {"sub": "a", "exp": "soon"}))


def test_clock_skew_within_the_leeway_is_accepted_and_beyond_it_refused(jwks):
    now = int(time.time())
    within, beyond = LEEWAY_S - 2, LEEWAY_S + 3
    assert jwks.verify(sign(SECRET, "HS256", claims(exp=now - within)))
    assert refusal(jwks, sign(SECRET, "HS256", claims(exp=now - beyond))) == "token expired"
    for claim in ("nbf", "iat"):
        assert jwks.verify(sign(SECRET, "HS256", claims(**{claim: now + within})))
        message = refusal(jwks, sign(SECRET, "HS256", claims(**{claim: now + beyond})))
        assert message.startswith("token not yet valid"), message


def test_no_leeway_means_none(tmp_path):
    strict = AppTokens(secret=SECRET, leeway_s=0)
    now = int(time.time())
    assert refusal(strict, sign(SECRET, "HS256", claims(exp=now - 2))) == "token expired"
    assert refusal(strict, sign(SECRET, "HS256", claims(nbf=now + 3))).startswith("token not yet")


def test_nbf_and_iat_that_are_no_numbers_are_refused(jwks):
    assert "malformed token" in refusal(jwks, sign(SECRET, "HS256", claims(nbf="later")))
    assert refusal(jwks, sign(SECRET, "HS256", claims(iat="now"))) == (
        "bad iat: it must be a number")


def test_aud_and_iss_are_checked_when_set():
    verifier = AppTokens(secret=SECRET, audience="chat", issuer="https://app.example")
    good = {"aud": "chat", "iss": "https://app.example"}
    assert verifier.verify(sign(SECRET, "HS256", claims(**good)))
    assert verifier.verify(sign(SECRET, "HS256", claims(**{**good, "aud": ["x", "chat"]})))
    assert refusal(verifier, sign(SECRET, "HS256", claims(**{**good, "aud": "billing"}))) == (
        "wrong audience (aud)")
    assert refusal(verifier, sign(SECRET, "HS256", claims(**{**good, "aud": None}))) == (
        "missing claim aud")
    assert refusal(verifier, sign(SECRET, "HS256", claims(**{**good, "iss": "evil"}))) == (
        "wrong issuer (iss)")
    assert refusal(verifier, sign(SECRET, "HS256", claims(**{**good, "iss": None}))) == (
        "missing claim iss")


def test_aud_and_iss_are_not_checked_when_unset(jwks):
    assert jwks.verify(sign(SECRET, "HS256", claims(aud="anyone", iss="anybody")))


@pytest.mark.parametrize("rooms", [[], ["team-a"], ["team-*", "x.y_z-1"], ["*"], ["a" * 64],
                                   ["a" * 63 + "*"]])
def test_a_rooms_claim_of_names_and_prefixes_is_granted(jwks, rooms):
    assert jwks.verify(sign(SECRET, "HS256", claims(rooms=rooms))).room_grants == tuple(rooms)


@pytest.mark.parametrize("rooms", ["team-a", {"team-a": True}, 7, [7], ["a b"], ["team-**"],
                                   ["*team"], ["a" * 65], ["a" * 64 + "*"], [""], [None],
                                   [["team-a"]], ["team@a"], ["room{x}"]])
def test_any_other_rooms_claim_refuses_the_token(jwks, rooms):
    message = refusal(jwks, sign(SECRET, "HS256", claims(rooms=rooms)))
    assert message.startswith("bad rooms claim"), message


def test_a_rooms_claim_of_null_refuses_the_token(jwks):
    token = forge({"alg": "HS256"}, {**claims(), "rooms": None}, SECRET.encode())
    assert refusal(jwks, token).startswith("bad rooms claim")


# ---- telling a JWT from the service's own token ---------------------------------------------

def test_a_jwt_is_told_from_the_services_own_tokens():
    assert looks_like_jwt(sign(SECRET, "HS256", claims()))
    assert looks_like_jwt(forge({"alg": "none"}, claims(), None))
    assert looks_like_jwt(sign(SECRET, "HS256", claims(pad="x" * MAX_TOKEN_CHARS)))
    own = TokenSigner("a-secret-key-of-the-service", 60)
    assert own.issue("alice").count(".") == 2 and not looks_like_jwt(own.issue("alice"))
    assert not looks_like_jwt(own.issue("alice", "a-session"))
    for other in ("a.b.c", "not a token", "x.y", "a.b.c.d", None, 42, forge({"typ": "JWT"},
                                                                            claims(), None)):
        assert not looks_like_jwt(other), other
    header_then_more = sign(SECRET, "HS256", claims()) + ".extra"
    assert not looks_like_jwt(header_then_more)

