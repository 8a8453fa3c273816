-- deleteJob: immediate deletion of a job that is not executing, safe stop of one that is (deleted
-- when its last running task stops: private.finish_cancelling), or forced deletion.

create function batch_api.delete_job(p_ctx jsonb, p_job_id uuid, p_force boolean) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_owner constant uuid := private.visible_job_owner(p_ctx);
  v_job public.jobs;
  v_tasks integer;
  v_errors integer;
  v_events integer;
begin
  perform private.set_request_context(p_ctx);
  -- FOR UPDATE waits for task work in flight (it holds the row FOR KEY SHARE), so what runs now
  -- is known exactly, and no claim can start until this transaction ends
  select * into v_job from public.jobs
  where id = p_job_id and (v_owner is null or user_id = v_owner)
  for update;
  if not found then
    perform private.raise_not_found(p_job_id);
  end if;

  if not p_force and (private.job_counts(p_job_id)).running > 0 then
    if v_job.deletion_requested_at is null then
      perform private.cancel_pending_tasks(p_job_id);
      perform private.stop_running_tasks(p_job_id);
      update public.jobs
      set status = 'cancelling', deletion_requested_at = now(), next_attempt_at = null
      where id = p_job_id;
    end if;
    return jsonb_build_object('job_id', p_job_id, 'deleted', false, 'status', 'cancelling',
                              'deletion', 'pending');
  end if;

  select count(*) into v_tasks from public.tasks where job_id = p_job_id;
  select count(*) into v_errors from public.job_errors where job_id = p_job_id;
  select count(*) into v_events from public.job_events where job_id = p_job_id;
  -- everything the job owns goes with it (ON DELETE CASCADE); its audit rows and sent
  -- notifications stay
  delete from public.jobs where id = p_job_id;
  return jsonb_build_object('job_id', p_job_id, 'deleted', true, 'tasks_deleted', v_tasks,
                            'errors_deleted', v_errors, 'events_deleted', v_events);
end
$$;
comment on function batch_api.delete_job(jsonb, uuid, boolean) is
  'deleteJob: a job with no running task (or any job with p_force) is deleted now with everything it '
  'owns, in one transaction, with counts; a job with running tasks is stopped safely (cancelling, '
  'pending tasks cancelled, running ones told to stop) and deleted when its last task stops. Asking '
  'again while the deletion is pending answers the same; an absent job is JOB_NOT_FOUND.';
