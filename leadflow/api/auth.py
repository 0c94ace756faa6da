"""Who is calling: the scheduler with the cron secret, or a portal user with a token (JWT).

A user token is a JWT signed with HS256 and `LEADFLOW_JWT_SECRET`, or with a key of the
portal's JWKS (`LEADFLOW_JWT_JWKS_URL`: RS256, ES256, …). It must carry `sub` (the user) and
`exp`; `role` is `admin` (sees everything) or `lister` (the default), and a lister's token names
the lister in `lister_id`. A lister sees only their own listings and the leads on them.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leadflow.config import Settings

Role = Literal["admin", "lister"]
HS_ALGORITHMS = ("HS256",)
JWKS_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    """The user a token names."""

    subject: str
    role: Role
    lister_id: str | None

    @property
    def scope(self) -> str | None:
        """The lister whose data this user may see, or None for all of it (an admin)."""
        return None if self.role == "admin" else self.lister_id

    def may_see_lister(self, lister_id: str | None) -> bool:
        return self.role == "admin" or (lister_id is not None and lister_id == self.lister_id)


def unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail=message,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _unavailable(message: str) -> HTTPException:
    return HTTPException(status_code=503, detail=message)


class TokenVerifier:
    """Checks user tokens against the configured HS256 secret and/or the portal's JWKS."""

    def __init__(self, settings: Settings) -> None:
        self.secret = settings.jwt_secret or None
        self.jwks_url = settings.jwt_jwks_url or None
        self._jwks: jwt.PyJWKClient | None = None

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.jwks_url)

    def _jwks_key(self, token: str) -> Any:
        if self._jwks is None:
            assert self.jwks_url is not None
            self._jwks = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=300, timeout=10)
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise _unavailable(f"cannot fetch the portal's signing keys (JWKS): {exc}") from exc
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise unauthorized(
                f"no signing key of the portal's JWKS matches the token: {exc}"
            ) from exc

    def verify(self, token: str) -> Principal:
        if not self.configured:
            raise _unavailable(
                "user tokens cannot be checked: set LEADFLOW_JWT_SECRET or LEADFLOW_JWT_JWKS_URL"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"the bearer token is not a JWT: {exc}") from exc
        algorithm = header.get("alg")
        key: Any
        if algorithm in HS_ALGORITHMS and self.secret:
            key = self.secret
        elif algorithm in JWKS_ALGORITHMS and self.jwks_url:
            key = self._jwks_key(token)
        else:
            accepted = [
                *(HS_ALGORITHMS if self.secret else ()),
                *(JWKS_ALGORITHMS if self.jwks_url else ()),
            ]
            raise unauthorized(
                f"the token is signed with {algorithm!r}; this service accepts {', '.join(accepted)}"
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("the token has expired: get a new one from the portal") from exc
        except jwt.InvalidSignatureError as exc:
            raise unauthorized("the token's signature is wrong") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"the token lacks a claim: {exc}") from exc
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"invalid token: {exc}") from exc
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise unauthorized("the token's `sub` claim must name the user")
    role = claims.get("role", "lister")
    if role not in ("admin", "lister"):
        raise HTTPException(
            status_code=403, detail=f"the token's role {role!r} is neither 'admin' nor 'lister'"
        )
    lister = claims.get("lister_id")
    lister_id = str(lister) if isinstance(lister, (str, int)) and str(lister) else None
    if role == "lister" and lister_id is None:
        raise HTTPException(
            status_code=403, detail="the token names no lister: a lister's token needs `lister_id`"
        )
    return Principal(subject=subject, role=role, lister_id=lister_id)


def mint_token(
    secret: str,
    subject: str,
    role: Role = "lister",
    lister_id: str | None = None,
    ttl: timedelta = timedelta(hours=24),
) -> str:
    """An HS256 user token, as the portal would issue one (for development and tests)."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": subject, "role": role, "iat": now, "exp": now + ttl}
    if lister_id is not None:
        claims["lister_id"] = lister_id
    return jwt.encode(claims, secret, algorithm="HS256")


# -- FastAPI dependencies ------------------------------------------------------------------------

portal_token = HTTPBearer(
    scheme_name="PortalToken",
    bearerFormat="JWT",
    description="A portal user's token (JWT) naming a lister (`lister_id`) or role `admin`.",
    auto_error=False,
)
cron_secret = HTTPBearer(
    scheme_name="CronSecret",
    description="The shared secret of the scheduler, `LEADFLOW_CRON_SECRET`.",
    auto_error=False,
)

Credentials = HTTPAuthorizationCredentials | None


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _is_cron_secret(request: Request, credentials: Credentials) -> bool:
    secret = _settings(request).cron_secret
    if not secret:
        raise _unavailable(
            "the cron endpoint is disabled: set LEADFLOW_CRON_SECRET on the server to enable it"
        )
    given = credentials.credentials if credentials is not None else ""
    return hmac.compare_digest(given.encode(), secret.encode())


def require_cron_secret(
    request: Request, credentials: Annotated[Credentials, Depends(cron_secret)]
) -> None:
    """The scheduler: `Authorization: Bearer <LEADFLOW_CRON_SECRET>`."""
    if credentials is None:
        raise unauthorized("missing `Authorization: Bearer <LEADFLOW_CRON_SECRET>`")
    if not _is_cron_secret(request, credentials):
        raise unauthorized("wrong cron secret")


def require_user(
    request: Request, credentials: Annotated[Credentials, Depends(portal_token)]
) -> Principal:
    """A portal user: `Authorization: Bearer <JWT>`."""
    if credentials is None:
        raise unauthorized("missing `Authorization: Bearer <token>` (a portal user's JWT)")
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(credentials.credentials)


def require_cron_or_admin(
    request: Request,
    cron: Annotated[Credentials, Depends(cron_secret)],
    user: Annotated[Credentials, Depends(portal_token)],
) -> str:
    """The scheduler (cron secret) or an admin's token; returns who it is."""
    if cron is None:
        raise unauthorized("missing `Authorization: Bearer <cron secret or admin token>`")
    secret = _settings(request).cron_secret
    if secret and hmac.compare_digest(cron.credentials.encode(), secret.encode()):
        return "cron"
    verifier: TokenVerifier = request.app.state.verifier
    if not verifier.configured:
        raise unauthorized("wrong cron secret")
    principal = verifier.verify(cron.credentials)
    if principal.role != "admin":
        raise HTTPException(status_code=403, detail="only the scheduler or an admin may see runs")
    return principal.subject


User = Annotated[Principal, Depends(require_user)]
