//! `plan` and `apply`: read the manifest and the portal, decide, and (for apply) change.

use std::fs;

use anyhow::{Context, anyhow, bail};

use b24bind::apply::{ApplyOptions, Report, apply as run_plan};
use b24bind::plan::Plan;
use b24bind::portal::Snapshot;
use b24bind::reconcile;
use b24bind::render::{self, PlanDocument, View};

use crate::cli::args::{ApplyArgs, Format, PlanArgs, ReconcileArgs};
use crate::cli::connect::{Connection, connect};
use crate::cli::simple::load_manifest;
use crate::cli::{Ctx, Exit};

/// The connection, the portal's state and the plan.
struct Prepared {
    connection: Connection,
    snapshot: Snapshot,
    plan: Plan,
}

/// Loads the manifest, reads the portal in one round trip, runs the preflight checks and
/// computes the plan. `Err(Exit)` means the problem was already reported.
fn prepare(ctx: &Ctx, args: &ReconcileArgs) -> anyhow::Result<Result<Prepared, Exit>> {
    let Some(manifest) = load_manifest(ctx, args.allow_empty)? else {
        return Ok(Err(Exit::Error));
    };
    let mut connection = connect(ctx)?;
    let options = reconcile::Options {
        prune: !args.no_prune,
        recreate: args.recreate,
    };
    let prepared = reconcile::prepare(
        &manifest.bindings,
        &manifest.ignore,
        &mut connection.portal,
        &options,
    )
    .with_context(|| {
        format!(
            "reading the bindings of {} (nothing was changed)",
            connection.name
        )
    })?;
    for warning in &prepared.preflight.warnings {
        ctx.term.warn(warning);
    }
    if !prepared.preflight.refusals.is_empty() {
        for refusal in &prepared.preflight.refusals {
            ctx.term.error(&refusal.to_string());
        }
        ctx.term.info("nothing was changed on the portal");
        connection.close()?;
        return Ok(Err(Exit::Error));
    }
    let reconcile::Prepared { snapshot, plan, .. } = prepared;
    Ok(Ok(Prepared {
        connection,
        snapshot,
        plan,
    }))
}

fn render_plan(ctx: &Ctx, p: &Prepared, format: Format, with_diff: bool) -> anyhow::Result<String> {
    let color = ctx.term.color_out;
    let v = View::new(&p.connection.name, color);
    let mut out = match format {
        Format::Text => render::plan_text(&p.plan, &v),
        Format::Json => render::plan_json(&p.plan, &View::new(&p.connection.name, false)),
        Format::Markdown => render::plan_markdown(&p.plan, &View::new(&p.connection.name, false)),
        Format::Toml => bail!("plan does not write toml; use --format text, json or markdown"),
    };
    if with_diff && format == Format::Text {
        out.push('\n');
        out.push_str(&render::unified_diff(&p.snapshot.bindings, &p.plan, &v));
    }
    Ok(out)
}

pub fn plan(ctx: &Ctx, args: &PlanArgs) -> anyhow::Result<Exit> {
    if args.fleet.fleet.is_some() {
        return crate::cli::fleet::plan(ctx, args);
    }
    if ctx.cli.global.format == Format::Toml {
        bail!("plan does not write toml; use --format text, json or markdown");
    }
    if args.diff && ctx.cli.global.format != Format::Text {
        bail!(
            "--diff goes with --format text; the JSON and markdown plans list every change already"
        );
    }
    let p = match prepare(ctx, &args.reconcile)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let text = render_plan(ctx, &p, ctx.cli.global.format, args.diff)?;
    if let Some(path) = &args.out {
        let doc = PlanDocument::from_plan(&p.plan, &View::new(&p.connection.name, false));
        fs::write(path, doc.to_json())
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
        ctx.term.info(&format!(
            "plan saved to {}; apply it with `b24bind apply --plan {}`",
            path.display(),
            path.display()
        ));
    }
    ctx.term.result(&text)?;
    let changes = !p.plan.is_empty();
    p.connection.close()?;
    Ok(if changes && args.detailed_exitcode {
        Exit::Changes
    } else {
        Exit::Ok
    })
}

pub fn apply(ctx: &Ctx, args: &ApplyArgs) -> anyhow::Result<Exit> {
    if args.fleet.fleet.is_some() {
        return crate::cli::fleet::apply(ctx, args);
    }
    let format = ctx.cli.global.format;
    if matches!(format, Format::Toml | Format::Markdown) {
        bail!(
            "apply writes text or json (got --format {format:?}); use plan --format markdown for a pull-request comment"
        );
    }
    let p = match prepare(ctx, &args.reconcile)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if let Some(path) = &args.plan {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read the saved plan {}", path.display()))?;
        let saved =
            PlanDocument::from_json(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let fresh = PlanDocument::from_plan(&p.plan, &View::new(&p.connection.name, false));
        if let Err(mismatch) = saved.check_same_plan(&fresh) {
            ctx.term.error(&format!(
                "refusing the saved plan {}: {mismatch}. Nothing was changed; run `b24bind plan --out {}` again and review it",
                path.display(),
                path.display()
            ));
            p.connection.close()?;
            return Ok(Exit::Error);
        }
    }
    if args.dry_run {
        let text = render_plan(ctx, &p, format, false)?;
        ctx.term.result(&text)?;
        p.connection.close()?;
        return Ok(Exit::Ok);
    }
    if p.plan.is_empty() {
        let text = render_plan(ctx, &p, format, false)?;
        ctx.term.result(&text)?;
        p.connection.close()?;
        return Ok(Exit::Ok);
    }
    if format == Format::Text {
        ctx.term.info(&render::plan_text(
            &p.plan,
            &View::new(&p.connection.name, ctx.term.color_err),
        ));
    }
    let Prepared {
        mut connection,
        plan,
        ..
    } = p;
    let report = run_plan(
        &plan,
        &mut connection.portal,
        &ApplyOptions {
            cancel: Some(ctx.cancel.clone()),
            skip_verify: false,
        },
    );
    let stats = connection.portal.stats().clone();
    ctx.term.debug(&format!(
        "{} requests ({} retries), {:.1} s waiting on the pacer, {:.1} s on portal limits",
        stats.requests,
        stats.retries,
        stats.paced.as_secs_f64(),
        stats.limited.as_secs_f64()
    ));
    print_report(ctx, &report, &connection.name)?;
    connection.close()?;
    Ok(if report.interrupted {
        Exit::Interrupted
    } else if report.succeeded() {
        Exit::Ok
    } else {
        Exit::Partial
    })
}

fn print_report(ctx: &Ctx, report: &Report, name: &str) -> anyhow::Result<()> {
    let text = match ctx.cli.global.format {
        Format::Json => render::ledger_json(report, &View::new(name, false)),
        _ => render::ledger_text(report, &View::new(name, ctx.term.color_out)),
    };
    ctx.term.result(&text)?;
    Ok(())
}
