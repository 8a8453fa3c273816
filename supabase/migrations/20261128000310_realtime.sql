-- Realtime: where the project has Supabase Realtime's publication, the job table is in it, so that
-- a web app can subscribe to its jobs' changes (row-level security applies to Realtime as to the
-- Data API). A database without the publication (plain PostgreSQL) is left as it is. Task counters
-- live in shard rows, not on the job row: a subscriber sees status and phase changes, and polls
-- (getJob) for progress.
do $$
begin
  if exists (select from pg_publication where pubname = 'supabase_realtime')
     and not exists (
       select from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'job_service' and tablename = 'jobs'
     ) then
    alter publication supabase_realtime add table job_service.jobs;
  end if;
end
$$;
