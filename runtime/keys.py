"""Keyring files from the command line: add and promote keys, or print the decision keyring's public half.

    python -m runtime.keys new PATH [--key-id ID]      # a new keyring of one key (a deployment's first)
    python -m runtime.keys add PATH [--key-id ID]      # a fresh key, not yet current
    python -m runtime.keys promote PATH ID             # make it current, once every process holds it
    python -m runtime.keys rotate PATH [--key-id ID]   # both at once (a single process, the embedded stack)
    python -m runtime.keys public PATH                 # a decision keyring's public keys, for workers

Each works on an encryption or a decision keyring. Old keys are kept (old histories and old
proofs stay readable and valid); the file is rewritten owner-only, in one step.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from runtime.codec import Keyring, KeyringError
from runtime.proofs import DecisionVerifier


def write_owner_only(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically; the file is readable by its owner only."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:  # mkstemp creates it 0600
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def change(path: Path, command: str, key_id: str | None) -> Keyring:
    if command == "new":
        if path.exists():
            raise KeyringError(f"{path} exists: add a key to it (`add`) rather than replace its keys")
        keyring = Keyring.generate(key_id or "k1")
        write_owner_only(path, keyring.to_json())
        return keyring
    keyring = Keyring.from_json(path.read_text())
    if command == "promote":
        if key_id not in keyring.keys:
            raise KeyringError(f"key id {key_id!r} is not in the keyring; add it first")
        changed = keyring.promoted(key_id)
    else:
        changed = keyring.rotated(key_id) if command == "rotate" else keyring.added(key_id)
    write_owner_only(path, changed.to_json())
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command, help in (
        ("new", "write a new keyring of one fresh key; refuses a file that exists"),
        ("add", "add a fresh key, not yet current"),
        ("rotate", "add a fresh key and make it current"),
    ):
        adding = commands.add_parser(command, help=help)
        adding.add_argument("path", type=Path)
        adding.add_argument("--key-id", help="the new key's ID (default: k<n+1>)")
    promoting = commands.add_parser("promote", help="make a key already in the ring current")
    promoting.add_argument("path", type=Path)
    promoting.add_argument("key_id")
    public = commands.add_parser("public", help="print a decision keyring's public keys as JSON")
    public.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "public":
            print(DecisionVerifier.from_json(args.path.read_text()).public_json())
        else:
            keyring = change(args.path, args.command, args.key_id)
            print(f"{args.path}: keys {', '.join(keyring.keys)}; current {keyring.current!r}")
    except (KeyringError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
