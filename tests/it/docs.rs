//! The documentation as a newcomer meets it: a README short enough to read
//! in five minutes, and no link in it or in `docs/` that leads nowhere.
//! Pages move and headings get renamed; a link that still points at the
//! old place is found here, not by a reader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The README is the front door: what the project is, the two commands, a
/// diagram and where to read on. Everything else belongs in `docs/`.
const README_MAX_LINES: usize = 300;

fn root() -> PathBuf {
    finetune_tests::workspace_root()
}

/// README.md and every markdown page directly under `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of a markdown text outside fenced code blocks: what is in a
/// fence is an example, not a link or a heading.
fn unfenced_lines(text: &str) -> Vec<&str> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push(line);
        }
    }
    lines
}

/// The prose of a markdown text: unfenced lines with inline code spans
/// blanked out (a span may run over a line break, never over a blank
/// line, as in a paragraph).
fn prose_lines(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut lines = Vec::new();
    for line in unfenced_lines(text) {
        if line.trim().is_empty() {
            in_code = false;
        }
        let mut prose = String::with_capacity(line.len());
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                prose.push(' ');
            } else if !in_code {
                prose.push(c);
            }
        }
        lines.push(prose);
    }
    lines
}

/// The targets of the inline links (and images) of a markdown text:
/// `[text](target)` and `[text](target "title")`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            if !target.is_empty() {
                targets.push(target.to_owned());
            }
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lowercase; every character that is not
/// a letter, a digit, a space, `-` or `_` removed; spaces become `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a page's headings make, a repeated one numbered as GitHub
/// numbers it (`name`, `name-1`, `name-2`).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in unfenced_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line[hashes..].trim().trim_end_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// Why `target`, linked from `page`, leads nowhere; `None` when it leads
/// somewhere (or off the repository, which is not ours to check).
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().expect("a page has a folder").join(path)
    };
    if !file.exists() {
        return Some(format!("{} does not exist", file.display()));
    }
    let anchor = anchor?;
    let is_markdown = file.extension().is_some_and(|e| e == "md");
    if !is_markdown {
        return Some(format!(
            "#{anchor} points into {}, which has no headings",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(&file).expect("a linked page is readable");
    (!anchors(&text).contains(anchor)).then(|| {
        format!(
            "{} has no heading whose anchor is #{anchor}",
            file.display()
        )
    })
}

#[test]
fn the_readme_is_at_most_three_hundred_lines() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; at most {README_MAX_LINES} (move the detail into docs/)"
    );
}

#[test]
fn every_relative_link_in_the_readme_and_docs_leads_to_a_file_and_heading_that_exist() {
    // GIVEN the README and every page under docs/
    let mut checked = 0;
    let mut problems = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("a page is readable");
        // WHEN each of their links is followed
        for target in link_targets(&text) {
            checked += 1;
            if let Some(problem) = broken(&page, &target) {
                let name = page.strip_prefix(root()).unwrap_or(&page).display();
                problems.push(format!("{name}: ({target}): {problem}"));
            }
        }
    }
    // THEN each names an existing file, and each anchor one of its headings
    assert_eq!(problems, Vec::<String>::new(), "broken links");
    assert!(
        checked >= 20,
        "only {checked} links found: is the link reader broken?"
    );
}

#[test]
fn the_readme_links_every_page_under_docs() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let linked: BTreeSet<String> = link_targets(&readme)
        .into_iter()
        .map(|t| t.split('#').next().unwrap_or_default().to_owned())
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/ is readable") {
        let name = entry.expect("a docs/ entry").file_name();
        let name = format!("docs/{}", name.to_string_lossy());
        if !linked.contains(&name) {
            missing.push(name);
        }
    }
    missing.sort();
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "pages the README does not link"
    );
}

#[test]
fn a_headings_anchor_follows_githubs_slug_rules() {
    assert_eq!(slug("What `make demo` shows"), "what-make-demo-shows");
    assert_eq!(
        slug("Records (DynamoDB, one table)"),
        "records-dynamodb-one-table"
    );
    assert_eq!(
        slug("Evaluating: is the new model better than what the tenant uses?"),
        "evaluating-is-the-new-model-better-than-what-the-tenant-uses"
    );
    assert_eq!(slug("Set-up: two commands"), "set-up-two-commands");
    assert_eq!(slug("snake_case and Ünïcode"), "snake_case-and-ünïcode");
    assert_eq!(slug("a  b"), "a--b");
}

#[test]
fn a_repeated_heading_gets_a_numbered_anchor_and_code_is_not_a_heading() {
    let text =
        "# Title\n## Notes\n```sh\n# not a heading\n```\n## Notes\n#nospace\n## The `x` tool\n";
    let expected: BTreeSet<String> = ["title", "notes", "notes-1", "the-x-tool"]
        .map(String::from)
        .into();
    assert_eq!(anchors(text), expected);
}

#[test]
fn links_are_read_from_prose_only_with_titles_dropped() {
    // GIVEN links in prose, one with a title, and link-like text in code
    let text = "See [a](docs/a.md#x) and [b](b.md \"B\").\n\
                `[not](code.md)` and `a span\nover [two](lines.md)` lines\n\
                ```\n[nor](fence.md)\n```\n![img](pic.png)\n";
    // WHEN the links are read
    // THEN only the prose links (images included) are found, without titles
    assert_eq!(link_targets(text), ["docs/a.md#x", "b.md", "pic.png"]);
}
