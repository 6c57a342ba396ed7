//! `plan --fleet` and `apply --fleet`: load the fleet, run it, and report one line per portal.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use b24bind::fleet::{
    self, Counts, Fleet, FleetPortal, Manifests, Mode, PortalResult, RunOptions, Status, Summary,
};
use b24bind::manifest::LoadOptions;
use b24bind::portal::http::{HttpClient, HttpEvent, HttpPortal};
use b24bind::reconcile;
use b24bind::redact::mask_text;
use b24bind::render::MARKDOWN_LIMIT;

use crate::cli::args::{ApplyArgs, FleetArgs, Format, PlanArgs, ReconcileArgs};
use crate::cli::connect::{http_portal, options};
use crate::cli::simple::load_manifest;
use crate::cli::{Ctx, Exit};

pub fn plan(ctx: &Ctx, args: &PlanArgs) -> anyhow::Result<Exit> {
    if args.out.is_some() || args.diff {
        return usage(
            ctx,
            "--out and --diff are for one portal; with --fleet use --format json or markdown",
        );
    }
    run(
        ctx,
        &args.fleet,
        &args.reconcile,
        Mode::Plan,
        args.detailed_exitcode,
    )
}

pub fn apply(ctx: &Ctx, args: &ApplyArgs) -> anyhow::Result<Exit> {
    if args.plan.is_some() {
        return usage(
            ctx,
            "--plan checks a plan saved for one portal and cannot be used with --fleet",
        );
    }
    let mode = if args.dry_run {
        Mode::Plan
    } else {
        Mode::Apply
    };
    run(ctx, &args.fleet, &args.reconcile, mode, false)
}

fn usage(ctx: &Ctx, message: &str) -> anyhow::Result<Exit> {
    ctx.term.error(message);
    Ok(Exit::Usage)
}

fn run(
    ctx: &Ctx,
    args: &FleetArgs,
    reconcile_args: &ReconcileArgs,
    mode: Mode,
    detailed: bool,
) -> anyhow::Result<Exit> {
    let format = ctx.cli.global.format;
    if format == Format::Toml {
        return usage(ctx, "--fleet writes text, json or markdown");
    }
    let single = &ctx.cli.global.portal;
    if single.emulator.is_some() {
        return usage(
            ctx,
            "--emulator and --fleet cannot be combined; each fleet entry names its own portal",
        );
    }
    if single.portal.is_some() || single.auth_file.is_some() {
        ctx.term.warn(
            "--portal / --auth-file (or B24_PORTAL / B24_AUTH_FILE) are not used with --fleet: each fleet entry names its own portal and auth file",
        );
    }
    let Some(path) = &args.fleet else {
        return usage(ctx, "--fleet FLEET is missing");
    };
    let mut fleet = match Fleet::load(path) {
        Ok(f) => f,
        Err(e) => {
            ctx.term.error(&e.to_string());
            return Ok(Exit::Error);
        }
    };
    if let Some(shard) = args.shard {
        let total = fleet.portals.len();
        fleet = fleet.shard(shard);
        ctx.term.info(&format!(
            "shard {shard}: {} of {total} portals",
            fleet.portals.len()
        ));
    }

    let Some(manifests) = resolve_manifests(ctx, reconcile_args, &fleet.portals)? else {
        return Ok(Exit::Error);
    };

    let http = options(ctx)?;
    // One connection pool for the whole fleet: a TLS client costs milliseconds to build.
    let client = HttpClient::new(&http).map_err(|e| anyhow::anyhow!(e))?;
    let connect = |p: &FleetPortal| -> Result<(HttpPortal, String), String> {
        let (portal, shown) = http_portal(
            p.url.as_deref(),
            Some(&p.auth_file),
            &ctx.env,
            &client,
            http.clone(),
        )
        .map_err(|e| format!("{e:#}"))?;
        Ok((observed(ctx, &p.name, portal), shown))
    };

    let total = fleet.portals.len();
    let progress = std::io::stderr().is_terminal() && !ctx.term.quiet && !ctx.term.verbose;
    let finished = Mutex::new(0usize);
    let observe = |_: usize, r: &PortalResult| {
        if progress {
            let mut done = finished.lock().unwrap_or_else(|e| e.into_inner());
            *done += 1;
            let mut err = std::io::stderr().lock();
            let name: String = clean(&r.name).chars().take(40).collect();
            let _ = write!(
                err,
                "\r\x1b[K[{}/{total}] {name}: {}",
                *done,
                r.status.as_str()
            );
            let _ = err.flush();
        }
    };
    let results = fleet::run(
        &fleet.portals,
        &manifests,
        &RunOptions {
            mode,
            jobs: usize::from(args.jobs),
            reconcile: reconcile::Options {
                prune: !reconcile_args.no_prune,
                recreate: reconcile_args.recreate,
            },
            cancel: Some(ctx.cancel.clone()),
        },
        connect,
        observe,
    );
    if progress && total > 0 {
        ctx.term.stderr("\r\x1b[K");
    }
    for r in &results {
        for w in &r.warnings {
            ctx.term
                .warn(&format!("{}: {}", clean(&r.name), clean(&mask_text(w))));
        }
    }

    let summary = Summary::of(&results);
    let cancelled = ctx.cancel.load(Ordering::SeqCst);
    let code = if cancelled {
        Exit::Interrupted
    } else if summary.failed + summary.interrupted + summary.not_started > 0 {
        Exit::Partial
    } else if summary.changes > 0 && detailed {
        Exit::Changes
    } else {
        Exit::Ok
    };
    let text = match format {
        Format::Json => json_lines(&results, &summary, mode, code),
        Format::Markdown => markdown(&results, &summary, mode),
        _ => text(&results, &summary, ctx.term.color_out),
    };
    ctx.term.result(&text)?;
    Ok(code)
}

/// Parses the manifest once per distinct set of variables, printing diagnostics once each.
/// `None`: no portal has a valid manifest (reported).
fn resolve_manifests(
    ctx: &Ctx,
    args: &ReconcileArgs,
    portals: &[FleetPortal],
) -> anyhow::Result<Option<Manifests>> {
    let path = &ctx.cli.global.manifest;
    let Ok(source) = std::fs::read_to_string(path) else {
        // The single-portal loader explains an unreadable file best.
        load_manifest(ctx, args.allow_empty)?;
        return Ok(None);
    };
    let base = LoadOptions {
        vars: ctx.cli.global.vars.iter().cloned().collect(),
        env: ctx.env.clone(),
        allow_empty: args.allow_empty,
    };
    let manifests = Manifests::resolve(&path.display().to_string(), &source, &base, portals);
    let mut users: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (i, p) in portals.iter().enumerate() {
        if let Some(v) = manifests.variant_of(i) {
            users.entry(v).or_default().push(&p.name);
        }
    }
    let mut shown = std::collections::BTreeSet::new();
    let many = manifests.variants().len() > 1;
    for (v, result) in manifests.variants().iter().enumerate() {
        let rendered = match result {
            Ok(m) if m.warnings.is_empty() => continue,
            Ok(m) => m.render_warnings(ctx.term.color_err),
            Err(d) => d.render(ctx.term.color_err),
        };
        if !shown.insert(rendered.clone()) {
            continue;
        }
        if many && result.is_err() {
            let names = users.get(&v).map(|n| n.join(", ")).unwrap_or_default();
            ctx.term
                .info(&format!("with the vars of portal(s) {}:", clean(&names)));
        }
        ctx.term.stderr(&rendered);
    }
    if !portals.is_empty() && manifests.variants().iter().all(Result::is_err) {
        return Ok(None);
    }
    Ok(Some(manifests))
}

/// Request logging for `-v`, each line naming its portal.
fn observed(ctx: &Ctx, name: &str, portal: HttpPortal) -> HttpPortal {
    let term = ctx.term;
    let name = clean(name);
    portal
        .with_cancel(ctx.cancel.clone())
        .with_observer(move |event| match event {
            HttpEvent::Request {
                method, attempt, ..
            } => term.debug(&format!("{name}: -> {method} (attempt {attempt})")),
            HttpEvent::Response {
                method,
                status,
                elapsed,
            } => term.debug(&format!(
                "{name}: <- {method} HTTP {status} in {} ms",
                elapsed.as_millis()
            )),
            HttpEvent::Wait { reason, wait } => term.debug(&format!(
                "{name}: waiting {} ms: {reason}",
                wait.as_millis()
            )),
            HttpEvent::Refreshed { saved_to } => term.debug(&format!(
                "{name}: the access token expired; refreshed it{}",
                saved_to
                    .as_ref()
                    .map(|p| format!(" and saved the new pair to {p}"))
                    .unwrap_or_default()
            )),
        })
}

/// Escapes control characters: names come from files and messages from portals.
fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape =
                c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            let out: Vec<char> = if escape {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            out
        })
        .collect()
}

/// An error as one masked, printable line.
fn one_line(s: &str) -> String {
    let joined: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    clean(&mask_text(&joined.join("; ")))
}

fn changes_text(c: &Counts) -> String {
    let n = c.changes();
    let mut parts = Vec::new();
    for (count, what) in [
        (c.bind, "bind"),
        (c.recreate, "recreate"),
        (c.unbind, "unbind"),
    ] {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    format!(
        "{n} change{} ({})",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

fn status_text(r: &PortalResult) -> String {
    let error = r.error.as_deref().map(one_line).unwrap_or_default();
    match r.status {
        Status::InSync => "in sync".into(),
        Status::Changes => changes_text(&r.counts),
        Status::Applied => format!("applied {}", changes_text(&r.counts)),
        Status::Failed => format!("failed: {error}"),
        Status::Interrupted => format!("interrupted: {error}"),
        Status::NotStarted => "not started (interrupted)".into(),
    }
}

fn summary_text(s: &Summary) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (s.in_sync, "in sync"),
        (s.changes, "with changes"),
        (s.applied, "applied"),
        (s.failed, "failed"),
        (s.interrupted, "interrupted"),
        (s.not_started, "not started"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        parts.push("nothing to do".into());
    }
    format!(
        "{} portal{}: {}",
        s.portals,
        if s.portals == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

fn text(results: &[PortalResult], summary: &Summary, color: bool) -> String {
    let width = results
        .iter()
        .map(|r| clean(&r.name).chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    let mut out = String::new();
    for r in results {
        let status = status_text(r);
        let status = if color {
            let code = match r.status {
                Status::InSync | Status::Applied => "32",
                Status::Changes => "33",
                _ => "31",
            };
            format!("\x1b[{code}m{status}\x1b[0m")
        } else {
            status
        };
        out.push_str(&format!("{:<width$}  {status}\n", clean(&r.name)));
    }
    out.push_str(&summary_text(summary));
    out.push('\n');
    out
}

fn json_lines(results: &[PortalResult], summary: &Summary, mode: Mode, code: Exit) -> String {
    let mut out = String::new();
    for r in results {
        let mut counts = json!({
            "bind": r.counts.bind,
            "recreate": r.counts.recreate,
            "unbind": r.counts.unbind,
            "unchanged": r.counts.unchanged,
            "kept": r.counts.kept,
        });
        if mode == Mode::Apply
            && let Some(map) = counts.as_object_mut()
        {
            map.insert("done".into(), json!(r.counts.done));
            map.insert("not_done".into(), json!(r.counts.not_done));
        }
        let line = json!({
            "type": "portal",
            "name": r.name,
            "url": r.url.as_deref().map(mask_text),
            "status": r.status,
            "counts": counts,
            "error": r.error.as_deref().map(mask_text),
            "warnings": r.warnings.iter().map(|w| mask_text(w)).collect::<Vec<_>>(),
            "elapsed_ms": r.elapsed.as_millis() as u64,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    let mut last = serde_json::to_value(summary).unwrap_or(Value::Null);
    if let Some(map) = last.as_object_mut() {
        map.insert("type".into(), json!("summary"));
        map.insert(
            "mode".into(),
            json!(match mode {
                Mode::Plan => "plan",
                Mode::Apply => "apply",
            }),
        );
        map.insert("exit_code".into(), json!(code as u8));
    }
    out.push_str(&last.to_string());
    out.push('\n');
    out
}

fn md_cell(s: &str, max: usize) -> String {
    let mut cut: String = one_line(s).chars().take(max).collect();
    if one_line(s).chars().count() > max {
        cut.push('…');
    }
    cut.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "\\`")
}

fn markdown(results: &[PortalResult], summary: &Summary, mode: Mode) -> String {
    let title = match mode {
        Mode::Plan => "plan",
        Mode::Apply => "apply",
    };
    let mut head = format!(
        "### b24bind fleet {title}\n\n**{}**\n\n",
        md_cell(&summary_text(summary), 500)
    );
    head.push_str("| Portal | Status | Bind | Recreate | Unbind | Detail |\n");
    head.push_str("|---|---|--:|--:|--:|---|\n");
    let row = |r: &PortalResult| {
        let icon = match r.status {
            Status::InSync | Status::Applied => "✅",
            Status::Changes => "📝",
            _ => "❌",
        };
        let detail = r.error.as_deref().unwrap_or_default();
        format!(
            "| {} | {icon} {} | {} | {} | {} | {} |\n",
            md_cell(&r.name, 100),
            r.status.as_str().replace('_', " "),
            r.counts.bind,
            r.counts.recreate,
            r.counts.unbind,
            md_cell(detail, 300)
        )
    };
    let budget = MARKDOWN_LIMIT - 400;
    let all: String = results.iter().map(row).collect();
    if head.len() + all.len() <= budget {
        return head + &all;
    }
    // Too long for a comment: in-sync portals are left out first, then the tail.
    let mut out = head;
    let mut left_out = 0;
    let mut in_sync = 0;
    for r in results {
        if r.status == Status::InSync {
            in_sync += 1;
            continue;
        }
        let line = row(r);
        if out.len() + line.len() > budget {
            left_out += 1;
            continue;
        }
        out.push_str(&line);
    }
    out.push_str(&format!("\n{in_sync} portals in sync are not listed."));
    if left_out > 0 {
        out.push_str(&format!(
            " {left_out} more portals are not shown; see `--format json` for every portal."
        ));
    }
    out.push('\n');
    out
}
