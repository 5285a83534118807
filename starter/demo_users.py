"""The embedded stack's demo users: a static token per synthetic staff member, for the demo, the tests and local use.

    python -m starter.demo_users sergeant     print a demo user's token from the token file
                                              (<DATA_DIR>/tokens.json, or API_TOKENS_FILE)
"""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path

from auth.tokens import TokenHolder, load_token_file, write_token_file
from runtime.settings import Settings
from starter.synthetic import AUDITOR, CALL_HANDLER, CSC_PARTNER, HEALTH_PARTNER, INSPECTOR, OFFICER, SCREENER, SERGEANT
from workflows.models import Agency, Rank, Role

DEMO_USERS: dict[str, TokenHolder] = {
    "officer": TokenHolder(id=OFFICER.id, role=Role.OFFICER, team="Testtown"),
    "sergeant": TokenHolder(id=SERGEANT.id, role=Role.SUPERVISOR, rank=Rank.SERGEANT, team="Testtown"),
    "inspector": TokenHolder(id=INSPECTOR.id, role=Role.SUPERVISOR, rank=Rank.INSPECTOR, team="Testtown"),
    "screener": TokenHolder(id=SCREENER.id, role=Role.SCREENER, team="CRU"),
    "call-handler": TokenHolder(id=CALL_HANDLER.id, role=Role.CALL_HANDLER, team="Control room"),
    "health-partner": TokenHolder(id=HEALTH_PARTNER.id, role=Role.PARTNER, agency=Agency.HEALTH),
    "social-worker": TokenHolder(id=CSC_PARTNER.id, role=Role.PARTNER, agency=Agency.CHILDRENS_SOCIAL_CARE),
    "auditor": TokenHolder(id=AUDITOR.id, role=Role.AUDITOR),
    "admin": TokenHolder(id="ADM-9001", role=Role.ADMIN),
}


def ensure_demo_tokens(path: Path) -> dict[str, str]:
    """Create the static token file with a random token per demo user; return name -> token.

    An existing file keeps its tokens (they are in use); a demo user it lacks is added with a
    new token, and a demo user's entry is brought up to date (a rank it lacked), matched by ID.
    """
    held = load_token_file(path) if path.exists() else {}
    by_id = {holder.id: token for token, holder in held.items()}
    wanted = dict(held)
    for holder in DEMO_USERS.values():
        wanted[by_id.get(holder.id) or secrets.token_urlsafe(32)] = holder
    if wanted != held:
        write_token_file(path, wanted)
    by_id = {holder.id: token for token, holder in wanted.items()}
    return {name: by_id[holder.id] for name, holder in DEMO_USERS.items()}


def token_command(settings: Settings, name: str) -> str:
    """The shell command printing `name`'s token from this stack's token file, wherever its settings put it."""
    if settings.api_tokens_file is not None:
        where = f"API_TOKENS_FILE={shlex.quote(str(settings.api_tokens_file))} "
    elif settings.data_dir != Settings.model_fields["data_dir"].default:
        where = f"DATA_DIR={shlex.quote(str(settings.data_dir))} "
    else:
        where = ""
    return f"{where}.venv/bin/python -m starter.demo_users {name}"


def main(argv: list[str] | None = None) -> int:
    import sys

    names = argv if argv is not None else sys.argv[1:]
    settings = Settings()
    if len(names) != 1 or names[0] not in DEMO_USERS:
        print(f"usage: python -m starter.demo_users {{{'|'.join(DEMO_USERS)}}}", file=sys.stderr)
        return 2
    if not settings.tokens_file.exists():
        print(f"{settings.tokens_file} does not exist: `make run` makes it", file=sys.stderr)
        return 1
    token = ensure_demo_tokens(settings.tokens_file).get(names[0])
    if token is None:
        print(f"{settings.tokens_file} has no token for {names[0]}", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
