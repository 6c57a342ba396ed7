//! `diff`: the offline review of a manifest change, for pull requests without portal access.

use std::process::Command;

use anyhow::bail;

use b24bind::manifest::{LoadOptions, Manifest};
use b24bind::model::BindingKey;
use b24bind::plan::compare;
use b24bind::render::{self, MarkdownLabels, View};

use crate::cli::args::{DiffArgs, Format};
use crate::cli::{Ctx, Exit};

/// Reads one side: a file path, or `git:REV:PATH` from the current repository.
fn read_side(spec: &str) -> Result<String, String> {
    if let Some(rest) = spec.strip_prefix("git:") {
        let Some((rev, path)) = rest
            .split_once(':')
            .filter(|(r, p)| !r.is_empty() && !p.is_empty())
        else {
            return Err(format!(
                "{spec:?} should be git:REV:PATH, e.g. git:origin/main:handlers.toml"
            ));
        };
        let out = Command::new("git")
            .arg("show")
            .arg(format!("{rev}:{path}"))
            .output()
            .map_err(|e| format!("cannot run git to read {spec}: {e}"))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(format!("git show {rev}:{path} failed: {why}"));
        }
        return String::from_utf8(out.stdout).map_err(|_| format!("{spec} is not UTF-8 text"));
    }
    std::fs::read_to_string(spec).map_err(|e| format!("cannot read {spec}: {e}"))
}

pub fn diff(ctx: &Ctx, args: &DiffArgs) -> anyhow::Result<Exit> {
    let format = ctx.cli.global.format;
    if format == Format::Toml {
        bail!("diff writes text, json or markdown (got --format toml)");
    }
    if args.unified && format != Format::Text {
        bail!("--unified goes with --format text");
    }
    let options = LoadOptions {
        vars: ctx.cli.global.vars.iter().cloned().collect(),
        env: ctx.env.clone(),
        // Either side may legitimately have no bindings (the first manifest, or removing all).
        allow_empty: true,
    };
    let mut sides = Vec::new();
    let mut failed = false;
    for (label, spec) in [("OLD", &args.old), ("NEW", &args.new)] {
        let loaded = read_side(spec).map_err(|e| (e, None)).and_then(|source| {
            Manifest::parse(spec, &source, &options).map_err(|d| (String::new(), Some(d)))
        });
        match loaded {
            Ok(m) => {
                if !m.warnings.is_empty() {
                    ctx.term.stderr(&m.render_warnings(ctx.term.color_err));
                }
                sides.push(m);
            }
            Err((message, diagnostics)) => {
                failed = true;
                match diagnostics {
                    Some(d) => {
                        ctx.term
                            .error(&format!("the {label} manifest ({spec}) is invalid:"));
                        ctx.term.stderr(&d.render(ctx.term.color_err));
                    }
                    None => ctx.term.error(&format!("the {label} manifest: {message}")),
                }
            }
        }
    }
    if failed {
        return Ok(Exit::Error);
    }
    let (old, new) = (&sides[0], &sides[1]);
    let plan = compare(&old.bindings, &new.bindings, &new.ignore);
    let subject = format!("{} → {}", args.old, args.new);
    let text = match format {
        Format::Json => render::plan_json(&plan, &View::new(&subject, false)),
        Format::Markdown => {
            render::plan_markdown_with(&plan, &View::new(&subject, false), &MarkdownLabels::diff())
        }
        _ => {
            let mut text = render::plan_text(&plan, &View::new(&subject, ctx.term.color_out));
            if args.unified {
                let keys = |m: &Manifest| {
                    m.bindings
                        .iter()
                        .map(|b| b.key.clone())
                        .collect::<Vec<BindingKey>>()
                };
                text.push_str(&render::listing_diff(
                    &keys(old),
                    &keys(new),
                    &args.old,
                    &args.new,
                ));
            }
            text
        }
    };
    ctx.term.result(&text)?;
    let changed = !plan.is_empty() || !plan.notes.is_empty();
    Ok(if changed && args.detailed_exitcode {
        Exit::Changes
    } else {
        Exit::Ok
    })
}
