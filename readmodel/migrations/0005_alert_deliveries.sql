-- Each escalation alert per channel (in-app, email, webhook): recorded before it is sent,
-- marked once sent, so a retried delivery never sends the same alert twice. Holds
-- references, roles and staff addresses only: never a child's details.
CREATE TABLE alert_deliveries (
    escalation_id    text NOT NULL REFERENCES escalations (escalation_id) ON DELETE CASCADE,
    channel          text NOT NULL CHECK (channel IN ('in_app', 'email', 'webhook')),
    idempotency_key  text NOT NULL UNIQUE,
    reference        text NOT NULL,
    agency           text NOT NULL,
    team             text,
    addressee        text NOT NULL,
    recipient        text,
    attempts         integer NOT NULL DEFAULT 1,
    first_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz,
    PRIMARY KEY (escalation_id, channel)
);
-- The dashboard's "my escalations": in-app alerts for a team, or for an agency's actions.
CREATE INDEX alert_deliveries_in_app_idx ON alert_deliveries (team, agency) WHERE channel = 'in_app';
CREATE INDEX alert_deliveries_pending_idx ON alert_deliveries (first_attempt_at) WHERE delivered_at IS NULL;
