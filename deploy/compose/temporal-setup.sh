#!/bin/sh
# Temporal's own set-up on the compose stack, run by the admin-tools image: `schema` before the
# server starts (creates or upgrades its PostgreSQL schemas), `namespace` once it answers.
set -eu

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "${DB_PORT:-5432}" "$@"
}

schema() {
    versions=/etc/temporal/schema/postgresql/v12
    for database in temporal:temporal temporal_visibility:visibility; do
        name=${database%%:*}
        # A new database gets the base schema; an existing one only its pending versions, so a
        # second run (or an upgraded image) never resets the schema version.
        if sql_tool --db "$name" create; then
            sql_tool --db "$name" setup-schema -v 0.0
        fi
        sql_tool --db "$name" update-schema -d "$versions/${database#*:}/versioned"
    done
}

namespace() {
    until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
        sleep 2
    done
    if temporal operator namespace describe -n "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
        temporal operator namespace update -n "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION" --address "$TEMPORAL_ADDRESS"
    else
        temporal operator namespace create -n "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION" --address "$TEMPORAL_ADDRESS"
    fi
}

case "${1:-}" in
    schema) schema ;;
    namespace) namespace ;;
    *) echo "usage: temporal-setup.sh schema|namespace" >&2; exit 64 ;;
esac
