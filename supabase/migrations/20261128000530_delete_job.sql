-- deleteJob: immediate deletion of a job that is not executing, safe stop of one that is (deleted
-- when its last running task stops: job_service.finish_cancelling), or forced deletion.

create function job_service_api.delete_job(p_ctx jsonb, p_job_id uuid, p_force boolean) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_owner constant uuid := job_service.visible_job_owner(p_ctx);
  v_job job_service.jobs;
  v_tasks integer;
  v_errors integer;
  v_events integer;
begin
  perform job_service.set_request_context(p_ctx);
  -- FOR UPDATE waits for task work in flight (it holds the row FOR KEY SHARE), so what runs now
  -- is known exactly, and no claim can start until this transaction ends
  select * into v_job from job_service.jobs
  where id = p_job_id and (v_owner is null or user_id = v_owner)
  for update;
  if not found then
    perform job_service.raise_not_found(p_job_id);
  end if;

  if not p_force and (job_service.job_counts(p_job_id)).running > 0 then
    if v_job.deletion_requested_at is null then
      perform job_service.cancel_pending_tasks(p_job_id);
      perform job_service.stop_running_tasks(p_job_id);
      update job_service.jobs
      set status = 'cancelling', deletion_requested_at = now(), next_attempt_at = null
      where id = p_job_id;
    end if;
    return jsonb_build_object('job_id', p_job_id, 'deleted', false, 'status', 'cancelling',
                              'deletion', 'pending');
  end if;

  select count(*) into v_tasks from job_service.tasks where job_id = p_job_id;
  select count(*) into v_errors from job_service.job_errors where job_id = p_job_id;
  select count(*) into v_events from job_service.job_events where job_id = p_job_id;
  -- everything the job owns goes with it (ON DELETE CASCADE); its audit rows and sent
  -- notifications stay
  delete from job_service.jobs where id = p_job_id;
  return jsonb_build_object('job_id', p_job_id, 'deleted', true, 'tasks_deleted', v_tasks,
                            'errors_deleted', v_errors, 'events_deleted', v_events);
end
$$;
comment on function job_service_api.delete_job(jsonb, uuid, boolean) is
  'deleteJob: a job with no running task (or any job with p_force) is deleted now with everything it '
  'owns, in one transaction, with counts; a job with running tasks is stopped safely (cancelling, '
  'pending tasks cancelled, running ones told to stop) and deleted when its last task stops. Asking '
  'again while the deletion is pending answers the same; an absent job is JOB_NOT_FOUND.';
