-- Alert channels are a registry the settings choose from (activities/alerts.py): a channel
-- added there needs no migration, so a delivery row accepts any channel name of that shape.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_channel_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_channel_check CHECK (channel ~ '^[a-z][a-z0-9_]{0,31}$');
