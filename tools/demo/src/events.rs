//! Events exactly as Lambda delivers them: an API Gateway HTTP API (v2)
//! request with a JWT authorizer context, and an EventBridge scheduled
//! event, deserialised the way the runtimes deserialise them.

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

/// `method path` from `tenant`, as the HTTP API hands it to a function.
pub fn http_request(
    method: &str,
    path: &str,
    body: Option<&Value>,
    tenant: &str,
    idempotency_key: Option<&str>,
) -> Result<lambda_http::Request, Box<dyn std::error::Error>> {
    let mut headers = json!({
        "content-type": "application/json",
        "authorization": "Bearer eyJ...demo",
        "host": "api.example.com",
    });
    if let Some(key) = idempotency_key {
        headers["idempotency-key"] = json!(key);
    }
    let now = chrono::Utc::now();
    let event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "demo",
            "authorizer": {"jwt": {"claims": {"sub": "demo-user", "tenant_id": tenant}, "scopes": null}},
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "finetune-demo"},
            "requestId": uuid_like(),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    });
    // The functions' own entry point (`finetune::http::serve`) makes the
    // request, from the JSON text as the runtime reads it.
    let payload: Value = serde_json::from_str(&event.to_string())?;
    Ok(finetune::http::gateway::request_from_event(
        payload,
        Context::default(),
    )?)
}

/// The monitor's EventBridge `Scheduled Event`, with a context whose
/// deadline is `timeout` away, as the runtime gives it.
pub fn scheduled_tick(
    timeout: Duration,
) -> Result<LambdaEvent<EventBridgeEvent>, serde_json::Error> {
    let now = chrono::Utc::now();
    let payload: EventBridgeEvent = serde_json::from_value(json!({
        "version": "0",
        "id": uuid_like(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now.to_rfc3339(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/finetune-monitor"],
        "detail": {}
    }))?;
    let mut context = Context::default();
    context.request_id = uuid_like();
    context.deadline = (now.timestamp_millis().max(0) as u64) + timeout.as_millis() as u64;
    Ok(LambdaEvent::new(payload, context))
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!("{:032x}", rng.random::<u128>())
}
