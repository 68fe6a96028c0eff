//! Source checks that need no compiler: every file says what it is for, and no crate declares a dependency it does not use.

use std::path::Path;

use crate::libtorch;

/// rust-analyzer's tidy idea: every Rust source file opens with a `//!` line
/// saying what it is for.
pub fn opening_lines() -> Result<(), String> {
    eprintln!("xtask: tidy (every source file opens with a //! line)");
    let root = libtorch::project_root();
    let mut missing = Vec::new();
    for top in ["crates", "xtask"] {
        walk(&root.join(top), &mut |path| {
            let is_rust = path.extension().is_some_and(|e| e == "rs");
            let in_target = path.components().any(|c| c.as_os_str() == "target");
            if is_rust && !in_target {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                if !text.starts_with("//!") {
                    missing.push(path.strip_prefix(&root).unwrap_or(path).display().to_string());
                }
            }
        })?;
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("tidy: these files do not open with a `//!` line: {}", missing.join(", ")))
    }
}

fn walk(dir: &std::path::Path, visit: &mut dyn FnMut(&std::path::Path)) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, visit)?;
        } else {
            visit(&path);
        }
    }
    Ok(())
}

/// cargo-machete's idea without its download: a dependency whose crate name
/// appears in none of the sources that can use it is reported. Normal
/// dependencies are looked for in `src/`, dev-dependencies in `src/`,
/// `tests/`, `benches/` and `examples/`, build-dependencies in `build.rs`.
pub fn unused_dependencies() -> Result<(), String> {
    eprintln!("xtask: tidy (every declared dependency is used)");
    let root = libtorch::project_root();
    let mut manifests = vec![root.join("xtask")];
    let crates = std::fs::read_dir(root.join("crates")).map_err(|e| format!("crates: {e}"))?;
    manifests.extend(crates.flatten().map(|entry| entry.path()).filter(|p| p.join("Cargo.toml").is_file()));
    let mut unused = Vec::new();
    for dir in manifests {
        let manifest =
            std::fs::read_to_string(dir.join("Cargo.toml")).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (section, names) in dependency_sections(&manifest) {
            let places: &[&str] = match section.as_str() {
                "dependencies" => &["src"],
                "dev-dependencies" => &["src", "tests", "benches", "examples"],
                "build-dependencies" => &["build.rs"],
                _ => continue,
            };
            let sources = rust_sources(&dir, places)?;
            for name in names {
                let ident = name.replace('-', "_");
                if !sources.iter().any(|text| mentions(text, &ident)) {
                    let package =
                        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    unused.push(format!("{package} [{section}] {name}"));
                }
            }
        }
    }
    if unused.is_empty() {
        Ok(())
    } else {
        Err(format!("tidy: declared but not used (remove them): {}", unused.join(", ")))
    }
}

/// `(section, dependency names)` of a manifest's dependency tables.
fn dependency_sections(manifest: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((header.to_owned(), Vec::new()));
        } else if let Some((_, names)) = sections.last_mut()
            && let Some((key, _)) = line.split_once('=')
            && !line.starts_with('#')
        {
            // `name = "1"`, `name.workspace = true`, `name = { … }`.
            let name = key.trim().split('.').next().unwrap_or_default().trim();
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    sections
}

fn rust_sources(dir: &Path, places: &[&str]) -> Result<Vec<String>, String> {
    let mut sources = Vec::new();
    for place in places {
        let path = dir.join(place);
        if path.is_file() {
            sources.push(std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        } else if path.is_dir() {
            walk(&path, &mut |file| {
                if file.extension().is_some_and(|e| e == "rs") {
                    sources.push(std::fs::read_to_string(file).unwrap_or_default());
                }
            })?;
        }
    }
    Ok(sources)
}

/// Whether `text` names the crate `ident` as a path's first segment (`ident::`, `use ident`).
fn mentions(text: &str, ident: &str) -> bool {
    text.match_indices(ident).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = &text[at + ident.len()..];
        let starts_path = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        starts_path && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}
