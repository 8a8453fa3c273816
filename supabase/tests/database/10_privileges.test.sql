-- Least privilege, declared: every routine, table and grant of the service's schemas against the
-- list below (docs/operations.md#least-privilege). A new routine or table, or a grant nobody
-- decided on, fails here until it is added to the list with its decision.
begin;
create extension if not exists pgtap with schema extensions;
select plan(14);

-- routine (schema.name), runs as its owner (SECURITY DEFINER), which API roles may execute it
create temporary table declared_routines (routine text, definer boolean, executors text) on commit drop;
insert into declared_routines values
    ('job_service.actor_id', false, ''),
    ('job_service.actor_role', false, ''),
    ('job_service.after_tasks_ended', false, ''),
    ('job_service.apply_back_pressure', false, ''),
    ('job_service.are_error_codes', false, ''),
    ('job_service.audit_job_change', true, ''),
    ('job_service.bucket_tokens', false, ''),
    ('job_service.cancel_pending_tasks', false, ''),
    ('job_service.check_job_completion', false, ''),
    ('job_service.check_job_tail', false, ''),
    ('job_service.check_user_quota', false, ''),
    ('job_service.client_request_id', false, ''),
    ('job_service.claim', false, ''),
    ('job_service.claim_from_job', false, ''),
    ('job_service.claim_from_jobs', false, ''),
    ('job_service.claim_shard_to_take', false, ''),
    ('job_service.create_job_shards', false, ''),
    ('job_service.default_burst', false, ''),
    ('job_service.default_user_limit', false, ''),
    ('job_service.effective_user_limits', false, ''),
    ('job_service.end_failed_run', false, ''),
    ('job_service.enforce_job_status', false, ''),
    ('job_service.fail_outcome', false, ''),
    ('job_service.finish_cancelling', false, ''),
    ('job_service.insert_tasks', false, ''),
    ('job_service.invoke_maintenance', false, ''),
    ('job_service.is_error_code', false, ''),
    ('job_service.iso', false, ''),
    ('job_service.job_counts', false, ''),
    ('job_service.job_guard_holds', false, ''),
    ('job_service.job_json', false, ''),
    ('job_service.latest_error_code', false, ''),
    ('job_service.lock_jobs_for_task_work', false, ''),
    ('job_service.log_job_event', true, ''),
    ('job_service.log_job_progress', true, ''),
    ('job_service.maintenance_names', false, ''),
    ('job_service.maintenance_scheduled', false, ''),
    ('job_service.maintenance_secret', false, ''),
    ('job_service.queue_failure_notification', true, ''),
    ('job_service.queue_notification', false, ''),
    ('job_service.raise_not_found', false, ''),
    ('job_service.raise_quota_exceeded', false, ''),
    ('job_service.rate_limit_json', false, ''),
    ('job_service.refuse_audit_change', false, ''),
    ('job_service.refuse_limit_change', false, ''),
    ('job_service.release_ended', false, ''),
    ('job_service.report_outcomes', false, ''),
    ('job_service.room_before', false, ''),
    ('job_service.request_id', false, ''),
    ('job_service.requeue_failed_tasks', false, ''),
    ('job_service.retry_delay_ms', false, ''),
    ('job_service.routine_exists', false, ''),
    ('job_service.set_request_context', false, ''),
    ('job_service.start_next_attempt', false, ''),
    ('job_service.stop_running_tasks', false, ''),
    ('job_service.store_maintenance_secret', false, ''),
    ('job_service.task_json', false, ''),
    ('job_service.touch_updated_at', false, ''),
    ('job_service.uuid_v7', false, ''),
    ('job_service.visible_job_owner', false, ''),
    ('job_service_api.add_tasks', true, 'job_service_runtime'),
    ('job_service_api.apply_job_update', true, 'job_service_runtime'),
    ('job_service_api.begin_maintenance', true, 'job_service_runtime'),
    ('job_service_api.claim_notifications', true, 'job_service_runtime'),
    ('job_service_api.claim_tasks', true, 'job_service_runtime'),
    ('job_service_api.complete_and_claim', true, 'job_service_runtime'),
    ('job_service_api.complete_tasks', true, 'job_service_runtime'),
    ('job_service_api.create_job', true, 'job_service_runtime'),
    ('job_service_api.delete_job', true, 'job_service_runtime'),
    ('job_service_api.end_maintenance', true, 'job_service_runtime'),
    ('job_service_api.expire_leases', true, 'job_service_runtime'),
    ('job_service_api.fail_task', true, 'job_service_runtime'),
    ('job_service_api.finish_cancelled_jobs', true, 'job_service_runtime'),
    ('job_service_api.finish_notifications', true, 'job_service_runtime'),
    ('job_service_api.get_job', true, 'job_service_runtime'),
    ('job_service_api.get_stats', true, 'job_service_runtime'),
    ('job_service_api.heartbeat', true, 'job_service_runtime'),
    ('job_service_api.invariant_violations', true, 'job_service_runtime'),
    ('job_service_api.job_facts', true, 'job_service_runtime'),
    ('job_service_api.list_jobs', true, 'job_service_runtime'),
    ('job_service_api.purge_finished_jobs', true, 'job_service_runtime'),
    ('job_service_api.purge_notifications', true, 'job_service_runtime'),
    ('job_service_api.run_due_timers', true, 'job_service_runtime'),
    -- the operator's one maintenance step (Vault, pg_cron): never the functions
    ('job_service_api.schedule_maintenance', true, ''),
    ('job_service_api.set_group_rate_limit', true, 'job_service_runtime'),
    ('job_service_api.set_user_limits', true, 'job_service_runtime'),
    ('job_service_api.signing_key', true, 'job_service_runtime'),
    ('job_service_api.start_due_retries', true, 'job_service_runtime');

create temporary view actual_routines as
select n.nspname || '.' || p.proname as routine, p.prosecdef as definer,
       coalesce(array_to_string(array(
         select r.rolname from pg_roles r
         where r.rolname in ('anon', 'authenticated', 'service_role', 'job_service_runtime')
           and has_function_privilege(r.oid, p.oid, 'execute') order by 1), ','), '') as executors
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname in ('job_service', 'job_service_api');

select is_empty($$ select * from actual_routines except select * from declared_routines $$,
  'every routine of job_service and job_service_api is declared with who may execute it');
select is_empty($$ select * from declared_routines except select * from actual_routines $$,
  'every declared routine exists as declared');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where n.nspname in ('job_service', 'job_service_api') and has_function_privilege('public', p.oid, 'execute') $$,
  'no routine of the service is executable by PUBLIC');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where n.nspname = 'job_service_api'
                     and not (p.prosecdef and p.proconfig @> array['search_path=""']) $$,
  'every entry point is SECURITY DEFINER with an empty search_path');

-- table, grantee ('' = no grant to anyone but the owner), privileges
create temporary table declared_tables (tbl text, grantee text, privileges text) on commit drop;
insert into declared_tables values
    ('audit_log', 'authenticated', 'SELECT'),
    ('audit_log', 'service_role', 'SELECT'),
    ('due_timers', '', ''),
    ('error_catalogue', 'authenticated', 'SELECT'),
    ('error_catalogue', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('idempotency_keys', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('job_errors', 'authenticated', 'SELECT'),
    ('job_errors', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('job_events', 'authenticated', 'SELECT'),
    ('job_events', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('job_rate_limits', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('job_shard_ends', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('job_shards', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('job_status_transitions', '', ''),
    ('jobs', 'authenticated', 'SELECT'),
    ('jobs', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('maintenance_lease', '', ''),
    ('notifications', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('sending_group_limits', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('signing_keys', '', ''),
    ('task_ready', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('tasks', 'authenticated', 'SELECT'),
    ('tasks', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE'),
    ('user_limits', 'service_role', 'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE');

create temporary view actual_tables as
select c.relname::text as tbl, coalesce(pg_get_userbyid(a.grantee), '')::text as grantee,
       coalesce(string_agg(a.privilege_type, ',' order by a.privilege_type), '') as privileges
from pg_class c join pg_namespace n on n.oid = c.relnamespace
left join lateral aclexplode(c.relacl) a on a.grantee <> c.relowner
where n.nspname in ('job_service', 'job_service_api') and c.relkind in ('r', 'v', 'm', 'p', 'f')
group by c.relname, a.grantee;

select is_empty($$ select * from actual_tables except select * from declared_tables $$,
  'every table of the service is declared with each grant on it');
select is_empty($$ select * from declared_tables except select * from actual_tables $$,
  'every declared table and grant exists as declared');
select is_empty($$ select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   cross join lateral aclexplode(c.relacl) a
                   where n.nspname in ('job_service', 'job_service_api') and c.relkind = 'S' and a.grantee <> c.relowner $$,
  'no sequence is granted to anyone');
select is_empty($$ select attrelid::regclass::text || '.' || attname from pg_attribute a join pg_class c on c.oid = a.attrelid
                   join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname in ('job_service', 'job_service_api') and a.attacl is not null $$,
  'no column-level grants');

-- the runtime role: a login that owns nothing and may only execute the entry points
select results_eq(
  $$ select rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit
     from pg_roles where rolname = 'job_service_runtime' $$,
  $$ values (true, false, false, false, false, false) $$,
  'job_service_runtime: login, no superuser, no BYPASSRLS, creates nothing, inherits nothing');
select is_empty($$ select roleid::regrole::text from pg_auth_members where member = 'job_service_runtime'::regrole $$,
  'job_service_runtime is a member of no role');
select is_empty($$ select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname in ('job_service', 'job_service_api')
                     and (has_table_privilege('job_service_runtime', c.oid, 'select, insert, update, delete, truncate')
                          or has_any_column_privilege('job_service_runtime', c.oid, 'select')) $$,
  'job_service_runtime has no privilege on any table of the service');
select is_empty($$ select oid::regclass::text from pg_class where relowner = 'job_service_runtime'::regrole
                   union all select oid::regprocedure::text from pg_proc where proowner = 'job_service_runtime'::regrole $$,
  'job_service_runtime owns nothing');
select results_eq(
  $$ select has_schema_privilege('job_service_runtime', 'job_service_api', 'usage'),
            has_schema_privilege('job_service_runtime', 'job_service', 'create'),
            has_schema_privilege('job_service_runtime', 'public', 'create') $$,
  $$ values (true, false, false) $$,
  'job_service_runtime may use the API schema and create nothing');
select is_empty($$ select r.rolname from pg_roles r
                   where r.rolname in ('anon', 'authenticated')
                     and has_schema_privilege(r.oid, 'job_service_api', 'usage') $$,
  'anon and authenticated cannot reach the entry points'' schema');

select * from finish();
rollback;
