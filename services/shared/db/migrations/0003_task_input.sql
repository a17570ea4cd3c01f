-- Human in the loop (TaskService.ProvideInput, Converse `input`): when a pending
-- input request expires, and which answers were already applied.

-- Set while the task waits in INPUT_REQUIRED with an expiring request; the
-- sweep fails the task with INPUT_TIMEOUT once it has passed.
ALTER TABLE tasks ADD COLUMN input_expires_at timestamptz;
-- The request_ids of answers applied to this task (newest last, at most 100),
-- so that a repeated ProvideInput does not answer a later question.
ALTER TABLE tasks ADD COLUMN input_answer_ids jsonb NOT NULL DEFAULT '[]';

-- The expiry sweep's view: only tasks that wait on an expiring request.
CREATE INDEX tasks_input_expiry ON tasks (input_expires_at)
  WHERE state = 'INPUT_REQUIRED' AND input_expires_at IS NOT NULL;
