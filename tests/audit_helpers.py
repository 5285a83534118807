"""The recorded histories for the audit tests: every lifecycle path by generation, sealed under their own test keyring."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from runtime.codec import Keyring
from runtime.settings import Settings
from runtime.temporal import data_converter
from audit.history import DecodedReferral, ReferralHistories, decode_referral, load_export, load_exports

HISTORIES = Path(__file__).resolve().parent / "histories"
KEYRING = Keyring.from_json((HISTORIES / "keyring.json").read_text())
HISTORIES_SETTINGS = Settings(_env_file=None, encryption_keys=KEYRING.to_json())
HISTORIES_CONVERTER = data_converter(keyring=KEYRING)
def generation_order(folder: Path) -> tuple[int, str]:
    """A generation's place: by its number (v10 after v9), then its name."""
    number = re.match(r"v(\d+)", folder.name)
    return (int(number.group(1)) if number else 0, folder.name)


# Oldest first; the timeline tests read the first, which is never re-recorded.
GENERATIONS = sorted((p for p in HISTORIES.iterdir() if p.is_dir() and p.name.startswith("v")), key=generation_order)


@cache
def recorded() -> list[ReferralHistories]:
    """The cases of every lifecycle generation (the triage's and the trigger plans' paths are replayed by their own tests)."""
    return [case for generation in GENERATIONS for case in load_exports(generation)]


@cache
def recorded_triages() -> list[ReferralHistories]:
    return load_exports(HISTORIES / "triage")


def recorded_path(name: str) -> ReferralHistories:
    (referral,) = load_export(GENERATIONS[0] / name)
    return referral


async def decoded_path(name: str) -> DecodedReferral:
    return await decode_referral(recorded_path(name), HISTORIES_CONVERTER)
