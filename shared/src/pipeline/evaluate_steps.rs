//! The evaluating step: is the trained model better than what the tenant
//! uses today? Then activation by the run's policy.
//!
//! 1. **Plan** (once): sample the run's validation lines (seeded), pick
//!    the baseline (the tenant's active model, else the base model), price
//!    the calls, and store the plan under the run's evaluation prefix; the
//!    run's stats and `evaluation` carry the estimate before any call.
//! 2. **Answer** (as many ticks as it takes): for each sampled example not
//!    yet done, the candidate's and the baseline's answers, and with a
//!    judge its two verdicts (both orders). Every answer is stored the
//!    moment it arrives and looked for before it is asked, so a crash or
//!    a deadline resumes without paying for an answer twice; the example's
//!    row (answers redacted, scores) is stored when all are in. Bounded
//!    concurrency; no example is started within [`DEADLINE_MARGIN`] of the
//!    invocation's deadline.
//! 3. **Decide**: the rows' scores (and verdicts) to a
//!    [`Summary`](crate::evaluation::Summary) with its intervals, recorded
//!    on the run and its model; the model is activated when the policy
//!    says so, and only over the active model the plan saw (a condition
//!    in the write: a model the tenant activated meanwhile stays, and the
//!    record says `baseline_changed`); the run completes with a phase that
//!    says what happened.
//!
//! Answers and prompts are never logged. Needs the table, the bucket and
//! the providers' inference.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

use super::{Ledger, PipelineError, Step, Steps};
use crate::blob::keys::{
    evaluation_answer_key, evaluation_plan_key, evaluation_prefix, evaluation_row_key,
};
use crate::blob::{BlobError, Blobs};
use crate::dataset::redact::{Redactions, redact, redact_json};
use crate::domain::{
    ActivationDecision, ActivationPolicy, EvaluationRecord, EvaluationStatus, EventLevel, ModelId,
    ModelRecord, ModelStatus, ProviderKind, Run, RunStatus, ScoredModel, ServingChoice,
};
use crate::evaluation::row::{
    EvaluationRow, JUDGE_INSTRUCTION_TOKENS, JUDGE_MAX_TOKENS, JudgedRow, ScoredAnswer,
    StoredAnswer, StoredVerdict, estimated_tokens, judge_example, prompt_excerpt, read_verdict,
    render_conversation, render_reference,
};
use crate::evaluation::{
    Answer, CostInputs, Decision, EvalExample, EvaluationInput, JudgeCost, JudgeInput, Outcome,
    PairedScore, Price, combine_orders, estimate_cost, parse_example, sample_indices, score_answer,
    summarize,
};
use crate::provider::ProviderError;
use crate::provider::inference::Inference;
use crate::provider::profiles::profile;
use crate::provider::registry::Answerers;
use crate::store::{Activation, StoreError};

/// The statuses these steps take a run out of.
pub(super) const COVERS: [RunStatus; 1] = [RunStatus::Evaluating];

/// Examples answered at once (each asks two or four models).
const CONCURRENCY: usize = 8;
/// No example is started this close to the invocation's deadline: room
/// for the answers in flight and the writes that record them.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(30);
/// How long one step answers when no deadline is known (tools, tests,
/// pushes): within the fixed lease such a caller takes.
const BUDGET_WITHOUT_DEADLINE: Duration = Duration::from_secs(45);
/// Rows read at once when the summary is made.
const READ_CONCURRENCY: usize = 16;

/// Evaluating.
pub struct EvaluateSteps {
    pub blobs: Blobs,
    pub answerers: Answerers,
}

impl Steps for EvaluateSteps {
    fn covers(&self, status: RunStatus) -> bool {
        COVERS.contains(&status)
    }

    async fn step(
        &self,
        ledger: &Ledger,
        run: &Run,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Evaluating => self.evaluate(ledger, run, deadline).await,
            _ => Ok(Step::Wait(run.clone())),
        }
    }
}

/// A model and the provider that answers for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Target {
    provider: ProviderKind,
    model: String,
}

/// The prices an evaluation's calls are billed at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct PlanPrices {
    candidate: Price,
    baseline: Price,
    #[serde(default)]
    judge: Option<Price>,
}

impl PlanPrices {
    /// What the rows' calls cost, from the tokens each provider billed.
    fn cost(&self, rows: &[EvaluationRow]) -> f64 {
        let usd = |price: Price, input: u64, output: u64| {
            (input as f64 * price.input_per_1k + output as f64 * price.output_per_1k) / 1_000.0
        };
        rows.iter()
            .map(|row| {
                let judged = match (&row.judge, self.judge) {
                    (Some(j), Some(price)) => usd(price, j.input_tokens, j.output_tokens),
                    _ => 0.0,
                };
                usd(
                    self.candidate,
                    row.candidate.input_tokens,
                    row.candidate.output_tokens,
                ) + usd(
                    self.baseline,
                    row.baseline.input_tokens,
                    row.baseline.output_tokens,
                ) + judged
            })
            .sum()
    }
}

/// What an evaluation does, fixed when it starts (a resumed evaluation
/// asks the same models the same examples, even if the tenant activated
/// another model meanwhile).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    candidate: Target,
    baseline: Target,
    #[serde(default)]
    judge: Option<Target>,
    max_tokens: u32,
    /// The validation lines evaluated, in file order.
    indices: Vec<usize>,
    estimated_cost_usd: f64,
    estimated_tokens: u64,
    /// The candidate's, the baseline's and the judge's prices, with which
    /// the finished evaluation is priced from its billed tokens (`None` in
    /// a plan stored before they were kept: its estimate stands).
    #[serde(default)]
    prices: Option<PlanPrices>,
    /// The tenant's active model when the plan was made (`None`: it had
    /// none). The evaluation activates its model only if this is still the
    /// active one: a model activated while it ran is the tenant's newer
    /// choice, and an evaluation against another baseline has no say.
    #[serde(default)]
    active_model: Option<ModelId>,
    /// Whether `active_model` was recorded: a plan stored before it was
    /// activates as such plans did, without the condition.
    #[serde(default)]
    active_recorded: bool,
}

impl Plan {
    /// The active model an activation after this plan's evaluation must
    /// find: `Some(None)` for none; `None` for no condition (an old plan).
    fn baseline_active(&self) -> Option<Option<&ModelId>> {
        self.active_recorded.then_some(self.active_model.as_ref())
    }
}

/// The marker of an example a provider refused to answer (stored with
/// the refusal's code and message; the example is left out).
const REFUSED: &str = "refused";

/// What became of one example.
enum Answered {
    Row(Box<EvaluationRow>),
    Refused(usize),
}

/// The models answering for one plan.
struct Callers {
    candidate: Arc<dyn Inference>,
    baseline: Arc<dyn Inference>,
    judge: Option<Arc<dyn Inference>>,
}

impl EvaluateSteps {
    async fn evaluate(
        &self,
        ledger: &Ledger,
        run: &Run,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Step, PipelineError> {
        let model = match ledger
            .store
            .get_model(&run.tenant_id, &ModelId::for_run(&run.id))
            .await
        {
            Ok(model) => model,
            Err(StoreError::NotFound { .. }) => {
                let record = EvaluationRecord::skipped("", "the job produced no model to evaluate");
                return self.finish(ledger, run, None, record, None).await;
            }
            Err(e) => return Err(e.into()),
        };
        if !run.config.evaluation.enabled {
            let record =
                EvaluationRecord::skipped(model.endpoint(), "disabled by the run's config");
            return self.finish(ledger, run, Some(&model), record, None).await;
        }
        if run.config.serving == ServingChoice::SelfManaged {
            let record =
                EvaluationRecord::skipped(model.endpoint(), "the tenant serves the model itself");
            return self.finish(ledger, run, Some(&model), record, None).await;
        }
        let plan = match self.plan(ledger, run, &model).await? {
            Ok(plan) => plan,
            Err(skipped) => return self.finish(ledger, run, Some(&model), skipped, None).await,
        };
        if run.evaluation.is_none() {
            // The estimate is on record before the first call.
            let mut next = run.clone();
            next.evaluation = Some(running(&plan, run));
            if let Some(stats) = next.stats.as_mut() {
                stats.evaluation_estimated_cost_usd = Some(plan.estimated_cost_usd);
                stats.evaluation_estimated_tokens = Some(plan.estimated_tokens);
            }
            next.phase = format!(
                "evaluating {} against {} on {} examples (estimated ${:.2})",
                plan.candidate.model,
                plan.baseline.model,
                plan.indices.len(),
                plan.estimated_cost_usd
            );
            next.updated_at = Utc::now();
            return Ok(Step::Continue(ledger.store.update_run(&next).await?));
        }
        let callers = Callers {
            candidate: self.answerers.get(plan.candidate.provider)?,
            baseline: self.answerers.get(plan.baseline.provider)?,
            judge: match &plan.judge {
                Some(judge) => Some(self.answerers.get(judge.provider)?),
                None => None,
            },
        };
        let prefix = evaluation_prefix(&run.tenant_id, &run.id);
        let stored: HashSet<String> = self
            .blobs
            .list_prefix(&prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let refused_key = |i: usize| evaluation_answer_key(&run.tenant_id, &run.id, i, REFUSED);
        let mut refused: HashSet<usize> = plan
            .indices
            .iter()
            .copied()
            .filter(|i| stored.contains(&refused_key(*i)))
            .collect();
        let pending: Vec<usize> = plan
            .indices
            .iter()
            .copied()
            .filter(|i| {
                !refused.contains(i)
                    && !stored.contains(&evaluation_row_key(&run.tenant_id, &run.id, *i))
            })
            .collect();
        let mut rows: HashMap<usize, EvaluationRow> = HashMap::new();
        if !pending.is_empty() {
            let stop_at = match deadline {
                Some(deadline) => deadline - to_chrono(DEADLINE_MARGIN),
                None => Utc::now() + to_chrono(BUDGET_WITHOUT_DEADLINE),
            };
            let examples = self.read_examples(run, &pending).await?;
            let results: Vec<Result<Answered, PipelineError>> = futures::stream::iter(examples)
                .take_while(|_| std::future::ready(Utc::now() < stop_at))
                .map(|example| self.answer_example(run, &plan, &callers, &stored, example))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut first_error = None;
            for result in results {
                match result {
                    Ok(Answered::Row(row)) => {
                        rows.insert(row.index, *row);
                    }
                    Ok(Answered::Refused(index)) => {
                        refused.insert(index);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            ledger
                .metrics
                .examples_scored(run.provider, rows.len() as u64);
            let still_pending = pending
                .iter()
                .filter(|i| !rows.contains_key(i) && !refused.contains(i))
                .count();
            let done = plan.indices.len() - still_pending;
            if let Some(e) = first_error {
                return Err(e);
            }
            if done < plan.indices.len() {
                let mut next = run.clone();
                next.phase = format!(
                    "evaluating: {done} of {} examples answered",
                    plan.indices.len()
                );
                next.updated_at = Utc::now();
                next.retries = 0;
                return Ok(Step::Wait(ledger.store.update_run(&next).await?));
            }
        }
        let rows = self.all_rows(run, &plan, rows, &refused).await?;
        if rows.is_empty() {
            let record = EvaluationRecord::skipped(
                &plan.candidate.model,
                "the providers refused every sampled example (see the run's events)",
            );
            return self
                .finish(ledger, run, Some(&model), record, plan.baseline_active())
                .await;
        }
        if !refused.is_empty() {
            ledger
                .event(
                    run,
                    EventLevel::Warn,
                    "examples_left_out",
                    format!(
                        "{} of {} sampled examples were left out of the evaluation: a provider refused to answer them (their reasons are under the run's evaluation prefix)",
                        refused.len(),
                        plan.indices.len()
                    ),
                )
                .await;
        }
        let record = decide(&plan, &rows, run.config.seed)?;
        self.finish(ledger, run, Some(&model), record, plan.baseline_active())
            .await
    }

    /// The stored plan, or a new one stored now; `Err(record)` when there
    /// is nothing to evaluate on.
    async fn plan(
        &self,
        ledger: &Ledger,
        run: &Run,
        model: &ModelRecord,
    ) -> Result<Result<Plan, EvaluationRecord>, PipelineError> {
        let key = evaluation_plan_key(&run.tenant_id, &run.id);
        match self.blobs.get_json::<Plan>(&key).await {
            Ok(plan) => return Ok(Ok(plan)),
            Err(BlobError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let candidate = Target {
            provider: run.provider,
            model: model.endpoint().to_owned(),
        };
        let dataset_id = run
            .dataset_id
            .as_ref()
            .ok_or_else(|| PipelineError::Inconsistent("evaluating without a dataset".into()))?;
        let dataset = ledger.store.get_dataset(&run.tenant_id, dataset_id).await?;
        let Some(validation) = dataset.validation.filter(|v| v.examples > 0) else {
            return Ok(Err(EvaluationRecord::skipped(
                &candidate.model,
                "the dataset has no validation examples to evaluate on",
            )));
        };
        let evaluation = &run.config.evaluation;
        let sampled = sample_indices(
            run.config.seed,
            usize::try_from(validation.examples).unwrap_or(usize::MAX),
            evaluation.max_examples as usize,
        );
        let examples = self.read_lines(run, &validation.key, &sampled).await?;
        if examples.is_empty() {
            return Ok(Err(EvaluationRecord::skipped(
                &candidate.model,
                "no validation example has a reference answer to compare with",
            )));
        }
        let provider = profile(run.provider);
        let active = ledger.store.get_active_model(&run.tenant_id).await?;
        let active_model = active.as_ref().map(|a| a.model_id.clone());
        let (baseline, baseline_price) = match active.filter(|a| a.model_id != model.id) {
            Some(active) => (
                Target {
                    provider: active.provider,
                    model: active.provider_model.clone(),
                },
                profile(active.provider).inference_price(&active.base_model, true),
            ),
            None => (
                Target {
                    provider: run.provider,
                    model: provider.base_inference_model(&run.config.base_model),
                },
                provider.inference_price(&run.config.base_model, false),
            ),
        };
        let judge = evaluation.judge_model.as_ref().map(|m| Target {
            provider: run.provider,
            model: m.clone(),
        });
        let inputs = CostInputs {
            examples: examples.len() as u64,
            prompt_tokens: examples
                .iter()
                .map(|e| estimated_tokens(&render_conversation(e)))
                .sum(),
            reference_tokens: examples
                .iter()
                .map(|e| estimated_tokens(&render_reference(&e.reference)))
                .sum(),
            max_answer_tokens: u64::from(evaluation.max_tokens),
        };
        let priced = known_prices(
            (
                &candidate.model,
                provider.inference_price(&run.config.base_model, true),
            ),
            (&baseline.model, baseline_price),
            judge
                .as_ref()
                .map(|j| (j.model.as_str(), provider.inference_price(&j.model, false))),
        );
        let (candidate_price, baseline_price, judge_price) = match priced {
            Ok(prices) => prices,
            Err(reason) => return Ok(Err(EvaluationRecord::skipped(&candidate.model, &reason))),
        };
        let judge_cost = judge_price.map(|price| JudgeCost {
            price,
            instruction_tokens: JUDGE_INSTRUCTION_TOKENS,
            max_verdict_tokens: u64::from(JUDGE_MAX_TOKENS),
        });
        let estimate = estimate_cost(
            &inputs,
            candidate_price,
            baseline_price,
            judge_cost.as_ref(),
        );
        let plan = Plan {
            candidate,
            baseline,
            judge,
            max_tokens: evaluation.max_tokens,
            indices: examples.iter().map(|e| e.index).collect(),
            estimated_cost_usd: (estimate.total_usd * 100.0).ceil() / 100.0,
            estimated_tokens: estimate.input_tokens + estimate.output_tokens,
            prices: Some(PlanPrices {
                candidate: candidate_price,
                baseline: baseline_price,
                judge: judge_price,
            }),
            active_model,
            active_recorded: true,
        };
        let body = serde_json::to_vec(&plan)
            .map_err(|e| PipelineError::Inconsistent(format!("an evaluation plan: {e}")))?;
        self.blobs.put_bytes(&key, body, "application/json").await?;
        Ok(Ok(plan))
    }

    /// The validation examples at `indices` (lines not parsed as an
    /// example are left out: the plan keeps only those that parse).
    async fn read_lines(
        &self,
        run: &Run,
        key: &str,
        indices: &[usize],
    ) -> Result<Vec<EvalExample>, PipelineError> {
        let wanted: HashSet<usize> = indices.iter().copied().collect();
        let last = indices.iter().max().copied().unwrap_or(0);
        let format = profile(run.provider).dataset_format();
        let mut lines = self.blobs.open(key).await?.lines();
        let mut examples = Vec::with_capacity(indices.len());
        let mut index = 0usize;
        let mut unreadable = 0usize;
        while let Some(line) = lines.next_line().await.map_err(|e| BlobError::S3 {
            op: "GetObject",
            key: key.to_owned(),
            source: Box::new(e),
        })? {
            if line.trim().is_empty() {
                continue;
            }
            if wanted.contains(&index) {
                match parse_example(&line, index, format) {
                    Ok(example) => examples.push(example),
                    Err(_) => unreadable += 1,
                }
            }
            if index >= last {
                break;
            }
            index += 1;
        }
        if unreadable > 0 {
            tracing::warn!(run_id = %run.id, unreadable, "validation lines without a usable reference were left out of the evaluation");
        }
        Ok(examples)
    }

    /// The plan's examples at `pending`.
    async fn read_examples(
        &self,
        run: &Run,
        pending: &[usize],
    ) -> Result<Vec<EvalExample>, PipelineError> {
        let dataset_id = run
            .dataset_id
            .as_ref()
            .ok_or_else(|| PipelineError::Inconsistent("evaluating without a dataset".into()))?;
        let key = crate::blob::dataset_key(
            &run.tenant_id,
            dataset_id,
            crate::blob::DatasetObject::Validation,
        );
        self.read_lines(run, &key, pending).await
    }

    /// One example: both answers (and verdicts), each from the bucket if
    /// stored before, else asked and stored; then its row.
    async fn answer_example(
        &self,
        run: &Run,
        plan: &Plan,
        callers: &Callers,
        stored: &HashSet<String>,
        example: EvalExample,
    ) -> Result<Answered, PipelineError> {
        let index = example.index;
        match self
            .answer_or_refuse(run, plan, callers, stored, example)
            .await
        {
            Ok(row) => Ok(Answered::Row(Box::new(row))),
            // A model that will not answer this prompt (too long for its
            // context, refused content): the example is left out, on
            // record, instead of failing the run after its training was
            // paid for. A transient error is retried next tick as ever.
            Err(PipelineError::Provider(ProviderError::InvalidRequest {
                message, code, ..
            })) => {
                let reason = serde_json::json!({
                    "code": code,
                    "message": message,
                });
                let body = serde_json::to_vec(&reason).map_err(|e| {
                    PipelineError::Inconsistent(format!("an evaluation refusal: {e}"))
                })?;
                self.blobs
                    .put_bytes(
                        &evaluation_answer_key(&run.tenant_id, &run.id, index, REFUSED),
                        body,
                        "application/json",
                    )
                    .await?;
                Ok(Answered::Refused(index))
            }
            Err(e) => Err(e),
        }
    }

    async fn answer_or_refuse(
        &self,
        run: &Run,
        plan: &Plan,
        callers: &Callers,
        stored: &HashSet<String>,
        example: EvalExample,
    ) -> Result<EvaluationRow, PipelineError> {
        let key = |role: &str| evaluation_answer_key(&run.tenant_id, &run.id, example.index, role);
        // `join`, not `try_join`: a failed call must not drop its sibling
        // in flight, whose answer is paid for and must be stored.
        let (candidate, baseline) = both(futures::join!(
            self.once(
                key("candidate"),
                stored,
                ask(
                    &*callers.candidate,
                    &plan.candidate.model,
                    &example,
                    plan.max_tokens
                )
            ),
            self.once(
                key("baseline"),
                stored,
                ask(
                    &*callers.baseline,
                    &plan.baseline.model,
                    &example,
                    plan.max_tokens
                )
            ),
        ))?;
        let judged = match (&plan.judge, &callers.judge) {
            (Some(target), Some(judge)) => {
                let conversation = render_conversation(&example);
                let as_a =
                    judge_example(&example, &conversation, &candidate.answer, &baseline.answer);
                let as_b =
                    judge_example(&example, &conversation, &baseline.answer, &candidate.answer);
                let (first, second) = both(futures::join!(
                    self.once(
                        key("judge-a"),
                        stored,
                        verdict(&**judge, &target.model, &as_a)
                    ),
                    self.once(
                        key("judge-b"),
                        stored,
                        verdict(&**judge, &target.model, &as_b)
                    ),
                ))?;
                Some(JudgedRow {
                    model: target.model.clone(),
                    candidate_as_a: first.verdict,
                    candidate_as_b: second.verdict,
                    outcome: combine_orders(first.read(), second.read()),
                    input_tokens: first.input_tokens.saturating_add(second.input_tokens),
                    output_tokens: first.output_tokens.saturating_add(second.output_tokens),
                })
            }
            _ => None,
        };
        let scored = |answer: StoredAnswer| ScoredAnswer {
            score: score_answer(&example.reference, &answer.answer),
            model: answer.model,
            answer: answer.answer,
            truncated: answer.truncated,
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
        };
        let row = EvaluationRow {
            index: example.index,
            prompt_excerpt: prompt_excerpt(&example),
            reference: example.reference.clone(),
            candidate: scored(candidate),
            baseline: scored(baseline),
            judge: judged,
        };
        let body = serde_json::to_vec(&row)
            .map_err(|e| PipelineError::Inconsistent(format!("an evaluation row: {e}")))?;
        self.blobs
            .put_bytes(
                &evaluation_row_key(&run.tenant_id, &run.id, example.index),
                body,
                "application/json",
            )
            .await?;
        Ok(row)
    }

    /// The value stored at `key` if it was stored before, else `ask`'s,
    /// stored now.
    async fn once<T: Serialize + DeserializeOwned>(
        &self,
        key: String,
        stored: &HashSet<String>,
        ask: impl std::future::Future<Output = Result<T, PipelineError>>,
    ) -> Result<T, PipelineError> {
        if stored.contains(&key) {
            return Ok(self.blobs.get_json(&key).await?);
        }
        let value = ask.await?;
        let body = serde_json::to_vec(&value)
            .map_err(|e| PipelineError::Inconsistent(format!("an evaluation answer: {e}")))?;
        self.blobs.put_bytes(&key, body, "application/json").await?;
        Ok(value)
    }

    /// Every row of the plan: those of this step, the rest read back.
    async fn all_rows(
        &self,
        run: &Run,
        plan: &Plan,
        mut rows: HashMap<usize, EvaluationRow>,
        refused: &HashSet<usize>,
    ) -> Result<Vec<EvaluationRow>, PipelineError> {
        let missing: Vec<usize> = plan
            .indices
            .iter()
            .copied()
            .filter(|i| !rows.contains_key(i) && !refused.contains(i))
            .collect();
        let read: Vec<EvaluationRow> = futures::stream::iter(missing)
            .map(|i| async move {
                self.blobs
                    .get_json::<EvaluationRow>(&evaluation_row_key(&run.tenant_id, &run.id, i))
                    .await
            })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        for row in read {
            rows.insert(row.index, row);
        }
        let mut rows: Vec<EvaluationRow> = rows.into_values().collect();
        rows.sort_by_key(|r| r.index);
        Ok(rows)
    }

    /// Records the evaluation on the model and the run, activates the
    /// model when the run's policy says so, and completes the run.
    /// `baseline` is the active model the plan saw (`Some(None)`: none):
    /// the activation is conditional on it still being the active one, in
    /// the write itself, so a model the tenant activated meanwhile is never
    /// replaced. `None` (no plan was made: nothing was compared) activates
    /// without that condition.
    async fn finish(
        &self,
        ledger: &Ledger,
        run: &Run,
        model: Option<&ModelRecord>,
        mut record: EvaluationRecord,
        baseline: Option<Option<&ModelId>>,
    ) -> Result<Step, PipelineError> {
        let policy = run.config.activation;
        let wanted = match policy {
            ActivationPolicy::Manual => false,
            ActivationPolicy::Always => true,
            ActivationPolicy::IfBetter => record.decision == Some(Decision::Better),
        };
        let activation = match model {
            Some(model) if wanted && model.status == ModelStatus::Ready => {
                let now = Utc::now();
                let result = match baseline {
                    Some(expected) => ledger
                        .store
                        .activate_model_over(model, expected, now)
                        .await
                        .map(|a| match a {
                            Activation::Activated(_) => ActivationDecision::Activated,
                            Activation::ActiveChanged => ActivationDecision::BaselineChanged,
                        }),
                    None => ledger
                        .store
                        .activate_model(model, now)
                        .await
                        .map(|_| ActivationDecision::Activated),
                };
                match result {
                    Ok(decision) => Some(decision),
                    // Deleted or failed meanwhile: it stays as it is.
                    Err(StoreError::ConditionFailed { .. }) => {
                        Some(ActivationDecision::NotActivated)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(_) => Some(ActivationDecision::NotActivated),
            None => None,
        };
        record.activation = activation;
        if let Some(model) = model {
            ledger
                .store
                .record_model_evaluation(&run.tenant_id, &model.id, &record)
                .await?;
        }
        let activated = activation == Some(ActivationDecision::Activated);
        let evaluated = match record.status {
            EvaluationStatus::Skipped => format!(
                "evaluation skipped: {}",
                record.reason.as_deref().unwrap_or("no reason given")
            ),
            _ => format!("evaluated: {}", record.figures()),
        };
        let sentence = activation_sentence(policy, &record, model, activation);
        if let Some(decision) = record.decision {
            ledger
                .metrics
                .evaluation_decided(run.provider, decision.as_str(), activated);
        }
        ledger
            .event(run, EventLevel::Info, "evaluated", evaluated.clone())
            .await;
        ledger
            .event(
                run,
                EventLevel::Info,
                match activation {
                    Some(ActivationDecision::Activated) => "model_activated",
                    Some(ActivationDecision::BaselineChanged) => "baseline_changed",
                    _ => "model_not_activated",
                },
                sentence.clone(),
            )
            .await;
        let mut next = run.clone();
        next.evaluation = Some(record);
        Ok(Step::Continue(
            ledger
                .transition(
                    next,
                    RunStatus::Completed,
                    format!("{evaluated}; {sentence}"),
                )
                .await?,
        ))
    }
}

/// What the activation policy did, in words.
fn activation_sentence(
    policy: ActivationPolicy,
    record: &EvaluationRecord,
    model: Option<&ModelRecord>,
    activation: Option<ActivationDecision>,
) -> String {
    let Some(model) = model else {
        return "no model to activate".to_owned();
    };
    let how = format!("POST /models/{}/activate to use it", model.id);
    match (activation, policy) {
        (Some(ActivationDecision::Activated), _) => format!(
            "model {} activated (activation {})",
            model.id,
            policy.as_str()
        ),
        (Some(ActivationDecision::BaselineChanged), _) => format!(
            "baseline changed, not activated: another model was activated while the evaluation \
             ran, and it stays the active one ({how})"
        ),
        (_, ActivationPolicy::Manual) => {
            format!("not activated (activation manual): {how}")
        }
        (_, ActivationPolicy::IfBetter) => format!(
            "not activated: activation if_better needs the decision \"better\", this was \"{}\"; the previous active model stays ({how})",
            record.decision.map_or("none", Decision::as_str)
        ),
        (_, ActivationPolicy::Always) => {
            format!(
                "not activated: model {} is {}",
                model.id,
                model.status.as_str()
            )
        }
    }
}

/// The run's evaluation record while it answers.
fn running(plan: &Plan, run: &Run) -> EvaluationRecord {
    EvaluationRecord {
        status: EvaluationStatus::Running,
        examples: plan.indices.len() as u64,
        candidate: ScoredModel {
            model: plan.candidate.model.clone(),
            score: None,
        },
        baseline: ScoredModel {
            model: plan.baseline.model.clone(),
            score: None,
        },
        difference: None,
        win_rate: None,
        win_rate_ci: None,
        judge_model: run.config.evaluation.judge_model.clone(),
        decision: None,
        estimated_cost_usd: plan.estimated_cost_usd,
        cost_usd: None,
        reason: None,
        activation: None,
    }
}

/// The summary of every row.
fn decide(
    plan: &Plan,
    rows: &[EvaluationRow],
    seed: u64,
) -> Result<EvaluationRecord, PipelineError> {
    let scores: Vec<PairedScore> = rows
        .iter()
        .map(|r| PairedScore {
            candidate: r.candidate.score,
            baseline: r.baseline.score,
        })
        .collect();
    let outcomes: Vec<Outcome> = rows
        .iter()
        .filter_map(|r| r.judge.as_ref().map(|j| j.outcome))
        .collect();
    let summary = summarize(&EvaluationInput {
        candidate_model: &plan.candidate.model,
        baseline_model: &plan.baseline.model,
        scores: &scores,
        judge: plan.judge.as_ref().map(|j| JudgeInput {
            model: &j.model,
            outcomes: &outcomes,
        }),
        seed,
    })
    .map_err(|e| PipelineError::EvaluationFailed(e.to_string()))?;
    let mut record = EvaluationRecord::completed(&summary, plan.estimated_cost_usd);
    // Rounded up to the cent, as the estimate is.
    record.cost_usd = plan
        .prices
        .map(|prices| (prices.cost(rows) * 100.0).ceil() / 100.0);
    Ok(record)
}

/// Both results, or the first error once both have finished.
fn both<A, B>(
    (a, b): (Result<A, PipelineError>, Result<B, PipelineError>),
) -> Result<(A, B), PipelineError> {
    Ok((a?, b?))
}

/// One model's answer, redacted as the dataset is.
async fn ask(
    model: &dyn Inference,
    name: &str,
    example: &EvalExample,
    max_tokens: u32,
) -> Result<StoredAnswer, PipelineError> {
    let reply = model.answer(name, example, max_tokens).await?;
    Ok(StoredAnswer {
        model: name.to_owned(),
        answer: redact_answer(reply.answer),
        input_tokens: reply.input_tokens,
        output_tokens: reply.output_tokens,
        truncated: reply.truncated,
    })
}

/// The prices of the candidate, the baseline and the judge (when there is
/// one), or why the evaluation is not run: a model whose price is not
/// known would be counted as free in the estimate the tenant is shown,
/// and its calls are paid all the same.
fn known_prices(
    candidate: (&str, Option<Price>),
    baseline: (&str, Option<Price>),
    judge: Option<(&str, Option<Price>)>,
) -> Result<(Price, Price, Option<Price>), String> {
    let known = |(model, price): (&str, Option<Price>)| {
        price.ok_or_else(|| {
            format!(
                "no price is known for {model}, so the evaluation's cost cannot be estimated; it was not run rather than counted as free"
            )
        })
    };
    Ok((
        known(candidate)?,
        known(baseline)?,
        judge.map(known).transpose()?,
    ))
}

/// The judge's verdict on one presentation.
async fn verdict(
    judge: &dyn Inference,
    name: &str,
    prompt: &EvalExample,
) -> Result<StoredVerdict, PipelineError> {
    let reply = judge.answer(name, prompt, JUDGE_MAX_TOKENS).await?;
    Ok(StoredVerdict {
        verdict: read_verdict(&reply.answer),
        input_tokens: reply.input_tokens,
        output_tokens: reply.output_tokens,
    })
}

/// An answer with every e-mail address, phone and card number replaced,
/// as the dataset's text is (tool arguments too, string by string).
pub fn redact_answer(answer: Answer) -> Answer {
    let mut counts = Redactions::default();
    match answer {
        Answer::Text { text } => Answer::Text {
            text: redact(&text, &mut counts).into_owned(),
        },
        Answer::ToolCall { name, arguments } => Answer::ToolCall {
            name,
            arguments: redact_json(arguments, &mut counts),
        },
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_model_without_a_known_price_stops_the_plan_instead_of_costing_nothing() {
        let price = Some(Price {
            input_per_1k: 0.001,
            output_per_1k: 0.002,
        });
        assert!(known_prices(("ft:a", price), ("b", price), None).is_ok());
        assert_eq!(
            known_prices(("ft:a", price), ("b", price), Some(("j", price)))
                .unwrap()
                .2,
            price
        );
        for (candidate, baseline, judge, named) in [
            (None, price, None, "ft:a"),
            (price, None, None, "b"),
            (price, price, Some(None), "j"),
        ] {
            let reason = known_prices(
                ("ft:a", candidate),
                ("b", baseline),
                judge.map(|p| ("j", p)),
            )
            .unwrap_err();
            assert!(
                reason.starts_with(&format!("no price is known for {named},")),
                "{reason}"
            );
        }
    }

    #[test]
    fn an_answer_is_stored_redacted_tool_arguments_included() {
        let text = redact_answer(Answer::Text {
            text: "Write to jane.doe@example.com or call +1 415 555 0100".into(),
        });
        let Answer::Text { text } = text else {
            panic!("a text answer stays text")
        };
        assert!(!text.contains("jane.doe@example.com"), "{text}");
        assert!(!text.contains("555 0100"), "{text}");
        let call = redact_answer(Answer::ToolCall {
            name: "email".into(),
            arguments: json!({"to": ["jane.doe@example.com"], "n": 1}),
        });
        let Answer::ToolCall { arguments, .. } = call else {
            panic!("a call stays a call")
        };
        assert_eq!(arguments, json!({"to": ["[EMAIL]"], "n": 1}));
    }

    fn row(index: usize, candidate: f64, baseline: f64) -> EvaluationRow {
        let answer = |model: &str, score: f64| ScoredAnswer {
            model: model.into(),
            answer: Answer::Text { text: "x".into() },
            score,
            truncated: false,
            input_tokens: 100,
            output_tokens: 10,
        };
        EvaluationRow {
            index,
            prompt_excerpt: String::new(),
            reference: crate::evaluation::Reference::Text { text: "x".into() },
            candidate: answer("ft", candidate),
            baseline: answer("base", baseline),
            judge: None,
        }
    }

    fn plan(examples: usize) -> Plan {
        Plan {
            candidate: Target {
                provider: ProviderKind::OpenAi,
                model: "ft".into(),
            },
            baseline: Target {
                provider: ProviderKind::OpenAi,
                model: "base".into(),
            },
            judge: None,
            max_tokens: 64,
            indices: (0..examples).collect(),
            estimated_cost_usd: 0.01,
            estimated_tokens: 100,
            prices: None,
            active_model: None,
            active_recorded: true,
        }
    }

    #[test]
    fn a_completed_evaluation_is_priced_from_the_tokens_its_calls_billed() {
        // GIVEN 30 rows, each answer billed 100 tokens in and 10 out, and a
        // plan that kept its prices ($1 / $2 per 1k for the fine-tune,
        // $0.5 / $1 for the baseline)
        let rows: Vec<EvaluationRow> = (0..30).map(|i| row(i, 0.5, 0.5)).collect();
        let mut priced = plan(30);
        priced.estimated_cost_usd = 9.99;
        priced.prices = Some(PlanPrices {
            candidate: Price {
                input_per_1k: 1.0,
                output_per_1k: 2.0,
            },
            baseline: Price {
                input_per_1k: 0.5,
                output_per_1k: 1.0,
            },
            judge: None,
        });
        // WHEN it is decided
        let record = decide(&priced, &rows, 42).unwrap();
        // THEN its cost is the billed tokens at those prices (30 x (0.12 +
        // 0.06) = $5.40), not the estimate; a plan without prices has none
        assert_eq!(record.cost_usd, Some(5.4));
        assert_eq!(record.estimated_cost_usd, 9.99);
        assert_eq!(decide(&plan(30), &rows, 42).unwrap().cost_usd, None);
    }

    #[test]
    fn rows_where_the_fine_tune_is_clearly_ahead_decide_better_and_the_record_names_both_models() {
        let rows: Vec<EvaluationRow> = (0..30)
            .map(|i| row(i, 0.7 + (i % 3) as f64 * 0.05, 0.2 + (i % 4) as f64 * 0.05))
            .collect();
        let record = decide(&plan(30), &rows, 42).unwrap();
        assert_eq!(record.decision, Some(Decision::Better));
        assert_eq!(record.candidate.model, "ft");
        assert_eq!(record.baseline.model, "base");
        assert_eq!(record.examples, 30);
        assert!(record.difference.unwrap().ci_low > 0.0);
        assert!(record.figures().starts_with("better on 30 examples"));
    }

    #[test]
    fn if_better_explains_why_a_model_that_is_not_better_stays_inactive() {
        let rows: Vec<EvaluationRow> = (0..30).map(|i| row(i, 0.1, 0.6)).collect();
        let record = decide(&plan(30), &rows, 42).unwrap();
        assert_eq!(record.decision, Some(Decision::Worse));
        let sentence = activation_sentence(ActivationPolicy::IfBetter, &record, None, None);
        assert_eq!(sentence, "no model to activate");
    }
}
