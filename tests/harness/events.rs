//! One set of sample events: the API Gateway HTTP API (v2) requests and
//! the EventBridge events (the scheduled tick, Bedrock's job state change)
//! Lambda delivers, kept as JSON files in `tests/fixtures/events` as the
//! runtime crate keeps its own. The integration tests, the demo and
//! `bench-init` all start from these and change only what a case needs,
//! so every one of them sends what Lambda sends.

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

/// An API Gateway HTTP API (payload 2.0) request with a JWT authorizer.
pub const API_GATEWAY_V2_REQUEST: &str =
    include_str!("../fixtures/events/example-apigw-v2-request-jwt-authorizer.json");
/// EventBridge's `Scheduled Event`.
pub const SCHEDULED_EVENT: &str =
    include_str!("../fixtures/events/example-eventbridge-schedule.json");
/// Bedrock's model customization job state change, from EventBridge.
pub const BEDROCK_JOB_STATE_CHANGE: &str = include_str!(
    "../fixtures/events/example-eventbridge-bedrock-customization-job-state-change.json"
);

/// The shard queue's SQS event: S3's notification of a shard task.
pub const SQS_SHARD_TASK: &str = include_str!("../fixtures/events/example-sqs-s3-shard-task.json");

/// A fixture as JSON. They are checked by this module's tests, so a
/// broken file fails there first.
fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("a sample event is valid JSON")
}

/// The scheduled event with its `id`, from the rule named `rule`.
pub fn scheduled(id: &str, rule: &str) -> Value {
    let mut event = fixture(SCHEDULED_EVENT);
    event["id"] = id.into();
    event["resources"] =
        serde_json::json!([format!("arn:aws:events:us-east-1:123456789012:rule/{rule}")]);
    event
}

/// The shard queue's event for the task at `key`, delivered for the
/// `receive_count`th time.
pub fn shard_task(key: &str, receive_count: u32) -> Value {
    let mut event = fixture(SQS_SHARD_TASK);
    let record = &mut event["Records"][0];
    let mut body = fixture(record["body"].as_str().unwrap_or("{}"));
    body["Records"][0]["s3"]["object"]["key"] = key.into();
    record["body"] = body.to_string().into();
    record["attributes"]["ApproximateReceiveCount"] = receive_count.to_string().into();
    event
}

/// A scheduled invocation as the runtime hands it to a handler: the event,
/// and a context with its own request id whose deadline is `timeout` away.
pub fn scheduled_tick(
    timeout: Duration,
) -> Result<LambdaEvent<EventBridgeEvent>, serde_json::Error> {
    let payload: EventBridgeEvent = serde_json::from_str(SCHEDULED_EVENT)?;
    Ok(LambdaEvent::new(payload, invocation_context(timeout)))
}

/// A Lambda context with a fresh request id and a deadline `timeout` away.
pub fn invocation_context(timeout: Duration) -> Context {
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    context.deadline = (now + timeout).as_millis() as u64;
    context
}

/// Bedrock's state change for the job `job_name` (ARN `job_arn`), as
/// EventBridge delivers it to the monitor.
pub fn bedrock_job_state_change(
    job_arn: &str,
    job_name: &str,
) -> Result<EventBridgeEvent, serde_json::Error> {
    let mut event = fixture(BEDROCK_JOB_STATE_CHANGE);
    event["resources"] = serde_json::json!([job_arn]);
    event["detail"]["jobArn"] = job_arn.into();
    event["detail"]["jobName"] = job_name.into();
    serde_json::from_value(event)
}

/// Builds API Gateway HTTP API (payload format 2.0) events from
/// [`API_GATEWAY_V2_REQUEST`], exactly as Lambda receives them, JWT
/// authorizer claims included, and turns them into the
/// `lambda_http::Request` a handler gets. Going through the real JSON
/// keeps the tests honest about what API Gateway sends.
#[derive(Debug, Clone)]
pub struct ApiEvent {
    method: String,
    path: String,
    query: String,
    headers: serde_json::Map<String, Value>,
    body: Option<String>,
    claims: Option<Value>,
    stage: String,
}

impl ApiEvent {
    /// `path` may carry a query string (`/runs?limit=2`). Without
    /// [`ApiEvent::tenant`] or [`ApiEvent::claims`] there is no authorizer
    /// context (as for the webhook's route).
    pub fn new(method: &str, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let sample = fixture(API_GATEWAY_V2_REQUEST);
        let headers = sample["headers"].as_object().cloned().unwrap_or_default();
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: None,
            claims: None,
            stage: "$default".to_owned(),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// The sample's JWT authorizer claims, naming `tenant` in `tenant_id`.
    pub fn tenant(self, tenant: &str) -> Self {
        let mut claims =
            fixture(API_GATEWAY_V2_REQUEST)["requestContext"]["authorizer"]["jwt"]["claims"].take();
        claims["tenant_id"] = tenant.into();
        self.claims(claims)
    }

    pub fn claims(mut self, claims: Value) -> Self {
        self.claims = Some(claims);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_owned().into());
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn json(self, body: &Value) -> Self {
        self.body(body.to_string())
    }

    pub fn stage(mut self, stage: &str) -> Self {
        self.stage = stage.to_owned();
        self
    }

    /// The raw event, as Lambda delivers it.
    pub fn to_json(&self) -> Value {
        let mut query_params = serde_json::Map::new();
        for pair in self.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query_params.insert(k.to_owned(), v.to_owned().into());
        }
        let raw_path = if self.stage == "$default" {
            self.path.clone()
        } else {
            format!("/{}{}", self.stage, self.path)
        };
        let mut event = fixture(API_GATEWAY_V2_REQUEST);
        event["rawPath"] = raw_path.clone().into();
        event["rawQueryString"] = self.query.clone().into();
        event["headers"] = self.headers.clone().into();
        let context = &mut event["requestContext"];
        context["http"]["method"] = self.method.clone().into();
        context["http"]["path"] = raw_path.into();
        context["stage"] = self.stage.clone().into();
        match &self.claims {
            Some(claims) => context["authorizer"]["jwt"]["claims"] = claims.clone(),
            None => {
                if let Some(context) = context.as_object_mut() {
                    context.remove("authorizer");
                }
            }
        }
        if !query_params.is_empty() {
            event["queryStringParameters"] = query_params.into();
        }
        if let Some(body) = &self.body {
            event["body"] = body.clone().into();
        }
        event
    }

    /// The request the functions' entry point (`finetune::http::serve`)
    /// makes of the event, from its JSON text as the runtime reads it.
    pub fn try_build(&self) -> Result<lambda_http::Request, Box<dyn std::error::Error>> {
        let payload: Value = serde_json::from_str(&self.to_json().to_string())?;
        Ok(finetune::http::gateway::request_from_event(
            payload,
            lambda_http::Context::default(),
        )?)
    }

    /// [`ApiEvent::try_build`] for tests, where a bad event is a bug.
    pub fn build(&self) -> lambda_http::Request {
        self.try_build().expect("a valid API Gateway v2 event")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_what_the_runtime_deserialises() {
        let _: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
            serde_json::from_str(API_GATEWAY_V2_REQUEST).unwrap();
        let tick: EventBridgeEvent = serde_json::from_str(SCHEDULED_EVENT).unwrap();
        assert_eq!(tick.detail_type, "Scheduled Event");
        let push: EventBridgeEvent = serde_json::from_str(BEDROCK_JOB_STATE_CHANGE).unwrap();
        assert_eq!(push.source, finetune::webhook::BEDROCK_SOURCE);
        assert_eq!(push.detail_type, finetune::webhook::BEDROCK_DETAIL_TYPE);
        let shards: aws_lambda_events::sqs::SqsEvent =
            serde_json::from_str(SQS_SHARD_TASK).unwrap();
        let body = shards.records[0].body.as_deref().unwrap();
        let notification: aws_lambda_events::s3::S3Event = serde_json::from_str(body).unwrap();
        let key = notification.records[0].s3.object.key.as_deref().unwrap();
        assert!(
            finetune::blob::keys::parse_shard_task_key(key).is_some(),
            "{key}"
        );
    }

    #[test]
    fn an_api_event_is_the_sample_with_the_cases_parts() {
        let event = ApiEvent::post("/runs?limit=2")
            .tenant("globex")
            .header("Idempotency-Key", "k")
            .body("{}")
            .stage("prod")
            .to_json();
        assert_eq!(event["rawPath"], "/prod/runs");
        assert_eq!(event["rawQueryString"], "limit=2");
        assert_eq!(event["queryStringParameters"]["limit"], "2");
        assert_eq!(event["headers"]["idempotency-key"], "k");
        assert_eq!(event["headers"]["host"], "api.example.com");
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["stage"], "prod");
        assert_eq!(event["requestContext"]["requestId"], "req-1");
        let claims = &event["requestContext"]["authorizer"]["jwt"]["claims"];
        assert_eq!(claims["tenant_id"], "globex");
        assert_eq!(claims["sub"], "user-1");
        assert_eq!(event["body"], "{}");
        let anonymous = ApiEvent::get("/runs").to_json();
        assert!(anonymous["requestContext"].get("authorizer").is_none());
        assert!(anonymous.get("body").is_none());
        assert!(anonymous.get("queryStringParameters").is_none());
    }
}
