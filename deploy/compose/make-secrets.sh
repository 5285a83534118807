#!/bin/sh
# Makes the compose stack's secrets in deploy/secrets/, once: the two keyrings (and the decision
# keyring's public half for the workers), the read model's password and URL, the alert-link and
# plan-ID keys, and an empty token file. A file that exists is kept: the keys that sealed the
# histories must never be replaced. Run with the project installed (`make .venv/.installed-stamp`).
set -eu
cd "$(dirname "$0")/.."
python=${PYTHON:-../.venv/bin/python}
random() { "$python" -c 'import secrets; print(secrets.token_urlsafe(32))'; }

# Only this directory protects the files: the containers' user (uid 10001) reads them through
# bind mounts, so each file itself is world-readable (compose without swarm cannot chown them).
mkdir -p secrets
chmod 700 secrets
cd secrets

[ -e encryption_keys ] || "$python" -m runtime.keys new encryption_keys --key-id "$(date +%Y)-a"
[ -e decision_keys ] || "$python" -m runtime.keys new decision_keys --key-id "$(date +%Y)-a"
"$python" -m runtime.keys public decision_keys > decision_keys_public
[ -e referrals_db_password ] || random > referrals_db_password
[ -e database_url ] || echo "postgresql://referrals:$(cat referrals_db_password)@referrals-db:5432/referrals" > database_url
[ -e alert_link_secret ] || random > alert_link_secret
[ -e plan_id_secret ] || random > plan_id_secret
# Static bearer tokens ({token: {id, role, agency, team}}); or set API_JWKS_URL and friends instead.
[ -e api_tokens ] || echo '{}' > api_tokens
chmod 644 ./*

echo "secrets in $(pwd); for Temporal's database: export TEMPORAL_DB_PASSWORD=$(random)"
