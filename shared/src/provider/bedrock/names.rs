//! Every name the adapter gives Bedrock, derived from the run alone, so a
//! retried or repeated create names the same job (Bedrock refuses a second
//! job of one name in an account and region) and carries the same
//! `clientRequestToken` (Bedrock's idempotency key).

use crate::domain::{RunId, TenantId};

/// Prefix of every job this service creates, so an operator can tell them
/// apart in the console.
const JOB_PREFIX: &str = "ft-";

/// `ft-run-{32 hex}`: Bedrock job names match `[a-zA-Z0-9](-*[a-zA-Z0-9+\-.])*`
/// (no `_`), at most 63 characters.
pub fn job_name(run: &RunId) -> String {
    format!("{JOB_PREFIX}{}", run.as_str().replace('_', "-"))
}

/// `ft-run-{32 hex}-model`: custom model names match `([0-9a-zA-Z][_-]?)+`,
/// at most 63 characters; unique per run like the job.
pub fn custom_model_name(run: &RunId) -> String {
    format!("{}-model", job_name(run))
}

/// `finetune-run_{32 hex}`: tokens match `[a-zA-Z0-9]([-_a-zA-Z0-9])*`, at
/// most 256 characters. The same run always sends the same token.
pub fn client_request_token(run: &RunId) -> String {
    format!("finetune-{}", run.as_str())
}

/// `ft-run-{32 hex}-serving`: deployment names match
/// `([0-9a-zA-Z][_-]?){1,63}`; one per run, like the job.
pub fn deployment_name(run: &RunId) -> String {
    format!("{}-serving", job_name(run))
}

/// `finetune-deploy-run-{32 hex}`: deployment tokens match
/// `[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}[a-zA-Z0-9])?` (no `_`, unlike a job's).
pub fn deployment_token(run: &RunId) -> String {
    format!("finetune-deploy-{}", run.as_str().replace('_', "-"))
}

/// Where Bedrock writes the job's output (metrics, logs): under the run, in
/// the prefix the service role may write and nothing else.
pub fn output_prefix(tenant: &TenantId, run: &RunId) -> String {
    format!("bedrock-output/{tenant}/{run}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches_bedrock_pattern(s: &str, allowed: impl Fn(char) -> bool) -> bool {
        s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) && s.chars().all(allowed)
    }

    #[test]
    fn names_are_deterministic_and_fit_bedrock_patterns() {
        let run = RunId::generate();
        assert_eq!(job_name(&run), job_name(&run));
        assert_eq!(client_request_token(&run), client_request_token(&run));

        let job = job_name(&run);
        assert!(job.len() <= 63, "{job}");
        assert!(matches_bedrock_pattern(&job, |c| c.is_ascii_alphanumeric()
            || matches!(c, '-' | '+' | '.')));

        let model = custom_model_name(&run);
        assert!(model.len() <= 63, "{model}");
        assert!(matches_bedrock_pattern(&model, |c| c
            .is_ascii_alphanumeric()
            || matches!(c, '-' | '_')));

        let token = client_request_token(&run);
        assert!(token.len() <= 256, "{token}");
        assert!(matches_bedrock_pattern(&token, |c| c
            .is_ascii_alphanumeric()
            || matches!(c, '-' | '_')));
    }

    #[test]
    fn deployment_names_and_tokens_fit_their_own_bedrock_patterns() {
        let run = RunId::generate();
        let name = deployment_name(&run);
        assert_eq!(name, deployment_name(&run));
        assert!(name.len() <= 63, "{name}");
        // `([0-9a-zA-Z][_-]?){1,63}`: no two separators in a row, none first
        assert!(matches_bedrock_pattern(&name, |c| c
            .is_ascii_alphanumeric()
            || matches!(c, '-' | '_')));
        assert!(!name.contains("--") && !name.contains("_-") && !name.contains("-_"));
        let token = deployment_token(&run);
        assert!(token.len() <= 256, "{token}");
        assert!(matches_bedrock_pattern(&token, |c| c
            .is_ascii_alphanumeric()
            || c == '-'));
        assert!(!token.ends_with('-'));
        assert_ne!(deployment_name(&RunId::generate()), name);
    }

    #[test]
    fn two_runs_never_share_a_name() {
        let (a, b) = (RunId::generate(), RunId::generate());
        assert_ne!(job_name(&a), job_name(&b));
        assert_ne!(client_request_token(&a), client_request_token(&b));
    }

    #[test]
    fn the_output_prefix_is_under_the_tenant_and_run() {
        let run = RunId::parse("run_0190f1c2d3e4f5a6b7c8d9e0f1a2b3c4").unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        assert_eq!(
            output_prefix(&tenant, &run),
            "bedrock-output/acme/run_0190f1c2d3e4f5a6b7c8d9e0f1a2b3c4/"
        );
    }
}
