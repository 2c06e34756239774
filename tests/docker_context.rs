//! The Docker image's build stage compiles the server from what its `COPY` lines bring in.
//! Every file the compiler reads through `include_str!` / `include_bytes!` must be among
//! them, or `docker build` fails where `cargo build` passes (it once did: the server
//! compiles in `docs/openapi.json`). This checks it without a Docker engine.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Sources of the `COPY` lines of the first (build) stage, as repository paths.
fn build_stage_copies() -> Vec<PathBuf> {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let mut stages = 0;
    let mut copies = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stages += 1;
            continue;
        }
        if stages != 1 || !line.starts_with("COPY ") || line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &parts[..parts.len() - 1] {
            copies.push(Path::new(ROOT).join(src));
        }
    }
    assert!(
        !copies.is_empty(),
        "no COPY in the Dockerfile's build stage"
    );
    copies
}

/// Whether `file` is compiled only for tests: a test module's own file by name, or one a
/// parent declares as `#[cfg(test)] mod name;`.
fn test_only(file: &Path) -> bool {
    let s = file.to_string_lossy();
    if s.ends_with("/tests.rs")
        || s.ends_with("/test_support.rs")
        || s.contains("/tests/")
        || s.contains("/contract_tests/")
    {
        return true;
    }
    let (Some(dir), Some(stem)) = (file.parent(), file.file_stem()) else {
        return false;
    };
    let stem = stem.to_string_lossy();
    let parents = [
        dir.join("mod.rs"),
        dir.with_extension("rs"),
        dir.join("lib.rs"),
    ];
    parents.iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|text| {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            lines.windows(2).any(|w| {
                w[0] == "#[cfg(test)]"
                    && (w[1] == format!("mod {stem};") || w[1] == format!("pub mod {stem};"))
            })
        })
    })
}

/// `(file, literal path)` of every include in non-test code under `dir`. A file's own
/// `#[cfg(test)]` module, by convention its last item, is test code.
fn includes(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            includes(&path, out);
            continue;
        }
        if path.extension() != Some("rs".as_ref()) || test_only(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = match text.find("#[cfg(test)]\nmod tests {") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        for mac in ["include_str!(", "include_bytes!("] {
            for (i, _) in code.match_indices(mac) {
                let rest = code[i + mac.len()..].trim_start();
                if let Some(lit) = rest.strip_prefix('"') {
                    let end = lit.find('"').unwrap();
                    out.push((path.clone(), lit[..end].to_string()));
                }
            }
        }
    }
}

#[test]
fn every_file_the_server_build_includes_is_in_the_docker_build_context() {
    let copies = build_stage_copies();
    let mut found = Vec::new();
    includes(&Path::new(ROOT).join("src"), &mut found);
    assert!(
        found.iter().any(|(_, p)| p.ends_with("openapi.json")),
        "the scan should see the OpenAPI include: {found:?}"
    );
    for (file, lit) in found {
        let target = file.parent().unwrap().join(&lit);
        let target = target
            .canonicalize()
            .unwrap_or_else(|e| panic!("{} includes {lit}: {e}", file.display()));
        assert!(
            copies
                .iter()
                .any(|c| target.starts_with(c.canonicalize().unwrap_or(c.clone()))),
            "{} includes {} but the Dockerfile's build stage does not COPY it",
            file.display(),
            target.display()
        );
    }
}

/// `.dockerignore` keeps build output and local data out of the context; it must never
/// hide what a `COPY` line needs (then `docker build` fails, or builds without it).
#[test]
fn the_dockerignore_hides_nothing_the_dockerfile_copies() {
    let ignore = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        ignored.contains(&"target"),
        "target/ should stay out: {ignored:?}"
    );
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    for line in dockerfile.lines().map(str::trim) {
        if !line.starts_with("COPY ") || line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &parts[..parts.len() - 1] {
            let src = src.trim_end_matches('/');
            for pattern in &ignored {
                let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
                assert!(
                    src != pattern && !src.starts_with(&format!("{pattern}/")),
                    "`COPY {src}` is hidden by `.dockerignore` entry `{pattern}`"
                );
            }
        }
    }
}
