-- The listJobs cursor key: made by the migration (32 random bytes; not a constant of the code),
-- and readable only by the database owner that the Edge Functions connect as.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = job_service, extensions, public;
select plan(8);

select is(octet_length(job_service_api.signing_key('list_cursor')), 32, 'the cursor key has 32 bytes');
select is(job_service_api.signing_key('no_such_purpose'), null, 'an unknown purpose has no key');

select ok(not has_table_privilege(r, 'job_service.signing_keys', 'select'), format('%s cannot read the keys', r))
from unnest(array['anon', 'authenticated', 'service_role']) as r
order by r;
select ok(not has_function_privilege(r, 'job_service_api.signing_key(text)', 'execute'),
          format('%s cannot call signing_key', r))
from unnest(array['anon', 'authenticated', 'service_role']) as r
order by r;

select * from finish();
rollback;
