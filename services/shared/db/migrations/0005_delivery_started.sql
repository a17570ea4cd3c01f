-- A notifier that dies charges no attempt to deliveries it claimed but never
-- started sending. The claim no longer counts an attempt (0002's comment on
-- `attempts` is superseded): the attempt is counted, and `started_at` set, in
-- the write that precedes the HTTP request. A lease that expires with
-- `started_at` NULL hands the delivery back as it was; one with `started_at`
-- set records a lost attempt, as before.
ALTER TABLE webhook_deliveries ADD COLUMN started_at timestamptz;
