-- Newest-first listing (ListTasks) reads the primary key (tenant_id, task_id)
-- backwards: a B-tree serves either direction, and the planner chose the
-- primary key even while this index existed. It was never read, but every new
-- task wrote an entry into it, and so did every state change that moves a task
-- in or out of the queue or a lease (those updates are not HOT). Dropping it
-- cut the write-ahead log per Run from about 3.3 KB to 3.1 KB and per
-- CreateTask from 1.16 KB to 1.05 KB (BENCHMARKS.md, issue 13).
DROP INDEX IF EXISTS tasks_by_tenant_newest;
