//! The providers' API schemas the contract tests check against, carried in
//! `tests/contract/` so that a clone passes its tests with nothing beside
//! it. They are subsets of the published documents (openai/openai-openapi,
//! togethercomputer/openapi, botocore's Bedrock models) written by
//! `tools/contract/extract.py` (`make contract-schemas`), which records in
//! `SOURCES.json` where each came from. No network here: these tests only
//! check that each file is whole, holds what the tests use, and is the one
//! its record describes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `tests/contract/`, found from this crate's manifest, never from the
/// current directory or anything outside the repository.
pub(crate) fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contract")
}

/// One of the extracted documents, parsed.
pub(crate) fn document(name: &str) -> Value {
    let path = dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// An OpenAPI subset's file, the (method, path) operations and the schemas
/// it must hold.
type OpenApiSubset = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

/// Each OpenAPI subset: the operations and the schemas that the contract
/// tests (now, or the chat and Together adapters next) rely on.
const OPENAPI: &[OpenApiSubset] = &[
    (
        "openai-finetuning-openapi.json",
        &[
            ("post", "/files"),
            ("post", "/uploads"),
            ("post", "/fine_tuning/jobs"),
            ("get", "/fine_tuning/jobs/{fine_tuning_job_id}/events"),
            ("get", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"),
            ("delete", "/models/{model}"),
        ],
        &["ErrorResponse", "ListFilesResponse"],
    ),
    (
        "openai-chat-completions-openapi.json",
        &[("post", "/chat/completions")],
        &[
            "CreateChatCompletionRequest",
            "CreateChatCompletionResponse",
            "ErrorResponse",
        ],
    ),
    (
        "together-finetuning-openapi.json",
        &[
            ("post", "/files/upload"),
            ("post", "/fine-tunes"),
            ("get", "/fine-tunes/{id}"),
            ("get", "/fine-tunes/{id}/events"),
            ("get", "/fine-tunes/{id}/checkpoints"),
            ("post", "/fine-tunes/{id}/cancel"),
            ("get", "/finetune/download"),
            ("get", "/models"),
            ("post", "/chat/completions"),
        ],
        &[
            "FileResponse",
            "FinetuneResponse",
            "FinetuneListEvents",
            "FinetuneListCheckpoints",
            "ChatCompletionRequest",
            "ChatCompletionResponse",
            "ErrorData",
        ],
    ),
];

/// Each botocore subset: the operations the Bedrock adapter calls or will.
const BOTOCORE: &[(&str, &[&str])] = &[
    (
        "bedrock-customization-service.json",
        &[
            "CreateModelCustomizationJob",
            "GetModelCustomizationJob",
            "ListModelCustomizationJobs",
            "StopModelCustomizationJob",
            "GetCustomModel",
            "ListCustomModels",
            "DeleteCustomModel",
            "CreateCustomModelDeployment",
            "GetCustomModelDeployment",
            "ListCustomModelDeployments",
            "DeleteCustomModelDeployment",
        ],
    ),
    ("bedrock-runtime-converse-service.json", &["Converse"]),
];

/// Every `$ref` in a JSON value.
fn refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        out.insert(r.clone());
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Every shape name a botocore shape or operation refers to.
fn shape_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(s)) = map.get("shape") {
                out.insert(s.clone());
            }
            map.values().for_each(|v| shape_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| shape_refs(v, out)),
        _ => {}
    }
}

/// A draft 2020-12 validator for `#/components/schemas/{name}` with the
/// whole document as its resource, as the contract tests build theirs.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"))
}

#[test]
fn every_openapi_subset_parses_holds_what_the_tests_use_and_resolves_every_reference() {
    for (file, operations, schemas) in OPENAPI {
        let doc = document(file);
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{file} is not an OpenAPI 3 document"
        );
        for (method, path) in *operations {
            assert!(
                doc["paths"][path].get(method).is_some(),
                "{file} lacks {} {path}",
                method.to_uppercase()
            );
        }
        let mut wanted: Vec<&str> = schemas.to_vec();
        if *file == "openai-finetuning-openapi.json" {
            for (_, _, request, response) in crate::openai_contract::ENDPOINTS {
                wanted.push(response);
                wanted.extend(request);
            }
        }
        for schema in wanted {
            assert!(
                doc["components"]["schemas"].get(schema).is_some(),
                "{file} lacks the schema {schema}"
            );
        }
        // A subset is closed: nothing it refers to was left behind.
        let mut found = BTreeSet::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty(), "{file} refers to nothing");
        for r in found {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{file}: {r} points outside the document"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{file}: {r} does not resolve"
            );
        }
    }
}

#[test]
fn the_chat_completions_schemas_compile_and_tell_a_request_from_a_malformed_one() {
    // GIVEN the chat subset a later adapter will be checked against
    let doc = document("openai-chat-completions-openapi.json");
    let request = validator(&doc, "CreateChatCompletionRequest");
    validator(&doc, "CreateChatCompletionResponse");
    // THEN a request as the API documents it passes, and one without its
    // messages, or with a role the API does not have, does not
    let good = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hola"}]});
    assert!(request.is_valid(&good));
    assert!(!request.is_valid(&json!({"model": "gpt-4o-mini"})));
    assert!(!request.is_valid(&json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "customer", "content": "hola"}]
    })));
}

#[test]
fn every_botocore_subset_parses_holds_its_operations_and_resolves_every_shape() {
    for (file, operations) in BOTOCORE {
        let doc = document(file);
        assert!(
            doc["metadata"]["protocol"].is_string(),
            "{file} is not a botocore service model"
        );
        for op in *operations {
            let operation = &doc["operations"][op];
            assert!(operation.is_object(), "{file} lacks the operation {op}");
            for io in ["input", "output"] {
                if let Some(shape) = operation[io]["shape"].as_str() {
                    assert!(
                        doc["shapes"].get(shape).is_some(),
                        "{file}: {op}'s {io} {shape} is missing"
                    );
                }
            }
        }
        let mut found = BTreeSet::new();
        shape_refs(&doc["operations"], &mut found);
        shape_refs(&doc["shapes"], &mut found);
        for shape in found {
            assert!(
                doc["shapes"].get(&shape).is_some(),
                "{file}: the shape {shape} does not resolve"
            );
        }
    }
}

#[test]
fn sources_records_every_contract_file_with_its_origin_licence_date_and_digest() {
    // GIVEN the record the extraction script keeps beside the files
    let sources = document("SOURCES.json");
    let recorded = sources["files"]
        .as_object()
        .expect("SOURCES.json has a files object");
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "SOURCES.json")
        .collect();
    let expected: BTreeSet<String> = OPENAPI
        .iter()
        .map(|(f, _, _)| f.to_string())
        .chain(BOTOCORE.iter().map(|(f, _)| f.to_string()))
        .collect();
    // THEN it names exactly the files there are, and the tests use them all
    assert_eq!(
        recorded.keys().cloned().collect::<BTreeSet<_>>(),
        on_disk,
        "SOURCES.json and tests/contract/ disagree"
    );
    assert_eq!(on_disk, expected, "a contract file no test checks");
    for (file, entry) in recorded {
        let source = &entry["source"];
        assert!(
            source["repository"]
                .as_str()
                .is_some_and(|r| r.starts_with("https://")),
            "{file}: no source repository"
        );
        assert!(source["path"].is_string(), "{file}: no source path");
        assert!(
            source["commit"].is_string() || source["version"].is_string(),
            "{file}: neither a commit nor a version of its source"
        );
        assert!(
            matches!(entry["license"].as_str(), Some("MIT" | "Apache-2.0")),
            "{file}: licence {} is not one we checked",
            entry["license"]
        );
        let licence_file = dir().join(entry["license_file"].as_str().unwrap_or_default());
        assert!(
            licence_file.is_file(),
            "{file}: its licence text {} is missing",
            licence_file.display()
        );
        let extracted = entry["extracted"].as_str().unwrap_or_default();
        assert!(
            chrono::NaiveDate::parse_from_str(extracted, "%Y-%m-%d").is_ok(),
            "{file}: extraction date {extracted:?}"
        );
        // AND the file is the one the script wrote (not edited by hand)
        let bytes = std::fs::read(dir().join(file)).unwrap();
        assert_eq!(
            entry["sha256"].as_str(),
            Some(hex::encode(Sha256::digest(&bytes)).as_str()),
            "{file} differs from what tools/contract/extract.py wrote: re-run `make contract-schemas`"
        );
    }
}
