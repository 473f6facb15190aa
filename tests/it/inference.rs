//! The inference capability ([`Inference`]) on both adapters, through
//! their real wire formats: OpenAI Chat Completions against the sandbox,
//! Bedrock Converse on a custom model deployment against the local stack.
//! The prompt is what the evaluation sends: one validation line parsed into
//! an [`EvalExample`], its last assistant turn held back as the reference.

use finetune::dataset::DatasetFormat;
use finetune::evaluation::{Answer, Reference, parse_example, score_answer};
use finetune::provider::bedrock::{BedrockJobs, BedrockRuntime};
use finetune::provider::inference::Inference;
use finetune::provider::openai::{ApiKey, OpenAiClient, OpenAiControl};
use finetune::provider::serving::{DeploymentStatus, ModelServing};
use finetune::provider::{JobTags, ProviderError};
use finetune_tests::converse_calls;
use openai_sandbox::{Fault, SandboxConfig};
use serde_json::{Value, json};

use crate::bedrock_serving::{EXAMPLES, trained};
use crate::sandbox_chat::{BASE, Chat, ORDER_ARGUMENTS, SYSTEM, TRAINING, tools, training_jsonl};

/// A validation line as the OpenAI dataset writes it.
fn openai_line(question: &str, answer: Option<&str>) -> String {
    let assistant = match answer {
        Some(text) => json!({"role": "assistant", "content": text}),
        None => json!({"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup_order", "arguments": ORDER_ARGUMENTS}}]}),
    };
    json!({
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            assistant
        ],
        "tools": tools()
    })
    .to_string()
}

fn adapter(chat: &Chat) -> OpenAiControl {
    OpenAiControl::new(
        OpenAiClient::new(crate::openai::settings(&chat.sb), ApiKey::new("sk-test")).unwrap(),
    )
}

#[tokio::test]
async fn a_fine_tuned_openai_model_answers_its_training_prompt_and_the_base_model_does_not() {
    // GIVEN a model fine-tuned in the sandbox on the support conversations
    let chat = Chat::start(SandboxConfig::default()).await;
    let model = chat.train(training_jsonl()).await;
    let openai = adapter(&chat);
    let (question, expected) = TRAINING[0];
    let example = parse_example(
        &openai_line(question, Some(expected)),
        0,
        DatasetFormat::OpenAiChat,
    )
    .unwrap();

    // WHEN the adapter asks the fine-tuned model and the base model
    let tuned = openai.answer(&model, &example, 200).await.unwrap();
    let base = openai.answer(BASE, &example, 200).await.unwrap();

    // THEN the fine-tuned model gives the trained answer, the base model a
    // generic one that scores lower, and both report their tokens
    assert_eq!(
        tuned.answer,
        Answer::Text {
            text: expected.into()
        }
    );
    assert!(
        score_answer(&example.reference, &tuned.answer)
            > score_answer(&example.reference, &base.answer)
    );
    assert!(
        tuned.input_tokens > 0 && tuned.output_tokens > 0,
        "{tuned:?}"
    );
    assert!(!tuned.truncated);
    // AND each model was asked exactly once
    let calls = chat.sb.chat_calls_per_model();
    assert_eq!(calls.get(&model), Some(&1));
    assert_eq!(calls.get(BASE), Some(&1));
}

#[tokio::test]
async fn a_tool_call_answer_comes_back_as_the_call_and_scores_against_the_reference_call() {
    let chat = Chat::start(SandboxConfig::default()).await;
    let model = chat.train(training_jsonl()).await;
    let (question, _) = TRAINING[1];
    let example =
        parse_example(&openai_line(question, None), 3, DatasetFormat::OpenAiChat).unwrap();
    let reply = adapter(&chat).answer(&model, &example, 200).await.unwrap();
    match &reply.answer {
        Answer::ToolCall { name, arguments } => {
            assert_eq!(name, "lookup_order");
            assert_eq!(arguments, &Value::String(ORDER_ARGUMENTS.into()));
        }
        other => panic!("expected the tool call, got {other:?}"),
    }
    assert!(matches!(example.reference, Reference::ToolCall { .. }));
    assert_eq!(score_answer(&example.reference, &reply.answer), 1.0);
}

#[tokio::test]
async fn a_server_error_is_retried_and_an_unknown_model_is_not_found() {
    let chat = Chat::start(SandboxConfig::default()).await;
    let example = parse_example(
        &openai_line(TRAINING[2].0, Some(TRAINING[2].1)),
        0,
        DatasetFormat::OpenAiChat,
    )
    .unwrap();
    chat.sb
        .inject(Fault::status("POST", "/chat/completions", 500, 1));
    let openai = adapter(&chat);
    let reply = openai.answer(BASE, &example, 50).await;
    assert!(reply.is_ok(), "{reply:?}");
    let missing = openai
        .answer("ft:gpt-4o-mini-2024-07-18:acme::nothere", &example, 50)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ProviderError::NotFound { .. }),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_bedrock_deployment_answers_through_converse_from_what_its_model_was_trained_on() {
    // GIVEN a custom model deployed through the adapter until Active
    let trained = trained(true).await;
    let serving = BedrockJobs::new(trained.bedrock.clone());
    let tags = JobTags {
        tenant_id: finetune::domain::TenantId::parse("acme").unwrap(),
        run_id: finetune::domain::RunId::generate(),
    };
    let mut deployment = serving.deploy(&trained.model_arn, &tags).await.unwrap();
    while deployment.status == DeploymentStatus::Creating {
        deployment = serving.deployment(&deployment.id).await.unwrap();
    }
    assert_eq!(deployment.status, DeploymentStatus::Active);
    let (question, expected) = EXAMPLES[3];
    let line = json!({
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "You are Acme's support agent."}],
        "messages": [
            {"role": "user", "content": [{"text": question}]},
            {"role": "assistant", "content": [{"text": expected}]}
        ]
    })
    .to_string();
    let example = parse_example(&line, 7, DatasetFormat::BedrockConversation).unwrap();

    // WHEN the deployment and the base model are asked through Converse
    let runtime = BedrockRuntime::new(trained.runtime.clone());
    let tuned = runtime.answer(&deployment.id, &example, 256).await.unwrap();
    let base = runtime
        .answer("amazon.nova-lite-v1:0", &example, 256)
        .await
        .unwrap();

    // THEN the deployment answers with the trained turn, the base model
    // scores lower, and the deployment was called once
    assert_eq!(
        tuned.answer,
        Answer::Text {
            text: expected.into()
        }
    );
    assert!(
        score_answer(&example.reference, &tuned.answer)
            > score_answer(&example.reference, &base.answer)
    );
    assert!(tuned.input_tokens > 0 && tuned.output_tokens > 0);
    assert_eq!(converse_calls(&deployment.id).await.unwrap(), 1);

    // AND the custom model itself cannot be called on demand
    let refused = runtime
        .answer(&trained.model_arn, &example, 256)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "provider_invalid_request", "{refused}");
}
