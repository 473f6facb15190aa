//! Secrets read on first use from Secrets Manager (moto).

use finetune::config::ApiKeySource;
use finetune::secret::{LazySecret, SecretError};

#[tokio::test]
async fn a_secret_is_read_once_and_a_failed_read_is_tried_again() {
    // GIVEN a secret source naming a secret that does not exist yet
    let sdk = finetune_tests::sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = finetune_tests::unique_name("key");
    let source = ApiKeySource::SecretArn(name.clone());
    let secret = LazySecret::new("the test key", "KEY or KEY_ARN", &source, &sdk);

    // WHEN it is first needed
    let err = secret.get().await.unwrap_err();

    // THEN the error names the secret, not a value
    assert!(
        matches!(&err, SecretError::Unreadable { arn, .. } if arn == &name),
        "{err}"
    );
    assert!(err.to_string().contains(&name));

    // WHEN the secret is created (with stray whitespace) and asked again
    secrets
        .create_secret()
        .name(&name)
        .secret_string("  sk-from-secrets-manager\n")
        .send()
        .await
        .unwrap();
    assert_eq!(secret.get().await.unwrap(), "sk-from-secrets-manager");

    // THEN the value is kept: a rotated secret is seen by new containers
    secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string("sk-rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(secret.get().await.unwrap(), "sk-from-secrets-manager");
}

#[tokio::test]
async fn an_empty_secret_is_refused_by_name() {
    let sdk = finetune_tests::sdk_config().await;
    let name = finetune_tests::unique_name("empty");
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&name)
        .secret_string("   ")
        .send()
        .await
        .unwrap();
    let secret = LazySecret::new(
        "the test key",
        "KEY",
        &ApiKeySource::SecretArn(name.clone()),
        &sdk,
    );
    assert_eq!(
        secret.get().await.unwrap_err(),
        SecretError::Empty {
            what: "the test key",
            arn: name
        }
    );
}
