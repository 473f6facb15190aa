//! The dataset's steps, the prepare function's: `queued` fixes the
//! dataset id (or takes the reused dataset), `preparing` reads the exports
//! and writes the dataset. They need the bucket and the table, no provider:
//! the prepare binary links the tokenizer and no adapter.

use chrono::Utc;

use super::{Ledger, PipelineError, Step, Steps};
use crate::blob::Blobs;
use crate::dataset::fanout::{Advance, FanOut, FanOutLimits, PrepareBudget};
use crate::dataset::{DatasetStats, PrepareSettings, PreparedDataset};
use crate::domain::{DatasetId, DatasetRecord, EventLevel, Run, RunStats, RunStatus};
use crate::provider::profiles::profile;
use crate::store::StoreError;

/// The statuses these steps take a run out of.
pub(super) const COVERS: [RunStatus; 2] = [RunStatus::Queued, RunStatus::Preparing];

/// Queued and preparing.
pub struct DatasetSteps {
    pub blobs: Blobs,
    /// When a run is prepared in one invocation, fanned out, or refused.
    pub limits: FanOutLimits,
    /// The memory and `/tmp` the runs this process prepares at once share
    /// (built from `limits`): no run's size can fail or kill another's.
    pub budget: PrepareBudget,
}

impl DatasetSteps {
    /// The steps with `limits` and a budget of their own for the runs of
    /// one process.
    pub fn new(blobs: Blobs, limits: FanOutLimits) -> Self {
        Self {
            blobs,
            budget: PrepareBudget::new(&limits),
            limits,
        }
    }
}

impl Steps for DatasetSteps {
    fn covers(&self, status: RunStatus) -> bool {
        COVERS.contains(&status)
    }

    async fn step(
        &self,
        ledger: &Ledger,
        run: &Run,
        deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Queued => self.start(ledger, run).await,
            RunStatus::Preparing => self.prepare(ledger, run, deadline).await,
            _ => Ok(Step::Wait(run.clone())),
        }
    }
}

impl DatasetSteps {
    /// queued: fix the dataset id before any work, so a crash while
    /// preparing retries into the same keys; or go straight to uploading
    /// when the run reuses a dataset.
    async fn start(&self, ledger: &Ledger, run: &Run) -> Result<Step, PipelineError> {
        let mut run = run.clone();
        if let Some(dataset_id) = &run.dataset_id {
            let record = ledger.store.get_dataset(&run.tenant_id, dataset_id).await?;
            let needed = profile(run.provider).dataset_format().as_str();
            if record.format != needed {
                return Err(PipelineError::DatasetFormatMismatch {
                    dataset_id: dataset_id.to_string(),
                    found: record.format.clone(),
                    needed,
                    provider: run.provider.as_str(),
                });
            }
            run.stats = Some(run_stats(&stats_of(&record)));
            if !run.prepare_only {
                let phase = format!("reusing dataset {dataset_id}");
                return Ok(Step::Continue(ledger.enter_waiting(run, phase).await?));
            }
            let (next, phase) = (
                RunStatus::Completed,
                format!("dataset {dataset_id} already prepared"),
            );
            // Queued may not jump to completed directly; go via preparing.
            if next == RunStatus::Completed {
                let run = ledger
                    .transition(run, RunStatus::Preparing, "checking dataset")
                    .await?;
                return Ok(Step::Continue(ledger.transition(run, next, phase).await?));
            }
            return Ok(Step::Continue(ledger.transition(run, next, phase).await?));
        }
        run.dataset_id = Some(DatasetId::generate());
        let run = ledger
            .transition(
                run,
                RunStatus::Preparing,
                "preparing the dataset from conversation exports",
            )
            .await?;
        Ok(Step::Continue(run))
    }

    /// preparing: read the exports and write the dataset — in this
    /// invocation for a small run, else by shards handed to the shard
    /// queue and merged when all are done ([`FanOut`]) — then record the
    /// dataset. A dataset already recorded (a crash after the write) is
    /// taken as it is.
    async fn prepare(
        &self,
        ledger: &Ledger,
        run: &Run,
        deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Step, PipelineError> {
        let dataset_id = run
            .dataset_id
            .clone()
            .ok_or_else(|| PipelineError::Inconsistent("preparing without a dataset id".into()))?;
        let settings = PrepareSettings::from_run_config(&run.tenant_id, &run.config, run.provider)?;
        let fan_out =
            FanOut::new(&self.blobs, &self.limits, &dataset_id, &settings).sharing(&self.budget);
        let record = match ledger.store.get_dataset(&run.tenant_id, &dataset_id).await {
            Ok(record) => record,
            Err(StoreError::NotFound { .. }) => {
                let prepared = match fan_out.advance(deadline).await {
                    Ok(Advance::Prepared(prepared)) => *prepared,
                    Ok(Advance::Waiting { phase, handed_out }) => {
                        return self.wait(ledger, run, phase, handed_out).await;
                    }
                    Err(e) => {
                        let e = PipelineError::from(e);
                        // The run fails: its shards' objects go too.
                        if !e.is_transient() {
                            fan_out.clean_up().await;
                        }
                        return Err(e);
                    }
                };
                if prepared.stats.files_refused_total > 0 {
                    ledger
                        .event(
                            run,
                            EventLevel::Warn,
                            "export_files_refused",
                            refused_message(&prepared.stats),
                        )
                        .await;
                }
                ledger.metrics.dataset_prepared(
                    run.provider,
                    prepared.stats.train_examples + prepared.stats.validation_examples,
                    prepared.stats.billing_tokens,
                );
                let record = dataset_record(run, &dataset_id, prepared)?;
                match ledger.store.put_dataset(&record).await {
                    Ok(()) => record,
                    Err(StoreError::AlreadyExists { .. }) => {
                        ledger
                            .store
                            .get_dataset(&run.tenant_id, &dataset_id)
                            .await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        fan_out.clean_up().await;
        let stats = stats_of(&record);
        let mut run = run.clone();
        run.stats = Some(run_stats(&stats));
        let summary = format!(
            "dataset ready: {} training and {} validation examples, about ${:.2}",
            stats.train_examples, stats.validation_examples, stats.estimated_cost_usd
        );
        if run.prepare_only {
            let phase = format!("{summary} (prepare only)");
            return Ok(Step::Continue(
                ledger.transition(run, RunStatus::Completed, phase).await?,
            ));
        }
        Ok(Step::Continue(ledger.enter_waiting(run, summary).await?))
    }
}

impl DatasetSteps {
    /// Shards are out: say how far they are (written only when it
    /// changed, so a waiting run is not rewritten every minute).
    async fn wait(
        &self,
        ledger: &Ledger,
        run: &Run,
        phase: String,
        handed_out: Option<u32>,
    ) -> Result<Step, PipelineError> {
        if let Some(shards) = handed_out {
            ledger.metrics.shards_handed_out(run.provider, shards);
            ledger
                .event(
                    run,
                    EventLevel::Info,
                    "preparation_fanned_out",
                    format!("{shards} shards handed out: {phase}"),
                )
                .await;
        }
        if run.phase == phase && run.retries == 0 {
            return Ok(Step::Wait(run.clone()));
        }
        let mut next = run.clone();
        next.phase = phase;
        next.retries = 0;
        next.updated_at = Utc::now();
        Ok(Step::Wait(ledger.store.update_run(&next).await?))
    }
}

/// The export files a preparation left out, for the run's events: how
/// many, and the first few by key and reason (the stats list more).
fn refused_message(stats: &DatasetStats) -> String {
    let listed: Vec<String> = stats
        .files_refused
        .iter()
        .take(10)
        .map(|f| format!("{} ({})", f.key, f.reason))
        .collect();
    let more = stats
        .files_refused_total
        .saturating_sub(listed.len() as u64);
    let mut message = format!(
        "{} export files could not be read and were left out: {}",
        stats.files_refused_total,
        listed.join(", ")
    );
    if more > 0 {
        message.push_str(&format!(" and {more} more (the dataset's stats list them)"));
    }
    message
}

/// The record of a freshly prepared dataset.
fn dataset_record(
    run: &Run,
    dataset_id: &DatasetId,
    prepared: PreparedDataset,
) -> Result<DatasetRecord, PipelineError> {
    let stats = serde_json::to_value(&prepared.stats)
        .map_err(|e| PipelineError::Inconsistent(format!("dataset stats do not serialise: {e}")))?;
    Ok(DatasetRecord {
        id: dataset_id.clone(),
        tenant_id: run.tenant_id.clone(),
        run_id: run.id.clone(),
        start_date: run.config.start_date,
        end_date: run.config.end_date,
        format: prepared.format.as_str().to_owned(),
        train: prepared.train,
        validation: prepared.validation,
        manifest_key: prepared.manifest_key,
        stats,
        provider_files: Vec::new(),
        created_at: Utc::now(),
        version: 0,
    })
}

/// The dataset's stats as the preparation wrote them. A record written by
/// an older version with fewer fields still reads (missing ones default).
fn stats_of(record: &DatasetRecord) -> DatasetStats {
    serde_json::from_value(record.stats.clone()).unwrap_or_default()
}

fn run_stats(stats: &DatasetStats) -> RunStats {
    RunStats {
        train_examples: stats.train_examples,
        validation_examples: stats.validation_examples,
        train_tokens: stats.billing_tokens,
        epochs: stats.epochs,
        estimated_billed_tokens: stats.estimated_charged_tokens,
        estimated_cost_usd: stats.estimated_cost_usd,
        evaluation_estimated_cost_usd: None,
        evaluation_estimated_tokens: None,
    }
}
