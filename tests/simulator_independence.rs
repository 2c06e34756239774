//! Simulators are independent implementations of their providers: a simulator that used its
//! connector's request building, strings to sign or notification parsing would make the
//! contract tests show only that one piece of code agrees with itself. This scans the
//! simulator sources for any use of `connectors` outside an explicit allow-list (and, since
//! a channel's simulator lives inside its connector's folder, for any `super::` path that
//! climbs out of the simulator into the connector), and keeps the shared primitives free of
//! both sides.

use std::path::{Path, PathBuf};

/// Connector paths a simulator may use. Empty: the plumbing a simulator produces
/// (`PayOptions`, `PayOutcome`, `SimEnv`) lives in `crate::simulator`, and the low-level
/// primitives (RSA, AES-GCM, HMAC, Beijing time, certificate SNs) in
/// `crate::protocol_primitives`.
const ALLOWED: &[&str] = &[];

/// Parts of the simulator sources not (yet) held to the rule, each with the reason.
const EXEMPT: &[(&str, &str)] = &[(
    "src/simulator/mod.rs",
    "registration plumbing only: `simulator::build` finds a kind's simulator constructor \
         in `connectors::REGISTRY`, the one line per channel kind; no protocol code",
)];

/// Test modules drive the connector against the simulator (they play the merchant), so
/// using the connector there is the point.
fn is_test_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every code (non-comment) line that names `word` as an identifier and does not continue
/// into an allowed path.
fn offending_lines(source: &str, word: &str, allowed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let bytes = code.as_bytes();
        let mut from = 0;
        while let Some(i) = code[from..].find(word).map(|i| i + from) {
            let end = i + word.len();
            from = end;
            let bounded = (i == 0 || !is_ident(bytes[i - 1]))
                && bytes.get(end).map_or(true, |b| !is_ident(*b));
            if !bounded {
                continue;
            }
            let rest = &code[i..];
            if !allowed.iter().any(|a| {
                rest.starts_with(a)
                    && !rest[a.len()..].starts_with(|c: char| c == '_' || c.is_alphanumeric())
            }) {
                out.push(format!("{}: {}", n + 1, line.trim()));
                break;
            }
        }
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The simulator sources: the framework in `src/simulator/` and each channel's provider
/// side in `src/connectors/<kind>/simulator/`.
fn simulator_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("src/simulator"), &mut files);
    let mut kinds = 0;
    for entry in std::fs::read_dir(root().join("src/connectors")).unwrap() {
        let dir = entry.unwrap().path().join("simulator");
        if dir.is_dir() {
            kinds += 1;
            rust_files(&dir, &mut files);
        }
    }
    assert!(kinds >= 3, "the channels' simulator folders were not found");
    files
}

/// How far up `super::` may climb from a simulator file and stay inside its simulator:
/// not at all from `simulator/mod.rs` (its parent is the connector), one level less than
/// the file's depth below the simulator folder otherwise.
fn climbs_out(rel: &str, source: &str) -> Vec<String> {
    let Some(i) = rel.find("/simulator/") else {
        return Vec::new();
    };
    let inner = &rel[i + "/simulator/".len()..];
    let depth = inner.matches('/').count() + usize::from(!inner.ends_with("mod.rs"));
    let word = "super::".repeat(depth + 1);
    source
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//") && l.contains(&word))
        .map(|(n, l)| format!("{}: {}", n + 1, l.trim()))
        .collect()
}

#[test]
fn simulators_do_not_use_their_connectors() {
    let files = simulator_files();
    let mut violations = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if is_test_file(&path) || EXEMPT.iter().any(|(dir, _)| rel.starts_with(dir)) {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for l in offending_lines(&source, "connectors", ALLOWED) {
            violations.push(format!("{rel}:{l}"));
        }
        for l in climbs_out(&rel, &source) {
            violations.push(format!("{rel}:{l}"));
        }
    }
    assert!(
        violations.is_empty(),
        "simulators must implement their provider's protocol themselves; shared \
         low-level code belongs in src/protocol_primitives:\n{}",
        violations.join("\n")
    );
}

#[test]
fn climbing_out_of_a_simulator_is_caught() {
    let top = "src/connectors/acme/simulator/mod.rs";
    let child = "src/connectors/acme/simulator/api.rs";
    let grandchild = "src/connectors/acme/simulator/pages/form.rs";
    assert_eq!(climbs_out(top, "use super::sign::sign;").len(), 1);
    assert!(climbs_out(top, "use crate::simulator::SimEnv;").is_empty());
    assert!(climbs_out(child, "use super::state::Trade;").is_empty());
    assert_eq!(climbs_out(child, "use super::super::sign;").len(), 1);
    assert!(climbs_out(grandchild, "use super::super::state;").is_empty());
    assert_eq!(
        climbs_out(grandchild, "use super::super::super::wire;").len(),
        1
    );
    assert!(climbs_out("src/simulator/faults.rs", "use super::SimEnv;").is_empty());
}

#[test]
fn primitives_depend_on_neither_side() {
    let mut files = Vec::new();
    rust_files(&root().join("src/protocol_primitives"), &mut files);
    assert!(!files.is_empty());
    for path in files {
        // A test module may read a channel's fixture file by path; that is no dependency.
        if is_test_file(&path) {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for word in ["connectors", "simulator"] {
            let bad = offending_lines(&source, word, &[]);
            assert!(bad.is_empty(), "{}: {bad:?}", path.display());
        }
    }
}

#[test]
fn the_scan_catches_every_spelling() {
    for src in [
        "use crate::connectors::wechat_pay::api::PrepayRequest;",
        "use crate::{connectors::alipay::form_encode, domain::Order};",
        "use crate::connectors::{alipay, wechat_pay};",
        "    let s = crate::connectors::alipay::sign::sign_content(&p, &[]);",
        "use paygate::connectors::wechat_pay::sign::RsaSigner;",
    ] {
        assert_eq!(offending_lines(src, "connectors", &[]).len(), 1, "{src}");
    }
    for src in [
        "//! The provider side of `connectors::wechat_pay`.",
        "    // see crate::connectors::alipay",
        "let my_connectors_list = 1;",
        "use crate::protocol_primitives::rsa::RsaSigner;",
    ] {
        assert!(offending_lines(src, "connectors", &[]).is_empty(), "{src}");
    }
    let allowed = ["connectors::ConnectorEnv"];
    assert!(offending_lines(
        "use crate::connectors::ConnectorEnv;",
        "connectors",
        &allowed
    )
    .is_empty());
    assert_eq!(
        offending_lines(
            "use crate::connectors::ConnectorEnvX;",
            "connectors",
            &allowed
        )
        .len(),
        1
    );
}
