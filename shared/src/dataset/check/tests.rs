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

/// A file under the temp dir, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn with(bytes: &[u8]) -> Self {
        let name = format!("ft-check-test-{}.jsonl", uuid::Uuid::new_v4().simple());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn threads(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// The chunked check with chunks of about `chunk_bytes`, so that small
/// files get boundaries everywhere.
fn check_in_chunks(file: &TempFile, n: usize, chunk_bytes: u64) -> CheckReport {
    let handle = File::open(&file.0).unwrap();
    let len = handle.metadata().unwrap().len();
    check_file_in_chunks(
        &file.0,
        handle,
        len,
        &CheckOptions::default(),
        threads(n),
        chunk_bytes,
    )
    .unwrap()
}

/// The report as the CLI prints it: equal text is what "identical" means.
fn printed(report: &CheckReport) -> String {
    serde_json::to_string_pretty(report).unwrap()
}

const THREAD_COUNTS: [usize; 4] = [1, 2, 3, 8];

/// Lines of every kind the merge must keep in place: valid ones with and
/// without warnings, tool use, each error kind, blank and whitespace-only
/// lines, a BOM that is not on the first line, bytes that are not UTF-8.
const LINE_KINDS: [&[u8]; 12] = [
    PLAIN.as_bytes(),
    br#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}"#,
    br#"{"messages":[{"role":"system","content":"S"},{"role":"assistant","content":"Hello there, how are you?"}]}"#,
    TOOL_OK.as_bytes(),
    br#"{"messages": ["#,
    b"[1,2]",
    br#"{"messages":[]}"#,
    br#"{"messages":[{"role":"user"},{"role":"bot","content":5,"x":1}]}"#,
    b"",
    b"  \t ",
    b"\xef\xbb\xbf{\"messages\":[]}",
    b"\xff\xfe not utf-8",
];

/// A file of the given lines (by kind, each ending in CRLF or LF), with a
/// BOM first and a final line end or not.
fn file_bytes(lines: &[(usize, bool)], bom: bool, final_newline: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(b"\xef\xbb\xbf");
    }
    for (i, &(kind, crlf)) in lines.iter().enumerate() {
        out.extend_from_slice(LINE_KINDS[kind % LINE_KINDS.len()]);
        if i + 1 < lines.len() || final_newline {
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
    }
    out
}

proptest::proptest! {
    #[test]
    fn a_file_checked_in_chunks_on_any_number_of_threads_gives_the_sequential_report(
        lines in proptest::collection::vec((0usize..LINE_KINDS.len(), proptest::bool::ANY), 0..40),
        bom: bool,
        final_newline: bool,
        chunk_bytes in 1u64..300,
    ) {
        let bytes = file_bytes(&lines, bom, final_newline);
        let file = TempFile::with(&bytes);
        let expected = printed(&check_jsonl(&bytes[..], &CheckOptions::default()).unwrap());
        for n in THREAD_COUNTS {
            proptest::prop_assert_eq!(&printed(&check_in_chunks(&file, n, chunk_bytes)), &expected, "{} threads", n);
        }
    }

    #[test]
    fn chunks_start_at_line_starts_and_cover_the_file_once(
        lines in proptest::collection::vec((0usize..LINE_KINDS.len(), proptest::bool::ANY), 0..40),
        final_newline: bool,
        chunk_bytes in 1u64..300,
    ) {
        let bytes = file_bytes(&lines, false, final_newline);
        let file = TempFile::with(&bytes);
        let chunks = line_aligned_chunks(&File::open(&file.0).unwrap(), bytes.len() as u64, chunk_bytes);
        proptest::prop_assert_eq!(chunks[0].start, 0);
        proptest::prop_assert_eq!(chunks[chunks.len() - 1].len, None);
        for pair in chunks.windows(2) {
            proptest::prop_assert_eq!(Some(pair[1].start - pair[0].start), pair[0].len);
            proptest::prop_assert!(pair[0].len.unwrap() >= chunk_bytes);
            proptest::prop_assert_eq!(bytes[pair[1].start as usize - 1], b'\n');
        }
        proptest::prop_assert!(chunks[chunks.len() - 1].start < bytes.len().max(1) as u64);
    }
}

#[test]
fn more_errors_than_listed_keep_the_first_ones_in_file_order_on_any_number_of_threads() {
    // GIVEN a file with a BOM, CRLF and blank lines, 3,000 error lines
    // (more than MAX_LINE_ERRORS) and a last line without a line end
    let mut text = format!("\u{feff}{PLAIN}\n");
    for i in 0..3_000 {
        match i % 4 {
            0 => text.push_str("{\"messages\": [\n"),
            1 => text.push('\n'),
            2 => text.push_str(&format!("{PLAIN}\r\n")),
            _ => text.push_str("{\"messages\":[{\"role\":\"user\"}]}\n"),
        }
    }
    text.push_str(PLAIN);
    let file = TempFile::with(text.as_bytes());
    let expected = check(&text);
    assert!(expected.line_errors_truncated);
    assert_eq!(expected.line_errors.len(), MAX_LINE_ERRORS);
    // WHEN checked in chunks of various sizes (down to a line each, up to
    // one chunk over the cap on its own) on 1, 2, 3 and 8 threads
    for chunk_bytes in [7, 1_000, 64 * 1024, MIN_CHUNK_BYTES] {
        for n in THREAD_COUNTS {
            // THEN the report is the sequential one, to the byte
            let report = check_in_chunks(&file, n, chunk_bytes);
            assert_eq!(
                printed(&report),
                printed(&expected),
                "{n} threads, {chunk_bytes}-byte chunks"
            );
        }
    }
}

#[test]
fn a_file_over_the_minimum_chunk_size_is_split_and_checked_the_same_through_the_public_function() {
    // GIVEN ~3 MB of examples with a few errors spread through it
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 3 * MIN_CHUNK_BYTES as usize {
        if i % 997 == 0 {
            text.push_str("not json\n");
        } else {
            text.push_str(if i % 2 == 0 { PLAIN } else { TOOL_OK });
            text.push('\n');
        }
        i += 1;
    }
    let file = TempFile::with(text.as_bytes());
    let expected = printed(&check(&text));
    // The default chunking really cuts this file.
    let handle = File::open(&file.0).unwrap();
    assert!(line_aligned_chunks(&handle, text.len() as u64, MIN_CHUNK_BYTES).len() >= 3);
    // WHEN checked with the CLI's function on 1, 2 and 8 threads
    for n in [1, 2, 8] {
        let report = check_jsonl_file(&file.0, &CheckOptions::default(), threads(n)).unwrap();
        // THEN every report is the sequential one
        assert_eq!(printed(&report), expected, "{n} threads");
    }
}

#[test]
fn a_missing_file_is_an_open_error_naming_it() {
    let path = std::env::temp_dir().join("ft-check-test-does-not-exist.jsonl");
    let err = check_jsonl_file(&path, &CheckOptions::default(), threads(2)).unwrap_err();
    assert!(matches!(err, CheckFileError::Open { .. }));
    assert!(
        err.to_string()
            .contains("ft-check-test-does-not-exist.jsonl")
    );
}
