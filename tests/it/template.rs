//! `template.yaml` against the code: where both state a default, they
//! state the same one, so a deployment behaves as docs/configuration.md
//! and docs/deploy.md say.

use finetune::provider::bedrock::profile::{
    DEFAULT_BASE_MODELS as DEFAULT_BEDROCK_BASE_MODELS,
    DEFAULT_JUDGE_MODELS as DEFAULT_BEDROCK_JUDGE_MODELS,
};
use finetune::provider::openai::profile::{DEFAULT_BASE_MODELS, DEFAULT_JUDGE_MODELS};
use finetune::provider::profiles::profile;
use finetune::provider::together::profile::{
    DEFAULT_BASE_MODELS as DEFAULT_TOGETHER_BASE_MODELS,
    DEFAULT_JUDGE_MODELS as DEFAULT_TOGETHER_JUDGE_MODELS,
};

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The `Default:` of a top-level template parameter, read as text (the
/// template's `!Ref`/`!GetAtt` tags are CloudFormation's, not YAML's).
fn parameter_default(name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = TEMPLATE.lines().skip_while(|l| *l != header).skip(1);
    lines
        .by_ref()
        .take_while(|l| l.starts_with("    "))
        .find_map(|l| l.trim().strip_prefix("Default:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("template parameter {name} has no Default"))
}

#[test]
fn the_templates_default_base_models_are_the_codes_defaults() {
    assert_eq!(parameter_default("AllowedBaseModels"), DEFAULT_BASE_MODELS);
    assert_eq!(
        parameter_default("BedrockAllowedBaseModels"),
        DEFAULT_BEDROCK_BASE_MODELS
    );
    assert_eq!(
        parameter_default("TogetherAllowedBaseModels"),
        DEFAULT_TOGETHER_BASE_MODELS
    );
}

#[test]
fn every_default_openai_base_model_has_a_recorded_shutdown_date() {
    // A base model without a date could be trained on after it shuts
    // down: the start-run check would have nothing to compare with.
    let dates: serde_json::Value = serde_json::from_str(include_str!(
        "../../shared/src/provider/shutdown_dates.json"
    ))
    .expect("shutdown_dates.json parses");
    for model in DEFAULT_BASE_MODELS.split(',') {
        assert!(
            dates["openai"]["models"][model].is_string(),
            "{model} has no shutdown date"
        );
    }
}

#[test]
fn the_templates_default_judges_are_the_codes_defaults() {
    assert_eq!(parameter_default("OpenAiJudgeModels"), DEFAULT_JUDGE_MODELS);
    assert_eq!(
        parameter_default("BedrockJudgeModels"),
        DEFAULT_BEDROCK_JUDGE_MODELS
    );
    assert_eq!(
        parameter_default("TogetherJudgeModels"),
        DEFAULT_TOGETHER_JUDGE_MODELS
    );
}

/// The lines of one resource's block in the template.
fn resource(name: &str) -> Vec<&'static str> {
    let header = format!("  {name}:");
    TEMPLATE
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("   "))
        .collect()
}

#[test]
fn the_evaluate_function_invokes_only_the_bedrock_models_a_run_can_call_in_its_region() {
    // GIVEN what the evaluate function may invoke
    let evaluate = resource("EvaluateFunction");
    let foundation: Vec<String> = evaluate
        .iter()
        .filter_map(|l| l.split("::foundation-model/").nth(1))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .collect();
    // THEN no model of any name, in no other region
    assert!(!foundation.is_empty());
    assert!(
        !foundation.iter().any(|m| m.contains('*')),
        "{foundation:?}"
    );
    assert!(
        evaluate
            .iter()
            .filter(|l| l.contains("::foundation-model/"))
            .all(|l| l.contains("bedrock:${AWS::Region}::")),
        "{evaluate:?}"
    );
    assert!(!evaluate.iter().any(|l| l.contains("inference-profile")));
    // AND every default judge and the baseline of every default base model
    // can be called
    let bedrock = profile(finetune::domain::ProviderKind::Bedrock);
    for model in DEFAULT_BEDROCK_JUDGE_MODELS
        .split(',')
        .map(str::to_owned)
        .chain(
            DEFAULT_BEDROCK_BASE_MODELS
                .split(',')
                .map(|m| bedrock.base_inference_model(m)),
        )
    {
        assert!(foundation.contains(&model), "{model} in {foundation:?}");
    }
    // AND deployments only when tagged as a run's
    let deployments = evaluate
        .iter()
        .position(|l| l.contains(":custom-model-deployment/*"))
        .expect("the runs' deployments are invoked");
    assert!(
        evaluate[deployments..]
            .iter()
            .take(5)
            .any(|l| l.contains("aws:ResourceTag/run_id: \"run_")),
        "{:?}",
        &evaluate[deployments..]
    );
}

/// The template as YAML; CloudFormation's short tags (`!Ref`, `!Sub`…)
/// are kept as tagged values.
fn parsed() -> serde_norway::Value {
    serde_norway::from_str(TEMPLATE).expect("template.yaml is YAML")
}

/// Whether IAM's `StringLike` `pattern` (`*` any run, `?` one character)
/// matches `value`.
pub(crate) fn string_like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    go(&p, &v)
}

/// A function's statements on the table itself (not its index): their
/// DynamoDB actions and the partition-key patterns their
/// `ForAllValues:StringLike` `dynamodb:LeadingKeys` condition allows
/// (`None`: no such condition, every key).
pub(crate) fn table_statements(function: &str) -> Vec<(Vec<String>, Option<Vec<String>>)> {
    let template = parsed();
    let statements = template["Resources"][function]["Properties"]["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{function} has an inline policy"))
        .clone();
    let strings = |v: &serde_norway::Value| -> Vec<String> {
        match v {
            serde_norway::Value::String(s) => vec![s.clone()],
            serde_norway::Value::Sequence(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    statements
        .iter()
        .filter(|st| {
            // `!GetAtt RecordsTable.Arn`, the table and not its index.
            matches!(&st["Resource"], serde_norway::Value::Tagged(t)
                if t.value.as_str() == Some("RecordsTable.Arn"))
        })
        .map(|st| {
            let actions = strings(&st["Action"]);
            let leading = st
                .get("Condition")
                .and_then(|c| c.get("ForAllValues:StringLike"))
                .and_then(|c| c.get("dynamodb:LeadingKeys"))
                .map(strings);
            (actions, leading)
        })
        .collect()
}

#[test]
fn every_function_may_touch_only_the_kinds_of_key_it_uses_and_the_webhook_deletes_only_deliveries()
{
    use finetune::domain::{ProviderKind, RunId, TenantId};
    use finetune::store::keys;
    // The partition keys of each item kind, as the store builds them.
    let tenant = TenantId::parse("acme").unwrap();
    let run = RunId::generate();
    let tenants = [keys::tenant_pk(&tenant), keys::events_pk(&tenant, &run)];
    let job_owner = keys::job_owner_pk(ProviderKind::OpenAi, "ftjob-abc");
    let delivery = keys::delivery_pk(ProviderKind::OpenAi, "wh_123");
    let tenant_only: Vec<String> = tenants.to_vec();
    let with_jobs: Vec<String> = tenants.iter().cloned().chain([job_owner.clone()]).collect();
    let webhook: Vec<String> = with_jobs
        .iter()
        .cloned()
        .chain([delivery.clone()])
        .collect();
    // What each function's code reads and writes (shared/src/store/).
    let uses: [(&str, &[String]); 8] = [
        ("StartRunFunction", &tenant_only),
        ("JobStatusFunction", &tenant_only),
        ("CancelFunction", &tenant_only),
        ("PrepareFunction", &tenant_only),
        ("EvaluateFunction", &tenant_only),
        ("ModelsFunction", &tenant_only),
        ("MonitorFunction", &with_jobs),
        ("WebhookFunction", &webhook),
    ];
    let all = [tenants[0].clone(), tenants[1].clone(), job_owner, delivery];
    for (function, used) in uses {
        let statements = table_statements(function);
        assert!(!statements.is_empty(), "{function} uses the table");
        for (actions, leading) in &statements {
            // THEN every grant on the table is conditioned on the key kinds
            let leading = leading
                .as_ref()
                .unwrap_or_else(|| panic!("{function} {actions:?} has no LeadingKeys condition"));
            let allowed = |key: &str| leading.iter().any(|p| string_like(p, key));
            // AND no kind of key it does not use is allowed
            for key in &all {
                if !used.contains(key) {
                    assert!(!allowed(key), "{function} {actions:?} allows {key}");
                }
            }
            // AND the webhook's delete reaches delivery claims alone
            if actions.iter().any(|a| a == "dynamodb:DeleteItem") {
                assert_eq!(function, "WebhookFunction", "{actions:?}");
                assert_eq!(actions, &["dynamodb:DeleteItem"]);
                assert!(used.iter().all(|k| allowed(k) == k.starts_with("WEBHOOK#")));
            }
        }
        // AND what it does use, some grant allows
        for key in used {
            assert!(
                statements.iter().any(|(_, leading)| leading
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|p| string_like(p, key)))),
                "{function} cannot reach {key}"
            );
        }
    }
}

#[test]
fn the_shard_queue_takes_messages_from_the_data_bucket_alone() {
    let template = parsed();
    let statement =
        &template["Resources"]["ShardQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "s3.amazonaws.com");
    let source = &statement["Condition"]["ArnEquals"]["aws:SourceArn"];
    // `!Sub [template, {variables}]`, as the bucket's own name is built.
    let (serde_norway::Value::Tagged(source), serde_norway::Value::Tagged(name)) = (
        source,
        &template["Resources"]["DataBucket"]["Properties"]["BucketName"],
    ) else {
        panic!("the queue's source and the bucket's name are both built with !Sub");
    };
    let source_arn = source.value[0].as_str().unwrap();
    let bucket = name.value[0].as_str().unwrap();
    assert!(!bucket.contains('*') && !source_arn.contains('*'));
    assert_eq!(
        source_arn,
        format!("arn:${{AWS::Partition}}:s3:::{bucket}"),
        "the queue's source is the data bucket"
    );
    assert_eq!(source.value[1], name.value[1], "the same variables");
}

#[test]
fn the_prepare_functions_tmp_is_set_and_is_what_it_budgets() {
    let template = parsed();
    let prepare = &template["Resources"]["PrepareFunction"]["Properties"];
    let size = prepare["EphemeralStorage"]["Size"]
        .as_u64()
        .expect("set explicitly");
    assert_eq!(
        prepare["Environment"]["Variables"]["PREPARE_TMP_MB"].as_str(),
        Some(size.to_string().as_str())
    );
    assert!(size >= 512);
}
