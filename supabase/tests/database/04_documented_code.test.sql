-- House rule: every function and table of the service says what it guarantees.
begin;
create extension if not exists pgtap with schema extensions;
-- the service's own schema first: the tests name its tables and types unqualified
set local search_path = job_service, extensions, public;
select plan(2);

select is(
  (select array_agg(p.oid::regprocedure::text order by 1)
   from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname in ('job_service', 'job_service_api') and obj_description(p.oid, 'pg_proc') is null),
  null, 'every function in job_service and job_service_api has a comment');

select is(
  (select array_agg(c.relname::text order by 1)
   from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'job_service' and c.relkind = 'r' and obj_description(c.oid, 'pg_class') is null),
  null, 'every table in job_service has a comment');

select * from finish();
rollback;
