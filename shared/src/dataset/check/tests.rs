use super::*;

fn check(text: &str) -> CheckReport {
    check_jsonl(text.as_bytes(), &CheckOptions::default()).unwrap()
}

fn errors(line: &str) -> Vec<&'static str> {
    check_example(line, &mut TokenCounter::new(Encoding::Cl100kBase).unwrap()).errors
}

const PLAIN: &str = r#"{"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}"#;

#[test]
fn token_convention_matches_the_notebook_on_a_hand_computed_example() {
    // GIVEN user "Hi" and assistant "Hello" (each role and text is one
    // cl100k token)
    let line =
        r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}"#;
    // WHEN counted
    let c = check_example(line, &mut TokenCounter::new(Encoding::Cl100kBase).unwrap());
    // THEN 3 primer + (3 + 1 + 1) per message
    assert_eq!(c.tokens, Some(13));
    assert_eq!(c.assistant_tokens, 1);
    assert!(c.errors.is_empty());
    assert!(!c.has_system && c.has_user);
}

#[test]
fn a_name_costs_its_tokens_plus_one() {
    let line = r#"{"messages":[{"role":"user","name":"bob","content":"Hi"},{"role":"assistant","content":"Hello"}]}"#;
    let c = check_example(line, &mut TokenCounter::new(Encoding::Cl100kBase).unwrap());
    assert_eq!(c.tokens, Some(13 + 1 + 1));
}

#[test]
fn counts_equal_tiktoken_with_the_notebook_formula() {
    let reference = tiktoken_rs::cl100k_base_singleton();
    let n = |s: &str| reference.encode_ordinary(s).len() as u64;
    let expected = 3
        + (3 + n("system") + n("You are helpful."))
        + (3 + n("user") + n("Hi"))
        + (3 + n("assistant") + n("Hello"));
    let report = check(PLAIN);
    assert_eq!(report.tokens.sum, expected);
    assert_eq!(report.billing_tokens, expected);
}

#[test]
fn plain_file_figures_follow_the_notebook() {
    // GIVEN five valid examples, one without a system message and one
    // without a user message (the toy file's shape)
    let no_system =
        r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}"#;
    let no_user =
        r#"{"messages":[{"role":"system","content":"S"},{"role":"assistant","content":"Hello"}]}"#;
    let text = [PLAIN, PLAIN, PLAIN, no_system, no_user].join("\n");
    // WHEN checked
    let r = check(&text);
    // THEN no errors, the warnings, and 20 epochs for 5 examples
    assert_eq!(r.examples, 5);
    assert!(r.format_errors.is_empty());
    assert_eq!(r.warnings.missing_system, 1);
    assert_eq!(r.warnings.missing_user, 1);
    assert_eq!(r.warnings.over_limit, 0);
    assert_eq!(r.epochs, 20);
    assert_eq!(r.charged_tokens, 20 * r.billing_tokens);
    assert_eq!(r.billing_tokens, r.tokens.sum);
}

#[test]
fn over_limit_examples_are_warned_and_billed_at_the_limit() {
    let long = "word ".repeat(200);
    let line = format!(
        r#"{{"messages":[{{"role":"user","content":"{long}"}},{{"role":"assistant","content":"ok"}}]}}"#
    );
    let options = CheckOptions {
        encoding: Encoding::Cl100kBase,
        max_tokens_per_example: 50,
    };
    let r = check_jsonl(line.as_bytes(), &options).unwrap();
    assert_eq!(r.warnings.over_limit, 1);
    assert_eq!(r.billing_tokens, 50);
    assert!(r.tokens.sum > 200);
}

#[test]
fn notebook_categories_are_counted_per_occurrence() {
    assert_eq!(errors("[1,2]"), ["data_type"]);
    assert_eq!(errors(r#""text""#), ["data_type"]);
    assert_eq!(errors(r#"{"messages":[]}"#), ["missing_messages_list"]);
    assert_eq!(errors(r#"{"prompt":"x"}"#), ["missing_messages_list"]);
    assert_eq!(
        errors(
            r#"{"messages":[{"role":"user"},{"role":"user"},{"role":"assistant","content":"a"}]}"#
        ),
        [
            "message_missing_key",
            "missing_content",
            "message_missing_key",
            "missing_content"
        ]
    );
    assert_eq!(
        errors(
            r#"{"messages":[{"role":"user","content":"x","extra":1},{"role":"assistant","content":"a"}]}"#
        ),
        ["message_unrecognized_key"]
    );
    assert_eq!(
        errors(r#"{"messages":[{"role":"bot","content":"x"},{"role":"assistant","content":"a"}]}"#),
        ["unrecognized_role"]
    );
    assert_eq!(
        errors(r#"{"messages":[{"role":"user","content":""},{"role":"assistant","content":5}]}"#),
        ["missing_content", "missing_content"]
    );
    assert_eq!(
        errors(r#"{"messages":[{"role":"user","content":"x"}]}"#),
        ["example_missing_assistant_message"]
    );
}

#[test]
fn function_call_excuses_empty_content_but_not_null_content() {
    // The notebook's rule: null content is "not a string" even with a call.
    assert!(
        errors(r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"","function_call":{"name":"f","arguments":"{}"}}]}"#)
            .is_empty()
    );
    assert_eq!(
        errors(
            r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}}]}"#
        ),
        ["missing_content"]
    );
}

const TOOL_OK: &str = r#"{"tools":[{"type":"function","function":{"name":"lookup","parameters":{}}}],"messages":[{"role":"user","content":"order?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"id\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"shipped"},{"role":"assistant","content":"It shipped.","weight":1}]}"#;

#[test]
fn well_formed_tool_calls_and_weights_pass() {
    assert_eq!(errors(TOOL_OK), Vec::<&str>::new());
}

#[test]
fn a_tool_call_as_the_last_message_needs_no_result() {
    let line = r#"{"messages":[{"role":"user","content":"order?"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{}"}}]}]}"#;
    assert_eq!(errors(line), Vec::<&str>::new());
}

#[test]
fn broken_tool_use_has_its_own_categories() {
    let unanswered = TOOL_OK.replace(
        r#"{"role":"tool","tool_call_id":"c1","content":"shipped"},"#,
        "",
    );
    assert_eq!(errors(&unanswered), ["tool_call_unanswered"]);
    let wrong_id = TOOL_OK.replace(r#""tool_call_id":"c1""#, r#""tool_call_id":"c9""#);
    assert_eq!(
        errors(&wrong_id),
        ["tool_call_id_unmatched", "tool_call_unanswered"]
    );
    let bad_call = TOOL_OK.replace(
        r#""type":"function","function":{"name":"lookup","arguments""#,
        r#""type":"function","function":{"name":"","arguments""#,
    );
    assert!(errors(&bad_call).contains(&"tool_calls_invalid"));
    let bad_weight = TOOL_OK.replace(r#""weight":1"#, r#""weight":0.5"#);
    assert_eq!(errors(&bad_weight), ["weight_invalid"]);
    let bad_tools = TOOL_OK.replace(
        r#""type":"function","function":{"name":"lookup","parameters":{}}"#,
        r#""type":"retrieval""#,
    );
    assert_eq!(errors(&bad_tools), ["tools_invalid"]);
    let not_object = r#"{"messages":["hi",{"role":"assistant","content":"a"}]}"#;
    assert_eq!(errors(not_object), ["message_data_type"]);
}

#[test]
fn bad_lines_are_reported_with_their_line_number_not_a_crash() {
    let text = format!("{PLAIN}\n\n{{\"messages\": [\n\u{feff}garbage\r\n{PLAIN}\r\n");
    let r = check(&text);
    assert_eq!(r.examples, 4);
    assert_eq!(r.format_errors.get("invalid_json"), Some(&2));
    assert_eq!(
        r.line_errors,
        vec![
            LineError {
                line: 3,
                category: "invalid_json".into()
            },
            LineError {
                line: 4,
                category: "invalid_json".into()
            },
        ]
    );
    assert_eq!(r.tokens.sum, 2 * check(PLAIN).tokens.sum);
}

#[test]
fn a_bom_on_the_first_line_and_crlf_are_accepted() {
    let text = format!("\u{feff}{PLAIN}\r\n{PLAIN}\r\n");
    let r = check(&text);
    assert_eq!(r.examples, 2);
    assert!(r.format_errors.is_empty(), "{:?}", r.format_errors);
}

#[test]
fn escaped_strings_count_like_their_text() {
    let a = r#"{"messages":[{"role":"user","content":"caf\u00e9 \"x\""},{"role":"assistant","content":"ok"}]}"#;
    let b = "{\"messages\":[{\"role\":\"user\",\"content\":\"café \\\"x\\\"\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}";
    assert_eq!(check(a).tokens.sum, check(b).tokens.sum);
}

#[test]
fn options_follow_the_model() {
    let o = CheckOptions::for_model("gpt-4o-mini-2024-07-18");
    assert_eq!(o.encoding, Encoding::O200kBase);
    assert_eq!(o.max_tokens_per_example, 65_536);
    let o = CheckOptions::for_model("gpt-3.5-turbo-0125");
    assert_eq!(o.encoding, Encoding::Cl100kBase);
    assert_eq!(o.max_tokens_per_example, 16_385);
    assert_eq!(CheckOptions::default().max_tokens_per_example, 16_385);
}
