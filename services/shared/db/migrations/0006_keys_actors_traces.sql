-- Operations (issue 12): keys that expire, who caused each event, and the
-- trace a task belongs to.

-- A key past expire_time no longer authenticates (NULL: never expires).
ALTER TABLE api_keys ADD COLUMN expire_time timestamptz;

-- The id of the API key whose RPC wrote the event (NULL: written by the
-- service itself, e.g. a runner or a sweep). Never the key itself.
ALTER TABLE task_events ADD COLUMN actor text;

-- W3C trace context (`traceparent`) of the RPC that created the task, so that
-- a run on any replica joins the same trace. NULL when tracing was off.
ALTER TABLE tasks ADD COLUMN trace_parent text;
