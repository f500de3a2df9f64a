"""Who is calling: API keys, their roles, and the open mode for local use.

A key is `cb_` and 43 random URL-safe characters (32 bytes), shown once when it
is made. The store keeps only its SHA-256: the key carries 256 bits of
randomness, so a slow password hash would add latency to every request and no
protection (there is no dictionary to guess from).

A caller is resolved to a `Principal` from `Authorization: Bearer <key>` or,
where a client cannot set headers (browser WebSockets, the original bridge's
clients), from `?token=<key>`. `BRIDGE_ADMIN_TOKEN` keeps working as an admin
key. In open mode a caller without a key is an anonymous client whose owner is
`open`, or `open:<X-Client-Id>` when it names itself. The name proves nothing,
so it only shares the backends fairly between callers: every open caller sees
every open caller's jobs and uploads, as with the original bridge.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass

from comfy_bridge.config import Settings
from comfy_bridge.store import ApiKeyRow, Store

logger = logging.getLogger(__name__)

KEY_PREFIX = "cb_"
ADMIN_OWNER = "admin"
OPEN_OWNER = "open"
# A key's last use is written at most this often, not on every request.
LAST_USED_EVERY_MS = 60_000
_LOOPBACK_NAMES = {"localhost"}


class Role(enum.StrEnum):
    CLIENT = "client"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its role and the owner its jobs and uploads get."""

    role: Role
    owner: str
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def anonymous(self) -> bool:
        """An open-mode caller that showed no key."""
        return self.role is Role.CLIENT and self.key_id is None

    def owns(self, owner: str | None) -> bool:
        """Whether a job or upload of `owner` is this caller's to see."""
        return self.is_admin or same_party(owner, self.owner)


@dataclass(frozen=True)
class NewKey:
    """A key as it is made: the only time its secret is known."""

    row: ApiKeyRow
    secret: str


def same_party(owner: str | None, other: str | None) -> bool:
    """Whether two owners are one party: the same key, or both open callers."""
    return owner == other or (_is_open(owner) and _is_open(other))


def _is_open(owner: str | None) -> bool:
    return owner is not None and owner.partition(":")[0] == OPEN_OWNER


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_owner(key_id: str) -> str:
    return f"key:{key_id}"


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_mode_refusal(settings: Settings) -> str | None:
    """Why the open mode may not start on this bind, or None if it may."""
    if not settings.open or settings.open_public or is_loopback(settings.host):
        return None
    return (
        f"open mode (BRIDGE_OPEN) lets anyone run workflows without a key; it is "
        f"refused on {settings.host}, which is not a loopback address. Bind "
        "127.0.0.1, give clients keys, or set BRIDGE_OPEN_PUBLIC=true to force it"
    )


class Keys:
    """Making, listing, revoking and checking API keys."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._last_used: dict[str, int] = {}

    async def create(self, name: str, role: Role) -> NewKey:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=secrets.token_hex(6),
            name=name,
            role=str(role),
            key_hash=hash_key(secret),
            created_at_ms=_now_ms(),
            last_used_at_ms=None,
            revoked=False,
        )
        await self.store.add_key(row)
        logger.info("key %s (%s, %s) created", row.id, name, role)
        return NewKey(row, secret)

    async def revoke(self, key_id: str) -> ApiKeyRow | None:
        row = await self.store.revoke_key(key_id)
        if row is not None:
            logger.info("key %s (%s) revoked", row.id, row.name)
        return row

    async def resolve(
        self, secret: str | None, client_name: str | None = None
    ) -> Principal | None:
        """The caller holding `secret`, the open mode's anonymous client, or None."""
        if secret:
            return await self._by_secret(secret)
        if self.settings.open:
            suffix = f":{client_name}" if client_name else ""
            return Principal(Role.CLIENT, OPEN_OWNER + suffix)
        return None

    async def _by_secret(self, secret: str) -> Principal | None:
        admin_token = self.settings.admin_token
        if admin_token and secrets.compare_digest(secret, admin_token):
            return Principal(Role.ADMIN, ADMIN_OWNER)
        if not secret.startswith(KEY_PREFIX):
            return None
        row = await self.store.key_by_hash(hash_key(secret))
        if row is None or row.revoked:
            return None
        await self._note_use(row.id)
        return Principal(Role(row.role), key_owner(row.id), key_id=row.id)

    async def _note_use(self, key_id: str) -> None:
        now = _now_ms()
        if now - self._last_used.get(key_id, 0) >= LAST_USED_EVERY_MS:
            self._last_used[key_id] = now
            await self.store.touch_key(key_id, now)


def _now_ms() -> int:
    return int(time.time() * 1000)
