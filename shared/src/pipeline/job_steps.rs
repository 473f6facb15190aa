//! The job's steps: `submitting` creates (or finds again) the provider's
//! job, `training` follows it to its end and records the model. What a push
//! about a job may advance, and the monitor's after uploading. Needs the
//! table and the providers.

use chrono::Utc;

use super::{Ledger, PipelineError, Step, Steps};
use crate::domain::curve::{MetricPoint, TrainingMetrics};
use crate::domain::fleet::Usd;
use crate::domain::{
    EventLevel, JobInfo, JobStatus, ModelCheckpoint, ModelId, ModelRecord, ModelStatus, Run,
    RunEvent, RunStatus, ServingChoice,
};
use crate::provider::{
    CreateJob, FineTuningProvider, JobTags, ProviderCheckpoint, ProviderFileRef, ProviderJob,
    Providers,
};
use crate::store::{JobOwner, StoreError};

/// Provider events copied per tick; the rest follow on the next one.
const EVENTS_PER_TICK: usize = 100;

/// The statuses these steps take a run out of.
pub(super) const COVERS: [RunStatus; 2] = [RunStatus::Submitting, RunStatus::Training];

/// Submitting and training.
pub struct JobSteps {
    pub providers: Providers,
}

impl Steps for JobSteps {
    fn covers(&self, status: RunStatus) -> bool {
        COVERS.contains(&status)
    }

    async fn step(
        &self,
        ledger: &Ledger,
        run: &Run,
        _deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Submitting => self.submit(ledger, run).await,
            RunStatus::Training => self.sync_training(ledger, run).await,
            _ => Ok(Step::Wait(run.clone())),
        }
    }
}

impl JobSteps {
    /// submitting: find the job this run may already have (a crash after
    /// creating it), or create it; then record it.
    async fn submit(&self, ledger: &Ledger, run: &Run) -> Result<Step, PipelineError> {
        let provider = self.providers.get(run.provider)?;
        let tags = JobTags {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
        };
        let existing = provider.find_jobs(&tags).await?;
        let (job, adopted) = match existing.into_iter().next() {
            Some(job) => (job, true),
            None => {
                let request = self.create_request(ledger, run, tags).await?;
                (provider.create_job(&request).await?, false)
            }
        };
        // Before the run names the job: a push about a recorded job then
        // always finds its run.
        let owner = JobOwner {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
        };
        ledger
            .store
            .put_job_owner(run.provider, &job.id, &owner)
            .await?;
        let mut next = run.clone();
        next.job = Some(job_info(&job, None));
        if let (Some(cost), Some(stats)) = (job.estimated_cost_usd, next.stats.as_mut()) {
            // The provider's own estimate beats ours (Together prices by
            // its tokenizer and its current list).
            stats.estimated_cost_usd = (cost * 100.0).round() / 100.0;
        }
        let phase = format!("job {} {}", job.id, job.provider_status);
        match ledger.transition(next, RunStatus::Training, phase).await {
            Ok(stored) => {
                if adopted {
                    ledger
                        .event(
                            &stored,
                            EventLevel::Warn,
                            "job_adopted",
                            format!(
                                "found job {} created before an interruption; not creating another",
                                job.id
                            ),
                        )
                        .await;
                }
                Ok(Step::Continue(stored))
            }
            Err(PipelineError::Store(StoreError::VersionConflict { .. })) => {
                // Cancelled while we were creating the job: stop the job
                // we just made rather than let it train unpaid-for.
                let mut current = ledger.store.get_run(&run.tenant_id, &run.id).await?;
                if current.status == RunStatus::Cancelled && current.job.is_none() {
                    let cancelled = provider.cancel_job(&job.id).await?;
                    current.job = Some(job_info(&cancelled, None));
                    let stored = ledger.store.update_run(&current).await?;
                    ledger
                        .event(
                            &stored,
                            EventLevel::Warn,
                            "job_cancelled",
                            format!(
                                "run was cancelled while job {} was being created; job cancelled",
                                job.id
                            ),
                        )
                        .await;
                    return Ok(Step::Wait(stored));
                }
                Ok(Step::Wait(current))
            }
            Err(e) => Err(e),
        }
    }

    async fn create_request(
        &self,
        ledger: &Ledger,
        run: &Run,
        tags: JobTags,
    ) -> Result<CreateJob, PipelineError> {
        let dataset_id = run
            .dataset_id
            .clone()
            .ok_or_else(|| PipelineError::Inconsistent("submitting without a dataset".into()))?;
        let record = ledger
            .store
            .get_dataset(&run.tenant_id, &dataset_id)
            .await?;
        let file_ref = |sha: &str| {
            record
                .provider_file(run.provider, sha)
                .map(|id| ProviderFileRef { id: id.to_owned() })
        };
        let training_file = file_ref(&record.train.sha256).ok_or_else(|| {
            PipelineError::Inconsistent("the training file was never uploaded".into())
        })?;
        let validation_file = record.validation.as_ref().and_then(|v| file_ref(&v.sha256));
        Ok(CreateJob {
            tags,
            base_model: run.config.base_model.clone(),
            training_file,
            validation_file,
            hyperparameters: run.config.hyperparameters,
            suffix: Some(run.tenant_id.as_str().to_owned()),
            seed: Some(run.config.seed),
        })
    }

    /// training: copy the job's state and its new events; finish the run
    /// when the job ends.
    async fn sync_training(&self, ledger: &Ledger, run: &Run) -> Result<Step, PipelineError> {
        let provider = self.providers.get(run.provider)?;
        let known = run
            .job
            .clone()
            .ok_or_else(|| PipelineError::Inconsistent("training without a job".into()))?;
        // Two independent reads at the provider: one round trip, not two.
        let (job, copied) = futures::try_join!(
            async { Ok::<_, PipelineError>(provider.get_job(&known.provider_job_id).await?) },
            self.copy_events(ledger, run, provider.as_ref(), &known),
        )?;
        let now = Utc::now();
        let mut info = job_info(&job, copied.cursor);
        (info.step, info.total_steps) = (known.step, known.total_steps);
        if !copied.points.is_empty() {
            // Before the run's cursor moves past these events: a crash in
            // between lists them again, and merging is idempotent.
            let metrics = ledger
                .store
                .merge_metrics(&run.tenant_id, &run.id, &copied.points, copied.total_steps)
                .await?;
            info.step = metrics.last_step();
            info.total_steps = metrics.total_steps;
        }
        if job.status == known.status && run.retries == 0 && !worth_recording(&known, &info, now) {
            // Most ticks of a long job see nothing new: no write at all.
            return Ok(Step::Wait(run.clone()));
        }
        let mut next = run.clone();
        next.job = Some(info);
        next.updated_at = now;
        next.retries = 0;
        if job.status.is_terminal()
            && let Some(admission) = next.admission.as_mut()
            && let Some(cost) = billed_cost(run, job.trained_tokens)
        {
            // Settled in place of the estimate when the run ends.
            admission.cost = Some(cost);
        }
        let checkpoints = if job.status.is_terminal() {
            let (checkpoints, metrics) = self
                .collect_final_metrics(ledger, run, provider.as_ref(), &job)
                .await?;
            if let Some(metrics) = metrics
                && let Some(info) = next.job.as_mut()
            {
                info.step = metrics.last_step().max(info.step);
                info.total_steps = metrics.total_steps.or(info.total_steps);
            }
            checkpoints
        } else {
            Vec::new()
        };
        let step = match job.status {
            JobStatus::Succeeded => {
                // Recorded before the run moves on: a crash between the
                // two records it again (same id, kept once), while a run
                // moved first would never come back to record it. Then the
                // deploying step makes it callable.
                // A model the tenant serves itself is ready as trained.
                let serving =
                    provider.serving().is_some() && next.config.serving == ServingChoice::OnDemand;
                self.record_model(ledger, &next, &job, checkpoints, serving)
                    .await?;
                let model = job.fine_tuned_model.clone().unwrap_or_default();
                Step::Continue(
                    ledger
                        .transition(
                            next,
                            RunStatus::Deploying,
                            format!("fine-tuned model trained: {model}"),
                        )
                        .await?,
                )
            }
            JobStatus::Failed => {
                let message = job
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "the provider failed the job without a reason".into());
                next.fail(
                    "provider_job_failed",
                    format!("job {} failed: {message}", job.id),
                    Utc::now(),
                )?;
                let stored = ledger.store.update_run(&next).await?;
                ledger.metrics.run_ended(stored.provider, stored.status);
                ledger
                    .event(
                        &stored,
                        EventLevel::Error,
                        "status_changed",
                        format!("failed: {message}"),
                    )
                    .await;
                Step::Continue(stored)
            }
            JobStatus::Cancelled => Step::Continue(
                ledger
                    .transition(next, RunStatus::Cancelled, "job cancelled at the provider")
                    .await?,
            ),
            _ => {
                next.phase = format!("job {} {}", job.id, job.provider_status);
                Step::Wait(ledger.store.update_run(&next).await?)
            }
        };
        // Counted once the ended run is recorded: a write that fails before
        // that is retried by the next tick, which would count it again.
        if job.status.is_terminal()
            && let Some(tokens) = job.trained_tokens
        {
            ledger.metrics.billed_tokens(run.provider, tokens);
        }
        Ok(step)
    }

    /// What an ended job leaves besides its events: its checkpoints
    /// (OpenAI) and step metrics files (Bedrock), merged into the run's
    /// curve. Nice to have, never worth holding back a finished run for: a
    /// provider that fails to answer is logged and skipped. Returns the
    /// checkpoints, and the curve when it changed.
    async fn collect_final_metrics(
        &self,
        ledger: &Ledger,
        run: &Run,
        provider: &dyn FineTuningProvider,
        job: &ProviderJob,
    ) -> Result<(Vec<ProviderCheckpoint>, Option<TrainingMetrics>), PipelineError> {
        let owner = JobTags {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
        };
        let (checkpoints, files) = futures::join!(
            provider.list_checkpoints(&job.id),
            provider.step_metrics(&job.id, &owner)
        );
        let checkpoints = checkpoints.unwrap_or_else(|e| {
            tracing::warn!(run_id = %run.id, code = e.code(), error = %crate::telemetry::chain(&e), "could not list checkpoints");
            Vec::new()
        });
        let mut points: Vec<MetricPoint> = checkpoints
            .iter()
            .map(|c| MetricPoint {
                train_loss: c.train_loss,
                valid_loss: c.valid_loss,
                full_valid_loss: c.full_valid_loss,
                ..MetricPoint::at(c.step)
            })
            .collect();
        match files {
            Ok(files) => points.extend(files),
            Err(e) => {
                tracing::warn!(run_id = %run.id, code = e.code(), error = %crate::telemetry::chain(&e), "could not read the job's step metrics");
            }
        }
        if points.is_empty() {
            return Ok((checkpoints, None));
        }
        let metrics = ledger
            .store
            .merge_metrics(&run.tenant_id, &run.id, &points, None)
            .await?;
        Ok((checkpoints, Some(metrics)))
    }

    /// The tenant's record of the model a succeeded job made (none when
    /// the provider named no model).
    async fn record_model(
        &self,
        ledger: &Ledger,
        run: &Run,
        job: &ProviderJob,
        checkpoints: Vec<ProviderCheckpoint>,
        needs_deployment: bool,
    ) -> Result<(), PipelineError> {
        let Some(provider_model) = job.fine_tuned_model.clone() else {
            return Ok(());
        };
        let metrics = ledger.store.get_metrics(&run.tenant_id, &run.id).await?;
        let model = ModelRecord {
            id: ModelId::for_run(&run.id),
            tenant_id: run.tenant_id.clone(),
            provider: run.provider,
            base_model: run.config.base_model.clone(),
            provider_model,
            run_id: run.id.clone(),
            dataset_id: run.dataset_id.clone(),
            created_at: job.finished_at.unwrap_or_else(Utc::now),
            trained_tokens: job.trained_tokens,
            final_train_loss: metrics.final_train_loss(),
            final_valid_loss: metrics.final_valid_loss(),
            base_model_shutdown: crate::provider::shutdown::shutdown_date(
                run.provider,
                &run.config.base_model,
            ),
            // Not activatable until it can answer.
            status: if needs_deployment {
                ModelStatus::Deploying
            } else {
                ModelStatus::Ready
            },
            deployment: None,
            deleted_at: None,
            evaluation: None,
            weights: None,
            checkpoints: checkpoints
                .into_iter()
                .map(|c| ModelCheckpoint {
                    step: c.step,
                    model: c.model,
                    train_loss: c.train_loss,
                    valid_loss: c.full_valid_loss.or(c.valid_loss),
                })
                .collect(),
        };
        if ledger.store.put_model(&model).await? {
            tracing::info!(run_id = %run.id, model_id = %model.id, "model recorded");
        }
        Ok(())
    }

    /// Stores the provider's events newer than the last one stored, each
    /// once, and returns the new cursor.
    async fn copy_events(
        &self,
        ledger: &Ledger,
        run: &Run,
        provider: &dyn FineTuningProvider,
        known: &JobInfo,
    ) -> Result<CopiedEvents, PipelineError> {
        let events = provider
            .list_events(
                &known.provider_job_id,
                known.events_cursor.as_deref(),
                EVENTS_PER_TICK,
            )
            .await?;
        let mut cursor = known.events_cursor.clone();
        let mut copies = Vec::with_capacity(events.len());
        let (mut points, mut total_steps) = (Vec::new(), None);
        for e in events {
            if e.kind == "metrics"
                && let Some((point, total)) = e.data.as_ref().and_then(MetricPoint::from_event_data)
            {
                points.push(point);
                total_steps = total.or(total_steps);
            }
            let level = match e.level.as_str() {
                "error" => EventLevel::Error,
                "warn" | "warning" => EventLevel::Warn,
                _ => EventLevel::Info,
            };
            let event = RunEvent {
                id: RunEvent::id_for_provider_event(run.provider.as_str(), &e.id),
                run_id: run.id.clone(),
                at: e.created_at,
                source: crate::domain::EventSource::Provider,
                level,
                kind: e.kind.clone(),
                message: e.message.clone(),
                data: e.data.clone(),
            };
            copies.push(event);
            cursor = Some(e.id);
        }
        ledger.store.put_events(&run.tenant_id, &copies).await?;
        Ok(CopiedEvents {
            cursor,
            points,
            total_steps,
        })
    }
}

/// What one copy of provider events found: the new cursor and the step
/// metrics among them.
struct CopiedEvents {
    cursor: Option<String>,
    points: Vec<MetricPoint>,
    total_steps: Option<u64>,
}

/// How long a training run may go without its record being rewritten when
/// the provider reports nothing new: `synced_at` stays this fresh, and the
/// other ticks cost no write (a write per run per minute is most of the
/// table's bill while jobs train).
pub(crate) const SYNC_HEARTBEAT: chrono::Duration = chrono::Duration::minutes(10);

/// Whether `fresh` (just read from the provider) says anything `known` (on
/// the run) does not, or the heartbeat is due.
fn worth_recording(known: &JobInfo, fresh: &JobInfo, now: chrono::DateTime<Utc>) -> bool {
    let mut same = fresh.clone();
    same.synced_at = known.synced_at;
    same != *known || now - known.synced_at >= SYNC_HEARTBEAT
}

fn job_info(job: &ProviderJob, events_cursor: Option<String>) -> JobInfo {
    JobInfo {
        provider_job_id: job.id.clone(),
        status: job.status,
        provider_status: job.provider_status.clone(),
        fine_tuned_model: job.fine_tuned_model.clone(),
        trained_tokens: job.trained_tokens,
        error: job.error.as_ref().map(|e| e.message.clone()),
        estimated_finish: job.estimated_finish,
        finished_at: job.finished_at,
        synced_at: Utc::now(),
        events_cursor,
        step: None,
        total_steps: None,
    }
}

/// What a run's training cost once its job ended: the tokens the provider
/// billed at the base model's training price (the evaluation's estimate
/// is added when the run settles). `None` when the provider reported no
/// billed tokens or the model has no known price: the reservation then
/// stands as spent.
fn billed_cost(run: &Run, trained_tokens: Option<u64>) -> Option<Usd> {
    let tokens = trained_tokens?;
    let price = crate::provider::profiles::profile(run.provider)
        .training_price_per_million(&run.config.base_model)?;
    // Exact to the micro-dollar (the estimate's helper rounds to cents).
    Some(Usd::from_dollars(tokens as f64 * price / 1_000_000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(at: chrono::DateTime<Utc>) -> JobInfo {
        JobInfo {
            provider_job_id: "ftjob-1".into(),
            status: JobStatus::Running,
            provider_status: "running".into(),
            fine_tuned_model: None,
            trained_tokens: None,
            error: None,
            estimated_finish: None,
            finished_at: None,
            synced_at: at,
            events_cursor: Some("ftevent-1".into()),
            step: None,
            total_steps: None,
        }
    }

    #[test]
    fn the_same_job_state_is_not_worth_a_write_until_the_heartbeat() {
        let t0 = Utc::now();
        let known = info(t0);
        let later = t0 + chrono::Duration::minutes(3);
        assert!(!worth_recording(&known, &info(later), later));
        let due = t0 + SYNC_HEARTBEAT;
        assert!(worth_recording(&known, &info(due), due));
    }

    #[test]
    fn any_new_fact_about_the_job_is_worth_a_write() {
        let t0 = Utc::now();
        let known = info(t0);
        let mut cursor = info(t0);
        cursor.events_cursor = Some("ftevent-2".into());
        let mut eta = info(t0);
        eta.estimated_finish = Some(t0);
        let mut tokens = info(t0);
        tokens.trained_tokens = Some(10);
        for fresh in [cursor, eta, tokens] {
            assert!(worth_recording(&known, &fresh, t0));
        }
    }
}
