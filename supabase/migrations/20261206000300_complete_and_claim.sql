-- A report that also claims: completeTask(s) with `claim` ends the reported runs and then claims
-- for the worker in the same transaction, one call and one commit instead of two (as BullMQ's
-- moveToFinished with fetchNext does). The claim sees the room the report gave back.

create function job_service_api.complete_and_claim(
  p_ctx jsonb,
  p_worker text,
  p_items jsonb,
  p_limit integer,
  p_job_id uuid,
  p_lease_ms integer
) returns json
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_done json;
begin
  v_done := job_service_api.complete_tasks(p_ctx, p_worker, p_items);
  -- a claim from a job that is gone (deleted meanwhile) gets nothing: the report stands
  return json_build_object('tasks', v_done, 'claimed', coalesce(
    array_to_json(job_service.claim(p_ctx, p_worker, p_limit, p_job_id, p_lease_ms)), '[]'::json));
end
$$;
comment on function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer) is
  'completeTask(s) with claim: the report as complete_tasks makes it, then a claim as claim_tasks '
  'makes it (nothing from a job that is gone), in one transaction; answers {tasks, claimed}.';

revoke execute on function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)
  from public;
alter function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)
  security definer set search_path = '';
grant execute on function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)
  to job_service_runtime;
