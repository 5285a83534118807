"""Encryption of every Temporal payload and failure message: AES-256-GCM under a rotating keyring.

The Temporal server, its database and anyone reading raw histories see only ciphertext; the
worker, the starters, the codec server and the audit tools hold the keyring. Each payload
names the key that sealed it, so a new key can become current while older histories stay
readable for as long as their key is kept in the ring.

A payload that is not sealed by a key in the ring (plaintext, an unknown key, a bad tag) is
refused: decoding turns it into an `UNSEALED` marker naming only the reason, and converting
the marker raises a non-retryable `ApplicationError`. Decoding itself never raises, so in a
worker the refusal lands on the one message that carried the payload: an update is rejected
before history, a start fails its workflow at once, a signal is dropped.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import CompositePayloadConverter, EncodingPayloadConverter, PayloadCodec
from temporalio.exceptions import ApplicationError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
# What `decode` makes of a payload it refuses: no data, only the reason.
UNSEALED = b"binary/unsealed"
UNSEALED_REASON = "unsealed-reason"
UNSEALED_TYPE = "UnsealedPayload"


class KeyringError(ValueError):
    """The keyring is missing, malformed, or lacks a key a payload names."""


@dataclass(frozen=True)
class Keyring:
    """Named 256-bit keys; `current` seals new payloads, every key opens its own.

    The decision keyring (runtime/proofs.py) has the same shape: 32-byte Ed25519 seeds, the
    current one signing, every one verifying.
    """

    keys: dict[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyringError(f"current: key id {self.current!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if len(key) != 32:
                raise KeyringError(f"keys.{key_id}: must be 32 bytes, got {len(key)}")

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            data = json.loads(text)
            keys = {key_id: base64.b64decode(value, validate=True) for key_id, value in data["keys"].items()}
            return cls(keys=keys, current=data["current"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
            if isinstance(err, KeyringError):
                raise
            raise KeyringError(
                'keyring: expected {"current": ID, "keys": {ID: base64 32-byte key, ...}}'
            ) from None

    def to_json(self) -> str:
        return json.dumps(
            {"current": self.current, "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()}},
            indent=2,
        )

    def rotated(self, new_key_id: str | None = None) -> Keyring:
        """A keyring with a fresh current key; the old keys stay to read old histories."""
        key_id = new_key_id or f"k{len(self.keys) + 1}"
        return self.added(key_id).promoted(key_id)

    def added(self, new_key_id: str | None = None) -> Keyring:
        """A keyring with one more fresh key, not yet current: roll it out everywhere before promoting it."""
        key_id = new_key_id or f"k{len(self.keys) + 1}"
        if key_id in self.keys:
            raise KeyringError(f"new key id {key_id!r} is already in the keyring")
        return Keyring(keys=self.keys | {key_id: AESGCM.generate_key(bit_length=256)}, current=self.current)

    def promoted(self, key_id: str) -> Keyring:
        """The same keys with `key_id` current."""
        return Keyring(keys=self.keys, current=key_id)

    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        return cls(keys={key_id: AESGCM.generate_key(bit_length=256)}, current=key_id)


class KeyProvider(Protocol):
    """The hook for a KMS: a callable named by ENCRYPTION_KEY_PROVIDER or DECISION_KEY_PROVIDER
    ("package.module:function") returning the keyring, for example after unwrapping data keys
    with a cloud KMS."""

    def __call__(self) -> Keyring: ...


def load_key_provider(dotted: str, setting: str = "encryption_key_provider") -> Keyring:
    module_name, _, attribute = dotted.partition(":")
    if not module_name or not attribute:
        raise KeyringError(f"{setting}: expected 'package.module:function'")
    provider: KeyProvider = getattr(importlib.import_module(module_name), attribute)
    keyring = provider()
    if not isinstance(keyring, Keyring):
        raise KeyringError(f"{setting}: the provider must return a Keyring")
    return keyring


def ensure_keyring_file(path: Path) -> Keyring:
    """Read the keyring file, creating it (owner-only) with one fresh key if it does not exist."""
    if path.exists():
        return Keyring.from_json(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    keyring = Keyring.generate()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(keyring.to_json())
    return keyring


class EncryptionCodec(PayloadCodec):
    """Seals each payload with AES-256-GCM; the key id is bound in as associated data."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self.keyring.current
        cipher = self._ciphers[key_id]
        sealed = []
        for payload in payloads:
            nonce = secrets.token_bytes(NONCE_BYTES)
            ciphertext = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            sealed.append(Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + ciphertext))
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Each payload opened, or an `UNSEALED` marker in its place; never raises."""
        return [self._open(payload) for payload in payloads]

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return unsealed_marker("the payload is not sealed (plaintext)")
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            return unsealed_marker(f"the payload is sealed with key id {key_id[:40]!r}, which is not in the keyring")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
            return Payload.FromString(plain)
        except (InvalidTag, ValueError):  # tampered, truncated, or sealed under another key of that name
            return unsealed_marker(f"the payload does not open with key {key_id!r} (bad tag)")


def unsealed_marker(reason: str) -> Payload:
    return Payload(metadata={"encoding": UNSEALED, UNSEALED_REASON: reason.encode()})


def refusal(payload: Payload) -> str | None:
    """Why `decode` refused this payload, or None for an opened one."""
    if payload.metadata.get("encoding") != UNSEALED:
        return None
    return payload.metadata.get(UNSEALED_REASON, b"").decode("utf-8", "replace")


class UnsealedPayloadConverter(EncodingPayloadConverter):
    """Refuses the codec's `UNSEALED` markers: the error names the reason, never the content."""

    @property
    def encoding(self) -> str:
        return UNSEALED.decode()

    def to_payload(self, value: object) -> Payload | None:
        return None  # never chosen to write a value

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> object:
        raise ApplicationError(
            f"payload: refused, {refusal(payload)}; only payloads sealed by a key in the keyring are accepted",
            type=UNSEALED_TYPE,
            non_retryable=True,
        )


class SealedPayloadConverter(CompositePayloadConverter):
    """The pydantic converter, plus the refusal of what the codec could not open."""

    def __init__(self) -> None:
        super().__init__(*PydanticPayloadConverter().converters.values(), UnsealedPayloadConverter())
