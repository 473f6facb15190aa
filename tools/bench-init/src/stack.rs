//! The local stack the functions start against: moto with a table, a
//! bucket and the OpenAI secrets, and the environment Lambda would give a
//! function pointing at them. The events they are sent are the tests'
//! samples (`finetune_tests::events`).

/// The webhook signing secret the `webhook` function reads at start.
pub const WEBHOOK_SECRET: &str = "whsec_YmVuY2gtd2ViaG9vay1zaWduaW5nLXNlY3JldA==";

/// Moto with a table, a bucket and the OpenAI key secret; the functions'
/// environment pointing at them.
pub fn local_stack() -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let endpoint = finetune_tests::moto_endpoint().to_owned();
    let table = finetune_tests::unique_name("bench");
    let bucket = finetune_tests::unique_name("bench");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (secret_arn, webhook_secret_arn) = runtime.block_on(async {
        let sdk = finetune_tests::sdk_config().await;
        finetune::store::provision::create_table(&finetune::aws::dynamodb_client(&sdk), &table)
            .await?;
        finetune_tests::s3_client(&sdk)
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await?;
        let secret = aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(finetune_tests::unique_name("openai-key"))
            .secret_string("sk-bench-not-a-real-key")
            .send()
            .await?;
        let webhook = aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(finetune_tests::unique_name("openai-webhook"))
            .secret_string(WEBHOOK_SECRET)
            .send()
            .await?;
        Ok::<_, Box<dyn std::error::Error>>((
            secret.arn.unwrap_or_default(),
            webhook.arn.unwrap_or_default(),
        ))
    })?;
    Ok([
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("FINETUNE_TABLE", table.as_str()),
        ("FINETUNE_BUCKET", bucket.as_str()),
        // Where prepare would read its vocabularies (its layer in Lambda).
        (
            "FINETUNE_DICTIONARY_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"),
        ),
        if std::env::var("BENCH_KEY_SOURCE").as_deref() == Ok("env") {
            ("OPENAI_API_KEY", "sk-bench-not-a-real-key")
        } else {
            ("OPENAI_API_KEY_SECRET_ARN", secret_arn.as_str())
        },
        if std::env::var("BENCH_KEY_SOURCE").as_deref() == Ok("env") {
            ("OPENAI_WEBHOOK_SECRET", WEBHOOK_SECRET)
        } else {
            ("OPENAI_WEBHOOK_SECRET_ARN", webhook_secret_arn.as_str())
        },
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    // Where the TLS roots are read from, when the caller says (rustls reads
    // the bundle and the whole certificate directory otherwise; a runtime
    // image has far fewer files there than a dev machine).
    .chain(
        ["SSL_CERT_FILE", "SSL_CERT_DIR"]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v))),
    )
    .collect())
}
