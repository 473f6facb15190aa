//! `template.yaml` against the code: where both state a default, they
//! state the same one, so a deployment behaves as docs/configuration.md
//! and docs/deploy.md say.

use finetune::provider::bedrock::profile::DEFAULT_BASE_MODELS as DEFAULT_BEDROCK_BASE_MODELS;
use finetune::provider::openai::profile::DEFAULT_BASE_MODELS;
use finetune::provider::together::profile::DEFAULT_BASE_MODELS as DEFAULT_TOGETHER_BASE_MODELS;

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
