"""JWT bearer tokens: HS256 only, with exp/iat/aud/iss/jti; revocation lives in Redis."""
from __future__ import annotations

import time
import uuid

import jwt
import redis as redis_lib

from app.services.errors import Unauthorized

ALGORITHM = "HS256"


def _revoked_key(jti: str) -> str:
    return f"kiln:jwt:revoked:{jti}"


def _generation_key(user_id) -> str:
    return f"kiln:jwt:generation:{user_id}"


def issue(config: dict, r: redis_lib.Redis, user_id, org_id=None) -> tuple[str, int]:
    now = int(time.time())
    expires_in = config["JWT_EXPIRES_SECONDS"]
    claims = {
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
        "aud": config["JWT_AUDIENCE"],
        "iss": config["JWT_ISSUER"],
        "jti": uuid.uuid4().hex,
        # "Log out everywhere" bumps the user's generation; older tokens stop verifying.
        "gen": int(r.get(_generation_key(user_id)) or 0),
    }
    if org_id is not None:
        claims["org"] = str(org_id)
    return jwt.encode(claims, config["SECRET_KEY"], algorithm=ALGORITHM), expires_in


def verify(config: dict, r: redis_lib.Redis, token: str) -> dict:
    try:
        claims = jwt.decode(
            token,
            config["SECRET_KEY"],
            algorithms=[ALGORITHM],
            audience=config["JWT_AUDIENCE"],
            issuer=config["JWT_ISSUER"],
            options={"require": ["exp", "iat", "aud", "iss", "jti", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"The token is not valid: {exc}") from exc
    # Both revocation marks in one round trip: every request with a JWT pays it.
    revoked, generation = r.mget(_revoked_key(claims["jti"]), _generation_key(claims["sub"]))
    if revoked is not None:
        raise Unauthorized("The token has been revoked")
    if int(claims.get("gen", 0)) < int(generation or 0):
        raise Unauthorized("The token has been revoked")
    return claims


def revoke(r: redis_lib.Redis, claims: dict) -> None:
    ttl = max(1, int(claims["exp"]) - int(time.time()))
    r.set(_revoked_key(claims["jti"]), 1, ex=ttl)


def revoke_all(r: redis_lib.Redis, user_id) -> None:
    r.incr(_generation_key(user_id))
