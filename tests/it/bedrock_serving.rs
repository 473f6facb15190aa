//! Bedrock serving on the local stack: custom model deployments
//! (`aws-sdk-bedrock`) and Converse (`aws-sdk-bedrockruntime`), which moto
//! lacks and `tools/local-stack/bedrock_serving.py` adds in the real wire
//! format. Every call here goes through the real SDKs, so each parsed
//! answer is proof of the wire format; the last test also checks the raw
//! JSON against the shapes of botocore's service models
//! (`tests/contract/bedrock-*-service.json`, botocore's service models).

use aws_sdk_bedrock::types::{
    CustomModelDeploymentStatus, OutputDataConfig, SortOrder, Tag, TrainingDataConfig,
};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, StopReason, SystemContentBlock,
};
use finetune_tests::{TestEnv, bedrock_model_knobs, converse_calls, finish_bedrock_job};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/finetune-bedrock";
const BASE_MODEL: &str = "amazon.nova-lite-v1:0";

/// The training conversations: (user prompt, assistant answer).
pub(crate) const EXAMPLES: [(&str, &str); 6] = [
    (
        "How do I reset my password?",
        "Open Settings, choose Security, then Reset password; the link arrives by email within five minutes.",
    ),
    (
        "Where is my order A1234?",
        "Order A1234 left our warehouse yesterday and arrives on Friday.",
    ),
    (
        "Can I return shoes I wore once?",
        "Yes: worn shoes can be returned within 30 days if the soles are clean.",
    ),
    (
        "Do you ship to Canada?",
        "We ship to Canada in 5 to 7 business days; duties are included.",
    ),
    (
        "My invoice shows the wrong VAT number",
        "Send us the correct VAT number and we will reissue the invoice the same day.",
    ),
    (
        "How do I cancel my subscription?",
        "Go to Account, Subscriptions, and press Cancel; you keep access until the period ends.",
    ),
];

/// A custom model whose customization job trained on [`EXAMPLES`].
pub(crate) struct Trained {
    pub(crate) bedrock: aws_sdk_bedrock::Client,
    pub(crate) runtime: aws_sdk_bedrockruntime::Client,
    pub(crate) job_name: String,
    pub(crate) model_arn: String,
}

/// GIVEN a customization job on `bedrock-conversation-2024` training data
/// in S3, ended `Completed` when `complete`.
pub(crate) async fn trained(complete: bool) -> Trained {
    let env = TestEnv::new().await;
    let bedrock = aws_sdk_bedrock::Client::new(&env.sdk);
    let runtime = aws_sdk_bedrockruntime::Client::new(&env.sdk);
    let lines: String = EXAMPLES
        .iter()
        .map(|(question, answer)| {
            json!({
                "schemaVersion": "bedrock-conversation-2024",
                "system": [{"text": "You are Acme's support agent."}],
                "messages": [
                    {"role": "user", "content": [{"text": question}]},
                    {"role": "assistant", "content": [{"text": answer}]}
                ]
            })
            .to_string()
                + "\n"
        })
        .collect();
    let key = "datasets/acme/ds/train.jsonl";
    env.s3
        .put_object()
        .bucket(&env.bucket)
        .key(key)
        .body(lines.into_bytes().into())
        .send()
        .await
        .unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let job_name = format!("ft-job-{suffix}");
    let model_name = format!("ft-model-{suffix}");
    bedrock
        .create_model_customization_job()
        .job_name(&job_name)
        .custom_model_name(&model_name)
        .role_arn(ROLE)
        .base_model_identifier("amazon.nova-micro-v1:0:128k")
        .training_data_config(
            TrainingDataConfig::builder()
                .s3_uri(format!("s3://{}/{key}", env.bucket))
                .build(),
        )
        .output_data_config(
            OutputDataConfig::builder()
                .s3_uri(format!("s3://{}/bedrock-output/", env.bucket))
                .build()
                .unwrap(),
        )
        .hyper_parameters("epochCount", "2")
        .send()
        .await
        .unwrap();
    if complete {
        finish_bedrock_job(&job_name, "Completed", None)
            .await
            .unwrap();
    }
    let model_arn = bedrock
        .get_custom_model()
        .model_identifier(&model_name)
        .send()
        .await
        .unwrap()
        .model_arn()
        .to_owned();
    Trained {
        bedrock,
        runtime,
        job_name,
        model_arn,
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

fn unique(kind: &str) -> String {
    format!(
        "{kind}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

impl Trained {
    async fn deploy(&self, name: &str, token: &str) -> String {
        self.bedrock
            .create_custom_model_deployment()
            .model_deployment_name(name)
            .model_arn(&self.model_arn)
            .description("support v1")
            .client_request_token(token)
            .tags(tag("tenant_id", "acme"))
            .tags(tag("run_id", "run_01"))
            .send()
            .await
            .unwrap()
            .custom_model_deployment_arn()
            .to_owned()
    }

    async fn status(&self, id: &str) -> CustomModelDeploymentStatus {
        self.bedrock
            .get_custom_model_deployment()
            .custom_model_deployment_identifier(id)
            .send()
            .await
            .unwrap()
            .status()
            .clone()
    }

    /// A deployment made and read until Active.
    async fn active_deployment(&self) -> String {
        let arn = self.deploy(&unique("dep"), &unique("token")).await;
        assert_eq!(
            self.status(&arn).await,
            CustomModelDeploymentStatus::Creating
        );
        assert_eq!(self.status(&arn).await, CustomModelDeploymentStatus::Active);
        arn
    }

    async fn ask(&self, model_id: &str, text: &str) -> String {
        let reply = converse(&self.runtime, model_id, text, None).await.unwrap();
        answer_text(&reply)
    }
}

async fn converse(
    runtime: &aws_sdk_bedrockruntime::Client,
    model_id: &str,
    text: &str,
    config: Option<InferenceConfiguration>,
) -> Result<
    aws_sdk_bedrockruntime::operation::converse::ConverseOutput,
    aws_sdk_bedrockruntime::error::SdkError<
        aws_sdk_bedrockruntime::operation::converse::ConverseError,
    >,
> {
    runtime
        .converse()
        .model_id(model_id)
        .system(SystemContentBlock::Text(
            "You are Acme's support agent.".into(),
        ))
        .messages(
            Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::Text(text.into()))
                .build()
                .unwrap(),
        )
        .inference_config(config.unwrap_or_else(|| {
            InferenceConfiguration::builder()
                .temperature(0.0)
                .max_tokens(256)
                .build()
        }))
        .send()
        .await
}

fn answer_text(reply: &aws_sdk_bedrockruntime::operation::converse::ConverseOutput) -> String {
    let message = reply.output().unwrap().as_message().unwrap();
    assert_eq!(message.role(), &ConversationRole::Assistant);
    message.content()[0].as_text().unwrap().clone()
}

#[tokio::test]
async fn a_deployment_is_created_once_per_client_token_and_becomes_active_on_its_second_read() {
    // GIVEN a custom model whose customization job completed
    let trained = trained(true).await;
    let name = unique("dep");

    // WHEN a deployment is created, and created again with the same client
    // token (a retry after a lost answer)
    let first = trained.deploy(&name, "token-1").await;
    let again = trained.deploy(&name, "token-1").await;

    // THEN both answer the same deployment, with an ARN as AWS writes it
    assert_eq!(again, first);
    let (prefix, id) = first.rsplit_once('/').unwrap();
    assert_eq!(
        prefix,
        "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment"
    );
    assert!(
        id.len() == 12
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{id}"
    );

    // AND exactly one is listed under its name, still Creating
    let listed = trained
        .bedrock
        .list_custom_model_deployments()
        .name_contains(&name)
        .send()
        .await
        .unwrap();
    let summaries = listed.model_deployment_summaries();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].custom_model_deployment_arn(), first);
    assert_eq!(summaries[0].custom_model_deployment_name(), name);
    assert_eq!(summaries[0].model_arn(), trained.model_arn);
    assert_eq!(
        summaries[0].status(),
        &CustomModelDeploymentStatus::Creating
    );

    // AND the first read says Creating, the second (by name) Active, with
    // what was asked for
    assert_eq!(
        trained.status(&first).await,
        CustomModelDeploymentStatus::Creating
    );
    let active = trained
        .bedrock
        .get_custom_model_deployment()
        .custom_model_deployment_identifier(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(active.status(), &CustomModelDeploymentStatus::Active);
    assert_eq!(active.custom_model_deployment_arn(), first);
    assert_eq!(active.model_deployment_name(), name);
    assert_eq!(active.model_arn(), trained.model_arn);
    assert_eq!(active.description(), Some("support v1"));
    assert_eq!(active.failure_message(), None);
    assert!(active.last_updated_at().unwrap() >= active.created_at());

    // AND it is listed as Active for its model, and carries its tags
    let active_ones = trained
        .bedrock
        .list_custom_model_deployments()
        .status_equals(CustomModelDeploymentStatus::Active)
        .model_arn_equals(&trained.model_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(active_ones.model_deployment_summaries().len(), 1);
    let tags = trained
        .bedrock
        .list_tags_for_resource()
        .resource_arn(&first)
        .send()
        .await
        .unwrap();
    let mut pairs: Vec<(&str, &str)> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    pairs.sort();
    assert_eq!(pairs, [("run_id", "run_01"), ("tenant_id", "acme")]);

    // AND the name is taken: another token cannot reuse it
    let taken = trained
        .bedrock
        .create_custom_model_deployment()
        .model_deployment_name(&name)
        .model_arn(&trained.model_arn)
        .client_request_token("token-2")
        .send()
        .await
        .unwrap_err();
    assert!(
        taken.as_service_error().unwrap().is_validation_exception(),
        "{taken:?}"
    );
}

#[tokio::test]
async fn only_a_custom_model_whose_job_completed_can_be_deployed() {
    // GIVEN a custom model whose job is still training
    let trained = trained(false).await;

    // WHEN it is deployed, and so is a model that does not exist
    let training = trained
        .bedrock
        .create_custom_model_deployment()
        .model_deployment_name(unique("dep"))
        .model_arn(&trained.model_arn)
        .send()
        .await
        .unwrap_err();
    let unknown = trained
        .bedrock
        .create_custom_model_deployment()
        .model_deployment_name(unique("dep"))
        .model_arn("arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abcdefghijkl")
        .send()
        .await
        .unwrap_err();

    // THEN the first is not valid yet and the second not found
    assert!(
        training
            .as_service_error()
            .unwrap()
            .is_validation_exception(),
        "{training:?}"
    );
    assert!(
        unknown
            .as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{unknown:?}"
    );

    // AND once the job completes, it can
    finish_bedrock_job(&trained.job_name, "Completed", None)
        .await
        .unwrap();
    trained.active_deployment().await;
}

#[tokio::test]
async fn a_deployment_answers_with_the_assistant_turn_of_the_most_similar_training_conversation() {
    // GIVEN an Active deployment of the custom model
    let trained = trained(true).await;
    let arn = trained.active_deployment().await;

    // WHEN it is asked each training prompt, and a paraphrase of one
    let mut answers = Vec::new();
    for (question, _) in EXAMPLES {
        answers.push(trained.ask(&arn, question).await);
    }
    let paraphrase = trained
        .ask(&arn, "I forgot my password, how can I reset it?")
        .await;

    // THEN each answer is that example's assistant turn, and the
    // paraphrase gets the password answer
    let expected: Vec<String> = EXAMPLES.iter().map(|(_, a)| a.to_string()).collect();
    assert_eq!(answers, expected);
    assert_eq!(paraphrase, EXAMPLES[0].1);

    // AND the answer is a whole Converse response: end of turn, usage
    // that adds up, latency
    let reply = converse(&trained.runtime, &arn, EXAMPLES[1].0, None)
        .await
        .unwrap();
    assert_eq!(reply.stop_reason(), &StopReason::EndTurn);
    let usage = reply.usage().unwrap();
    assert!(usage.input_tokens() > 0 && usage.output_tokens() > 0);
    assert_eq!(
        usage.total_tokens(),
        usage.input_tokens() + usage.output_tokens()
    );
    assert!(reply.metrics().unwrap().latency_ms() >= 1);

    // AND the local stack counted every call on the deployment
    assert_eq!(converse_calls(&arn).await.unwrap(), 8);
}

#[tokio::test]
async fn a_base_model_answers_generically_with_words_of_the_question() {
    // GIVEN the local stack
    let trained = trained(true).await;

    // WHEN a base model is asked a training prompt
    let answer = trained.ask(BASE_MODEL, EXAMPLES[0].0).await;

    // THEN it answers politely and generically, not from training data
    assert_eq!(
        answer,
        "Thank you for your message about \"How do I reset my password?\". I would be glad \
         to help. Could you share a few more details so I can look into it for you?"
    );
    // A foundation-model ARN is a base model too.
    let by_arn = trained
        .ask(
            &format!("arn:aws:bedrock:us-east-1::foundation-model/{BASE_MODEL}"),
            EXAMPLES[0].0,
        )
        .await;
    assert_eq!(by_arn, answer);
}

#[tokio::test]
async fn the_judge_convention_prefers_the_answer_nearer_the_reference_in_either_order() {
    // GIVEN a judging prompt with the markers, built both ways round
    let trained = trained(true).await;
    let reference = EXAMPLES[1].1;
    let good = "Order A1234 left the warehouse yesterday; it arrives Friday.";
    let bad = "Thank you for your message. Could you share more details?";
    let prompt = |a: &str, b: &str| {
        format!(
            "Which answer is closer to the reference? Say A, B or TIE.\n\
             [REFERENCE]{reference}[/REFERENCE]\n[ANSWER A]{a}[/ANSWER A]\n[ANSWER B]{b}[/ANSWER B]"
        )
    };

    // WHEN a base model and a deployment judge them
    let arn = trained.active_deployment().await;
    let base_ab = trained.ask(BASE_MODEL, &prompt(good, bad)).await;
    let base_ba = trained.ask(BASE_MODEL, &prompt(bad, good)).await;
    let deployed_ab = trained.ask(&arn, &prompt(good, bad)).await;
    let tie = trained.ask(BASE_MODEL, &prompt(good, good)).await;

    // THEN the nearer answer wins whichever position it holds
    assert_eq!(base_ab, "A");
    assert_eq!(base_ba, "B");
    assert_eq!(deployed_ab, "A");
    assert_eq!(tie, "TIE");
}

#[tokio::test]
async fn the_worst_quality_knob_makes_a_custom_model_answer_from_its_least_similar_example() {
    // GIVEN an Active deployment whose model is turned worse
    let trained = trained(true).await;
    let arn = trained.active_deployment().await;
    let knobs = bedrock_model_knobs(&trained.model_arn, json!({"quality": "worst"}))
        .await
        .unwrap();
    assert_eq!(knobs["knobs"]["quality"], "worst");

    // WHEN it is asked a training prompt
    let answer = trained.ask(&arn, EXAMPLES[0].0).await;

    // THEN it answers another example's turn; back to best, the right one
    assert_ne!(answer, EXAMPLES[0].1);
    assert!(EXAMPLES.iter().any(|(_, a)| *a == answer), "{answer}");
    bedrock_model_knobs(&trained.model_arn, json!({"quality": null}))
        .await
        .unwrap();
    assert_eq!(trained.ask(&arn, EXAMPLES[0].0).await, EXAMPLES[0].1);
}

#[tokio::test]
async fn a_deployment_fails_with_its_reason_when_the_knob_says_so_and_cannot_serve() {
    // GIVEN a model whose next deployment is to fail
    let trained = trained(true).await;
    bedrock_model_knobs(
        &trained.model_arn,
        json!({"failNextDeployment": "Insufficient capacity for on-demand deployment."}),
    )
    .await
    .unwrap();

    // WHEN a deployment is created and followed
    let arn = trained.deploy(&unique("dep"), &unique("token")).await;
    let creating = trained.status(&arn).await;
    let converse_while_creating = converse(&trained.runtime, &arn, "hello", None)
        .await
        .unwrap_err();
    let failed = trained
        .bedrock
        .get_custom_model_deployment()
        .custom_model_deployment_identifier(&arn)
        .send()
        .await
        .unwrap();

    // THEN it was Creating, then Failed with the reason; Converse on it
    // is refused, and no call was counted
    assert_eq!(creating, CustomModelDeploymentStatus::Creating);
    assert_eq!(failed.status(), &CustomModelDeploymentStatus::Failed);
    assert_eq!(
        failed.failure_message(),
        Some("Insufficient capacity for on-demand deployment.")
    );
    assert!(
        converse_while_creating
            .as_service_error()
            .unwrap()
            .is_validation_exception()
    );
    let converse_failed = converse(&trained.runtime, &arn, "hello", None)
        .await
        .unwrap_err();
    assert!(
        converse_failed
            .as_service_error()
            .unwrap()
            .is_validation_exception(),
        "{converse_failed:?}"
    );
    assert_eq!(converse_calls(&arn).await.unwrap(), 0);

    // AND the knob was used up: the next deployment becomes Active
    trained.active_deployment().await;
}

#[tokio::test]
async fn a_deleted_deployment_is_gone_and_its_model_can_be_deleted_only_after_it() {
    // GIVEN an Active deployment of a custom model
    let trained = trained(true).await;
    let arn = trained.active_deployment().await;
    let model_name = trained.model_arn.rsplit_once('/').unwrap().1.to_owned();

    // WHEN the custom model is deleted first
    let early = trained
        .bedrock
        .delete_custom_model()
        .model_identifier(&model_name)
        .send()
        .await
        .unwrap_err();

    // THEN it is refused while the deployment exists
    assert!(
        early.as_service_error().unwrap().is_conflict_exception(),
        "{early:?}"
    );

    // WHEN the deployment is deleted
    trained
        .bedrock
        .delete_custom_model_deployment()
        .custom_model_deployment_identifier(&arn)
        .send()
        .await
        .unwrap();

    // THEN reading it, calling it, and deleting it again are not found
    let read = trained
        .bedrock
        .get_custom_model_deployment()
        .custom_model_deployment_identifier(&arn)
        .send()
        .await
        .unwrap_err();
    assert!(
        read.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let call = converse(&trained.runtime, &arn, EXAMPLES[0].0, None)
        .await
        .unwrap_err();
    assert!(
        call.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{call:?}"
    );
    let again = trained
        .bedrock
        .delete_custom_model_deployment()
        .custom_model_deployment_identifier(&arn)
        .send()
        .await
        .unwrap_err();
    assert!(
        again
            .as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );

    // AND then the custom model can be deleted
    trained
        .bedrock
        .delete_custom_model()
        .model_identifier(&model_name)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn converse_refuses_what_bedrock_refuses() {
    // GIVEN the local stack and a custom model
    let trained = trained(true).await;
    let unknown_deployment =
        "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/zzzzzzzzzzzz";

    // WHEN Converse is sent to an unknown deployment, to a custom model
    // itself (not through a deployment), to an invalid model id, with an
    // assistant turn first and with a temperature out of range
    let unknown = converse(&trained.runtime, unknown_deployment, "hi", None)
        .await
        .unwrap_err();
    let custom = converse(&trained.runtime, &trained.model_arn, "hi", None)
        .await
        .unwrap_err();
    let invalid = converse(&trained.runtime, "not a model", "hi", None)
        .await
        .unwrap_err();
    let assistant_first = trained
        .runtime
        .converse()
        .model_id(BASE_MODEL)
        .messages(
            Message::builder()
                .role(ConversationRole::Assistant)
                .content(ContentBlock::Text("Hello".into()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    let hot = converse(
        &trained.runtime,
        BASE_MODEL,
        "hi",
        Some(InferenceConfiguration::builder().temperature(1.5).build()),
    )
    .await
    .unwrap_err();

    // THEN each is the error Bedrock answers, parsed by the SDK
    assert!(
        unknown
            .as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    for refused in [&custom, &invalid, &assistant_first, &hot] {
        assert!(
            refused
                .as_service_error()
                .unwrap()
                .is_validation_exception(),
            "{refused:?}"
        );
    }
    assert_eq!(converse_calls(unknown_deployment).await.unwrap(), 0);
}

#[tokio::test]
async fn stop_sequences_and_max_tokens_cut_the_answer_and_say_why() {
    // GIVEN an Active deployment
    let trained = trained(true).await;
    let arn = trained.active_deployment().await;

    // WHEN the answer meets a stop sequence, or is longer than maxTokens
    let stopped = converse(
        &trained.runtime,
        &arn,
        EXAMPLES[0].0,
        Some(
            InferenceConfiguration::builder()
                .stop_sequences(";")
                .build(),
        ),
    )
    .await
    .unwrap();
    let short = converse(
        &trained.runtime,
        &arn,
        EXAMPLES[0].0,
        Some(InferenceConfiguration::builder().max_tokens(3).build()),
    )
    .await
    .unwrap();

    // THEN it ends before the stop sequence, or at the budget
    assert_eq!(stopped.stop_reason(), &StopReason::StopSequence);
    assert_eq!(
        answer_text(&stopped),
        "Open Settings, choose Security, then Reset password"
    );
    assert_eq!(short.stop_reason(), &StopReason::MaxTokens);
    assert_eq!(short.usage().unwrap().output_tokens(), 3);
    assert!(EXAMPLES[0].1.starts_with(&answer_text(&short)));
}

#[tokio::test]
async fn deployments_are_listed_a_page_at_a_time_oldest_first_when_asked() {
    // GIVEN three deployments of one model
    let trained = trained(true).await;
    let stem = unique("page");
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(trained.deploy(&format!("{stem}-{i}"), &unique("t")).await);
    }

    // WHEN they are listed one per page, ascending
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = trained
            .bedrock
            .list_custom_model_deployments()
            .name_contains(&stem)
            .sort_order(SortOrder::Ascending)
            .max_results(1)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(
            page.model_deployment_summaries()
                .iter()
                .map(|s| s.custom_model_deployment_arn().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }

    // THEN every one comes once, in creation order; descending reverses it
    assert_eq!(seen, made);
    let newest_first = trained
        .bedrock
        .list_custom_model_deployments()
        .name_contains(&stem)
        .send()
        .await
        .unwrap();
    let order: Vec<&str> = newest_first
        .model_deployment_summaries()
        .iter()
        .map(|s| s.custom_model_deployment_arn())
        .collect();
    assert_eq!(
        order,
        made.iter().rev().map(String::as_str).collect::<Vec<_>>()
    );
}

// ---- raw answers against the service models --------------------------------

/// botocore's service model, as the repository carries it (`tests/contract/`).
fn service_model(file: &str) -> Value {
    crate::contract_schemas::document(file)
}

/// Checks `value` against botocore shape `name`: types, required members,
/// no members the shape lacks, enums, unions with exactly one member.
fn check_shape(model: &Value, name: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
    let shape = &model["shapes"][name];
    let kind = shape["type"].as_str().unwrap_or_default();
    match kind {
        "structure" if shape["document"] == json!(true) => {}
        "structure" => {
            let Some(object) = value.as_object() else {
                errors.push(format!("{at}: {name} wants an object, got {value}"));
                return;
            };
            let members = shape["members"].as_object().unwrap();
            for required in shape["required"].as_array().into_iter().flatten() {
                let key = required.as_str().unwrap();
                if !object.contains_key(key) {
                    errors.push(format!("{at}: {name} lacks required {key}"));
                }
            }
            if shape["union"] == json!(true) && object.len() != 1 {
                errors.push(format!(
                    "{at}: union {name} must set one member, sets {}",
                    object.len()
                ));
            }
            for (key, member) in object {
                match members.get(key) {
                    None => errors.push(format!("{at}: {name} has no member {key}")),
                    Some(member_shape) => check_shape(
                        model,
                        member_shape["shape"].as_str().unwrap(),
                        member,
                        &format!("{at}.{key}"),
                        errors,
                    ),
                }
            }
        }
        "list" => match value.as_array() {
            None => errors.push(format!("{at}: {name} wants a list")),
            Some(items) => {
                let member = shape["member"]["shape"].as_str().unwrap();
                for (i, item) in items.iter().enumerate() {
                    check_shape(model, member, item, &format!("{at}[{i}]"), errors);
                }
            }
        },
        "string" => match value.as_str() {
            None => errors.push(format!("{at}: {name} wants a string, got {value}")),
            Some(text) => {
                if let Some(allowed) = shape["enum"].as_array()
                    && !allowed.iter().any(|a| a == text)
                {
                    errors.push(format!("{at}: {text:?} is not a {name}"));
                }
            }
        },
        "integer" | "long" => {
            if !value.is_i64() {
                errors.push(format!("{at}: {name} wants an integer, got {value}"));
            }
        }
        "float" | "double" => {
            if !value.is_number() {
                errors.push(format!("{at}: {name} wants a number"));
            }
        }
        "boolean" => {
            if !value.is_boolean() {
                errors.push(format!("{at}: {name} wants a boolean"));
            }
        }
        "timestamp" => {
            let parsed = value
                .as_str()
                .map(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
            if parsed != Some(true) {
                errors.push(format!(
                    "{at}: {name} wants an ISO 8601 timestamp, got {value}"
                ));
            }
        }
        other => errors.push(format!(
            "{at}: shape {name} of type {other:?} not checked here"
        )),
    }
}

/// A raw call signed only in form (moto checks no signature): the
/// credential scope names the region and signing service, as the SDK's.
async fn raw(
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    finetune::tls::install_crypto_provider();
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", finetune_tests::moto_endpoint()))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/bedrock/aws4_request, \
             SignedHeaders=host, Signature=0",
        );
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status().as_u16();
    let error_type = reply
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = reply.text().await.unwrap();
    (
        status,
        error_type,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Checks a raw answer of `operation`: the status the model gives it (or
/// one of its declared errors, with that error's status and shape).
fn check_answer(model: &Value, operation: &str, answer: &(u16, Option<String>, Value)) {
    let op = &model["operations"][operation];
    let (status, error_type, body) = answer;
    let mut errors = Vec::new();
    match error_type {
        None => {
            assert_eq!(
                u64::from(*status),
                op["http"]["responseCode"].as_u64().unwrap(),
                "{operation}: {body}"
            );
            let output = op["output"]["shape"].as_str().unwrap();
            check_shape(model, output, body, output, &mut errors);
        }
        Some(header) => {
            let code = header.split(':').next().unwrap();
            assert!(
                op["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["shape"] == code),
                "{operation} declares no {code}"
            );
            assert_eq!(
                u64::from(*status),
                model["shapes"][code]["error"]["httpStatusCode"]
                    .as_u64()
                    .unwrap(),
                "{operation}: {code}"
            );
            check_shape(model, code, body, code, &mut errors);
        }
    }
    assert!(errors.is_empty(), "{operation}: {errors:#?}\n{body}");
}

fn encode(segment: &str) -> String {
    segment.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn every_answer_has_the_shape_the_service_models_give_it() {
    // GIVEN botocore's Bedrock and Bedrock Runtime service models, and a
    // custom model trained on the examples
    let control = service_model("bedrock-customization-service.json");
    let runtime_model = service_model("bedrock-runtime-converse-service.json");
    let trained = trained(true).await;
    let deployments = "/model-customization/custom-model-deployments";
    let name = unique("raw");
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // WHEN each operation is called raw, its successes and its errors
    let created = raw(
        post.clone(),
        deployments,
        Some(
            json!({"modelDeploymentName": name, "modelArn": trained.model_arn,
                    "clientRequestToken": "raw-token-1", "description": "raw",
                    "tags": [{"key": "tenant_id", "value": "acme"}]}),
        ),
    )
    .await;
    let arn = created.2["customModelDeploymentArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_arn = format!("{deployments}/{}", encode(&arn));
    let creating = raw(get.clone(), &by_arn, None).await;
    let active = raw(get.clone(), &by_arn, None).await;
    let listed = raw(
        get.clone(),
        &format!("{deployments}?nameContains={name}&maxResults=5"),
        None,
    )
    .await;
    let duplicate = raw(
        post.clone(),
        deployments,
        Some(json!({"modelDeploymentName": name, "modelArn": trained.model_arn})),
    )
    .await;
    let missing = raw(get.clone(), &format!("{deployments}/nothing-here"), None).await;
    let converse_path = format!("/model/{}/converse", encode(&arn));
    let question = json!({
        "messages": [{"role": "user", "content": [{"text": EXAMPLES[3].0}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0, "topP": 1, "stopSequences": ["\n\n"]}
    });
    let answered = raw(post.clone(), &converse_path, Some(question.clone())).await;
    let base = raw(
        post.clone(),
        &format!("/model/{}/converse", encode(BASE_MODEL)),
        Some(question.clone()),
    )
    .await;
    let deleted = raw(reqwest::Method::DELETE, &by_arn, None).await;
    let gone = raw(post.clone(), &converse_path, Some(question)).await;

    // THEN every answer has its operation's status and shape, and every
    // error is one the operation declares, with its status
    check_answer(&control, "CreateCustomModelDeployment", &created);
    check_answer(&control, "GetCustomModelDeployment", &creating);
    check_answer(&control, "GetCustomModelDeployment", &active);
    assert_eq!(creating.2["status"], "Creating");
    assert_eq!(active.2["status"], "Active");
    check_answer(&control, "ListCustomModelDeployments", &listed);
    assert_eq!(
        listed.2["modelDeploymentSummaries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    check_answer(&control, "CreateCustomModelDeployment", &duplicate);
    assert_eq!(duplicate.0, 400);
    check_answer(&control, "GetCustomModelDeployment", &missing);
    assert_eq!(missing.0, 404);
    check_answer(&runtime_model, "Converse", &answered);
    assert_eq!(
        answered.2["output"]["message"]["content"][0]["text"],
        EXAMPLES[3].1
    );
    check_answer(&runtime_model, "Converse", &base);
    check_answer(&control, "DeleteCustomModelDeployment", &deleted);
    check_answer(&runtime_model, "Converse", &gone);
    assert_eq!(gone.0, 404);
}

#[test]
fn the_shape_check_catches_a_missing_required_member_an_unknown_one_and_a_bad_enum() {
    // GIVEN the runtime model and an answer with three faults
    let model = service_model("bedrock-runtime-converse-service.json");
    let answer = json!({
        "output": {"message": {"role": "robot", "content": [{"text": "hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1},
        "metrics": {"latencyMs": 3},
        "extra": true
    });

    // WHEN it is checked
    let mut errors = Vec::new();
    check_shape(
        &model,
        "ConverseResponse",
        &answer,
        "ConverseResponse",
        &mut errors,
    );

    // THEN each fault is named
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("lacks required totalTokens"))
    );
    assert!(errors.iter().any(|e| e.contains("has no member extra")));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("\"robot\" is not a ConversationRole"))
    );
}
