//! Pushes from providers: a job's end is learnt when the provider says so,
//! not at the next monitor tick.
//!
//! OpenAI POSTs a signed `fine_tuning.job.*` webhook; Bedrock publishes a
//! `Model Customization Job State Change` event to EventBridge.
//! Both carry only the job's id, and both end in [`push_job_update`]: find
//! the run that owns the job (one GetItem) and reconcile it with the same
//! step the monitor uses. The monitor stays the safety net for lost pushes.

pub mod setup;
pub mod signature;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ProviderKind, RunStatus};
use crate::pipeline::{Outcome, PipelineError, PushSteps, Reconciler};
use crate::store::StoreError;
use signature::{SignatureError, SignedHeaders, WebhookSecret};

/// The only OpenAI event types that concern a job's run.
const OPENAI_JOB_EVENT_PREFIX: &str = "fine_tuning.job.";

/// The EventBridge event Bedrock sends when a customization job changes state.
pub const BEDROCK_SOURCE: &str = "aws.bedrock";
pub const BEDROCK_DETAIL_TYPE: &str = "Model Customization Job State Change";

/// What a push did. Both are answered 200: a provider must not retry a
/// push we chose to ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Handled {
    /// The job's run was reconciled at once.
    Reconciled { run_id: String, status: RunStatus },
    /// Nothing changed, and why (a replay, a job this deployment does not
    /// know, an event type that is not about jobs).
    Ignored { reason: &'static str },
}

/// A push about a job this deployment never recorded.
const UNKNOWN_JOB: Handled = Handled::Ignored {
    reason: "unknown job",
};

/// Why a push was not handled.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not signed by the provider: refused, nothing read or changed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Genuine, but not an event we can read.
    #[error("the webhook body is not a provider event: {0}")]
    MalformedBody(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Our side: the signing secret could not be read or used.
    #[error(transparent)]
    Secret(#[from] setup::WebhookSetupError),
    /// The run was found, but reconciling it hit a transient failure (the
    /// provider's 429/5xx/timeout, DynamoDB): the retry is recorded on the
    /// run, and the push was not processed. The webhook answers 5xx and
    /// leaves the delivery unclaimed, so the provider's retry is handled.
    #[error("reconciling run {run_id} failed for now ({code}); retry the delivery")]
    Transient {
        run_id: String,
        status: RunStatus,
        code: &'static str,
    },
}

impl WebhookError {
    /// A stable code for logs and for Lambda's error type (a Bedrock push
    /// reaches the monitor function as an EventBridge event).
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Signature(_) => "webhook_signature_invalid",
            WebhookError::MalformedBody(_) => "webhook_body_malformed",
            WebhookError::Store(_) => "store_error",
            WebhookError::Pipeline(e) => e.code(),
            WebhookError::Secret(_) => "webhook_secret_unavailable",
            WebhookError::Transient { code, .. } => code,
        }
    }
}

/// OpenAI's webhook body: `{id, object, type, created_at, data: {id}}`.
#[derive(Debug, Deserialize)]
struct OpenAiEvent {
    #[serde(rename = "type")]
    kind: String,
    data: OpenAiEventData,
}

#[derive(Debug, Deserialize)]
struct OpenAiEventData {
    id: String,
}

/// `POST /webhooks/openai`: checks the signature over the raw body first,
/// then handles each delivery (by its `webhook-id`) once.
pub async fn receive_openai(
    reconciler: &Reconciler<PushSteps>,
    secret: &WebhookSecret,
    headers: SignedHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Handled, WebhookError> {
    signature::verify(
        secret,
        headers,
        body,
        now.timestamp(),
        signature::DEFAULT_TOLERANCE_SECONDS,
    )?;
    let event: OpenAiEvent =
        serde_json::from_slice(body).map_err(|e| WebhookError::MalformedBody(e.to_string()))?;
    if !event.kind.starts_with(OPENAI_JOB_EVENT_PREFIX) {
        return Ok(Handled::Ignored {
            reason: "not a fine-tuning job event",
        });
    }
    // verify() refused a delivery without an id, so this is always set.
    let delivery = headers.id.unwrap_or_default();
    let provider = ProviderKind::OpenAi;
    if !reconciler
        .ledger
        .store
        .claim_delivery(provider, delivery, now)
        .await?
    {
        return Ok(Handled::Ignored {
            reason: "delivery already handled",
        });
    }
    let owner = format!("webhook-{delivery}");
    match push_job_update(reconciler, provider, &event.data.id, &owner).await {
        Ok(handled) => Ok(handled),
        Err(e) => {
            // Not processed (a transient failure while reconciling, or a
            // store error): let the provider's retry be handled rather
            // than ignored as a replay.
            if let Err(release) = reconciler
                .ledger
                .store
                .release_delivery(provider, delivery)
                .await
            {
                tracing::warn!(error = %crate::telemetry::chain(&release), "could not release a webhook delivery claim");
            }
            Err(e)
        }
    }
}

/// A Bedrock job state change from EventBridge (`detail.jobName`,
/// `detail.jobArn`). Events of another source or type are ignored.
pub async fn receive_bedrock(
    reconciler: &Reconciler<PushSteps>,
    source: &str,
    detail_type: &str,
    detail: &serde_json::Value,
    owner: &str,
) -> Result<Handled, WebhookError> {
    if source != BEDROCK_SOURCE || detail_type != BEDROCK_DETAIL_TYPE {
        return Ok(Handled::Ignored {
            reason: "not a Bedrock customization job event",
        });
    }
    // The Bedrock adapter records a job by its name (it is our
    // clientRequestToken-like handle); the ARN is tried too, so an adapter
    // keyed on ARNs is found the same way.
    let ids: Vec<&str> = ["jobName", "jobArn"]
        .iter()
        .filter_map(|field| detail.get(*field).and_then(serde_json::Value::as_str))
        .collect();
    if ids.is_empty() {
        return Err(WebhookError::MalformedBody(
            "detail has neither jobName nor jobArn".to_owned(),
        ));
    }
    let mut handled = UNKNOWN_JOB;
    for id in ids {
        handled = match push_job_update(reconciler, ProviderKind::Bedrock, id, owner).await {
            // EventBridge does not redeliver to the monitor (its failed
            // invocations go to the dead-letter queue and alarm): the
            // retry recorded on the run is taken by the next tick, as for
            // any run the monitor follows.
            Err(WebhookError::Transient { run_id, status, .. }) => {
                Handled::Reconciled { run_id, status }
            }
            other => other?,
        };
        if handled != UNKNOWN_JOB {
            break;
        }
    }
    Ok(handled)
}

/// The common path of every push: the job's run, reconciled now. A job
/// this deployment never recorded is ignored (another stack's, or one
/// created by hand). A reconcile that ended on a transient failure is
/// [`WebhookError::Transient`]: the push was not processed.
pub async fn push_job_update(
    reconciler: &Reconciler<PushSteps>,
    provider: ProviderKind,
    job_id: &str,
    owner: &str,
) -> Result<Handled, WebhookError> {
    let Some(job_owner) = reconciler
        .ledger
        .store
        .find_job_owner(provider, job_id)
        .await?
    else {
        tracing::info!(
            provider = provider.as_str(),
            job_id,
            "push for an unknown job"
        );
        return Ok(UNKNOWN_JOB);
    };
    let outcome = reconciler
        .reconcile(&job_owner.tenant_id, &job_owner.run_id, owner)
        .await?;
    let status = match outcome {
        Outcome::Advanced { to, .. } => to,
        Outcome::Unchanged { status, .. } => status,
        Outcome::Retrying { to, code, .. } => {
            tracing::warn!(
                tenant_id = %job_owner.tenant_id,
                run_id = %job_owner.run_id,
                provider = provider.as_str(),
                code,
                "push could not reconcile its run for now"
            );
            return Err(WebhookError::Transient {
                run_id: job_owner.run_id.to_string(),
                status: to,
                code,
            });
        }
        // Another worker holds the run's lease; it will see the same job.
        Outcome::Skipped => {
            return Ok(Handled::Ignored {
                reason: "run is being advanced by another worker",
            });
        }
    };
    tracing::info!(
        tenant_id = %job_owner.tenant_id,
        run_id = %job_owner.run_id,
        provider = provider.as_str(),
        status = %status,
        "push reconciled a run"
    );
    Ok(Handled::Reconciled {
        run_id: job_owner.run_id.to_string(),
        status,
    })
}
