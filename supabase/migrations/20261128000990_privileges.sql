-- Runs last: no routine of the service is executable by PUBLIC (PostgreSQL grants EXECUTE on every
-- new function to PUBLIC, and a per-schema default privilege cannot take that away). Grants are
-- made one by one where a role is meant to call a routine.
revoke execute on all routines in schema job_service, job_service_api from public;
