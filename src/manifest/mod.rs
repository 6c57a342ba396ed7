//! The manifest (`handlers.toml`): reading, `${NAME}` interpolation, validation, diagnostics,
//! and writing bindings back out.
//!
//! # Interpolation
//! `${NAME}` in any string value (events, handlers, `handler_base`, `auth_connector`, option
//! values, `[ignore]` patterns) resolves from [`LoadOptions::vars`], then [`LoadOptions::env`],
//! then the manifest's `[vars]` table. `$$` is a literal `$`; any other `$` is kept as written.
//! An unset name is an error, never an empty string.
//!
//! `[vars]` values are literal: they may use `$$` but not `${..}`, so there is no resolution
//! order or cycle to think about. A `[vars]` value is only a default: `--var` and the
//! environment replace it.

mod diagnostic;
mod handler;
mod interpolate;
mod read;
mod write;

use std::collections::BTreeMap;
use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, Severity, render_items};
pub use handler::MAX_HANDLER_CHARS;
pub use write::write_manifest;

use crate::model::Binding;
use crate::plan::IgnoreRules;

/// How to read a manifest. The library never reads the process environment itself: the binary
/// passes it in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--var NAME=VALUE`: highest precedence.
    pub vars: BTreeMap<String, String>,
    /// The process environment.
    pub env: BTreeMap<String, String>,
    /// `--allow-empty`: a manifest without bindings means "remove all" instead of an error.
    pub allow_empty: bool,
}

/// A valid manifest, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// In manifest order: event upper-cased, `events = [..]` expanded, handler joined to
    /// `handler_base`, `auth_type` defaulted, `line` set to the line of its `[[binding]]`.
    pub bindings: Vec<Binding>,
    pub ignore: IgnoreRules,
    /// Findings that do not stop the manifest from being used, in source order.
    pub warnings: Vec<Diagnostic>,
    /// The file path as given, and its text, for rendering the warnings.
    pub name: String,
    pub source: String,
}

impl Manifest {
    /// Reads and validates the manifest at `path`. A file that cannot be read is reported as a
    /// diagnostic too, so the caller has one error path.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Manifest, Diagnostics> {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(source) => Self::parse_owned(name, source, opts),
                Err(e) => {
                    let offset = e.utf8_error().valid_up_to();
                    let source = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    let mut sink = diagnostic::Sink::new(&source);
                    let span = offset..offset.saturating_add(1).min(source.len());
                    sink.error(Some(span), "the manifest is not valid UTF-8")
                        .help("save the file as UTF-8");
                    let items = sink.into_sorted();
                    Err(Diagnostics {
                        name,
                        source,
                        items,
                    })
                }
            },
            Err(e) => {
                let help = match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        "check the path, or pass the manifest with -m FILE (see handlers.toml.example)"
                    }
                    _ => "check that the file exists and is readable",
                };
                Err(Diagnostics {
                    name: name.clone(),
                    source: String::new(),
                    items: vec![Diagnostic {
                        severity: Severity::Error,
                        message: format!("cannot read {name}: {e}"),
                        span: None,
                        line: 1,
                        column: 1,
                        labels: Vec::new(),
                        help: Some(help.to_owned()),
                    }],
                })
            }
        }
    }

    /// Validates manifest text; `name` is used in messages.
    pub fn parse(name: &str, source: &str, opts: &LoadOptions) -> Result<Manifest, Diagnostics> {
        Self::parse_owned(name.to_owned(), source.to_owned(), opts)
    }

    fn parse_owned(
        name: String,
        source: String,
        opts: &LoadOptions,
    ) -> Result<Manifest, Diagnostics> {
        let out = read::read(&source, opts);
        if out.has_errors {
            return Err(Diagnostics {
                name,
                source,
                items: out.diagnostics,
            });
        }
        Ok(Manifest {
            bindings: out.bindings,
            ignore: out.ignore,
            warnings: out.diagnostics,
            name,
            source,
        })
    }

    /// The warnings, rendered like errors are (empty when there are none).
    pub fn render_warnings(&self, color: bool) -> String {
        render_items(&self.name, &self.source, &self.warnings, color)
    }
}
