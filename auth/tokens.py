"""Who is calling the API: bearer tokens (signed JWTs, or a static token file) turned into an actor.

The actor (who, role, agency, and a supervisor's rank) comes from the credentials alone, never from a request body,
and travels into the workflow with every decision. A token is either a JWT verified
against a configured key or JWKS, or one of the static tokens of the embedded default.
Static tokens are held as digests, so the file's tokens are not kept in memory as given.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import jwt
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from runtime.settings import Settings
from workflows.models import Actor, Agency, Rank, Role, StaffId

# Asymmetric algorithms for a public key or a JWKS; HS256 only with a shared secret, so a
# public key can never be used as an HMAC secret (algorithm confusion).
ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
SHARED_SECRET_ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["exp", "sub", "role"]


class InvalidCredentials(Exception):
    """The token is missing, unknown, expired, badly signed or names no valid actor.

    The message says which, for the log's sake; the caller is told only 401.
    """


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the actor decisions are recorded under, their team, and when their credentials
    expire (a JWT's `exp`; none for a static token)."""

    actor: Actor
    team: str | None = None
    expires_at: datetime | None = None


class TokenHolder(BaseModel):
    """One entry of the static token file, and the claims a JWT must carry."""

    model_config = ConfigDict(extra="ignore")

    id: StaffId
    role: Role
    agency: Agency = Agency.POLICE
    team: str | None = None
    rank: Rank | None = None

    def caller(self) -> Caller:
        if self.role is Role.SYSTEM:
            raise InvalidCredentials("role: system is the workflow's own role, never a caller's")
        if self.rank is not None and self.role is not Role.SUPERVISOR:
            raise InvalidCredentials("rank: only a supervisor holds a rank")
        actor = Actor(id=self.id, role=self.role, agency=self.agency, rank=self.rank)
        return Caller(actor=actor, team=self.team)


TOKEN_FILE = TypeAdapter(dict[str, TokenHolder])


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class JwtVerifier:
    """Verifies a JWT's signature, expiry and (when configured) audience and issuer."""

    def __init__(
        self,
        *,
        key: str | bytes | None = None,
        algorithms: list[str] | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if (key is None) == (jwks_url is None):
            raise ValueError("give exactly one of key or jwks_url")
        self.key = key
        self.algorithms = algorithms or ASYMMETRIC_ALGORITHMS
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self.audience = audience
        self.issuer = issuer

    async def claims(self, token: str) -> dict:
        try:
            if self.jwks is not None:
                # PyJWKClient fetches with blocking urllib; keys are cached after the first fetch.
                key = (await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)).key
            else:
                key = self.key
            return jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_aud": self.audience is not None},
            )
        except (jwt.PyJWTError, ValueError) as error:
            raise InvalidCredentials(f"jwt: {type(error).__name__}") from error


class Authenticator:
    """Turns a bearer token into a Caller, or raises InvalidCredentials."""

    def __init__(self, static_tokens: dict[str, TokenHolder] | None = None, jwt_verifier: JwtVerifier | None = None):
        self._static = {token_digest(token): holder for token, holder in (static_tokens or {}).items()}
        self._jwt = jwt_verifier

    @classmethod
    def from_settings(cls, settings: Settings) -> "Authenticator":
        verifier = None
        common = {"audience": settings.api_jwt_audience, "issuer": settings.api_jwt_issuer}
        if settings.api_jwks_url:
            verifier = JwtVerifier(jwks_url=settings.api_jwks_url, **common)
        elif settings.api_jwt_public_key_file:
            verifier = JwtVerifier(key=settings.api_jwt_public_key_file.read_bytes(), **common)
        elif settings.api_jwt_secret:
            verifier = JwtVerifier(
                key=settings.api_jwt_secret.get_secret_value(), algorithms=SHARED_SECRET_ALGORITHMS, **common
            )
        tokens_file = settings.tokens_file
        static = load_token_file(tokens_file) if tokens_file.exists() else {}
        return cls(static, verifier)

    @property
    def configured(self) -> bool:
        return bool(self._static) or self._jwt is not None

    async def authenticate(self, token: str | None) -> Caller:
        if not token:
            raise InvalidCredentials("no bearer token")
        holder = self._static.get(token_digest(token))
        if holder is not None:
            return holder.caller()
        if self._jwt is None or token.count(".") != 2:
            raise InvalidCredentials("unknown token")
        claims = await self._jwt.claims(token)
        try:
            holder = TokenHolder.model_validate(
                {"id": claims["sub"], "role": claims["role"], "agency": claims.get("agency", Agency.POLICE.value),
                 "team": claims.get("team"), "rank": claims.get("rank")}
            )
        except ValidationError as error:
            fields = ",".join(str(e["loc"][0]) for e in error.errors() if e["loc"])
            raise InvalidCredentials(f"jwt claims: invalid {fields}") from error
        return replace(holder.caller(), expires_at=datetime.fromtimestamp(claims["exp"], UTC))


def load_token_file(path: Path) -> dict[str, TokenHolder]:
    try:
        return TOKEN_FILE.validate_json(path.read_bytes())
    except ValidationError as error:
        raise ValueError(f"{path}: not a token file ({error.error_count()} errors)") from error


def write_token_file(path: Path, tokens: dict[str, TokenHolder]) -> None:
    """Written owner-only from the start (the tokens are credentials), then moved into place whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({t: h.model_dump(mode="json", exclude_none=True) for t, h in tokens.items()}, indent=2)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(body + "\n")
    os.replace(partial, path)
