-- An escalation resolved without an acknowledgement: its referral closed while it was open.
ALTER TABLE escalations ADD COLUMN resolved_at timestamptz, ADD COLUMN resolution text;
DROP INDEX escalations_open_idx;
CREATE INDEX escalations_open_idx ON escalations (raised_at) WHERE acknowledged_at IS NULL AND resolved_at IS NULL;
