//! The one-step commands: `validate`, `export`, `events` and `emulator`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};

use b24bind::emulator::{Emulator, EmulatorConfig, Faults, RateLimit};
use b24bind::manifest::{LoadOptions, Manifest, write_manifest};
use b24bind::model::Binding;
use b24bind::portal::Portal;
use b24bind::render::{self, View};

use crate::cli::args::{EmulatorArgs, EventsArgs, ExportArgs, Format, ValidateArgs};
use crate::cli::connect::connect;
use crate::cli::{Ctx, Exit};

/// Loads and validates the manifest, printing its diagnostics. `None`: invalid (reported).
pub fn load_manifest(ctx: &Ctx, allow_empty: bool) -> anyhow::Result<Option<Manifest>> {
    let options = LoadOptions {
        vars: ctx
            .cli
            .global
            .vars
            .iter()
            .cloned()
            .collect::<BTreeMap<_, _>>(),
        env: ctx.env.clone(),
        allow_empty,
    };
    match Manifest::load(&ctx.cli.global.manifest, &options) {
        Ok(manifest) => {
            if !manifest.warnings.is_empty() {
                ctx.term
                    .stderr(&manifest.render_warnings(ctx.term.color_err));
            }
            Ok(Some(manifest))
        }
        Err(diagnostics) => {
            ctx.term.stderr(&diagnostics.render(ctx.term.color_err));
            Ok(None)
        }
    }
}

pub fn validate(ctx: &Ctx, args: &ValidateArgs) -> anyhow::Result<Exit> {
    let Some(manifest) = load_manifest(ctx, args.allow_empty)? else {
        return Ok(Exit::Error);
    };
    let name = ctx.cli.global.manifest.display().to_string();
    let text = match ctx.cli.global.format {
        Format::Text => {
            render::bindings_table(&manifest.bindings, &View::new(&name, ctx.term.color_out))
        }
        Format::Json => render::bindings_json(&manifest.bindings).to_string(),
        other => bail!("validate writes text or json (got --format {other:?})"),
    };
    ctx.term.result(&text)?;
    ctx.term.info(&format!(
        "{name}: valid, {} bindings",
        manifest.bindings.len()
    ));
    Ok(Exit::Ok)
}

pub fn export(ctx: &Ctx, args: &ExportArgs) -> anyhow::Result<Exit> {
    let format = ctx.cli.global.format;
    if !matches!(format, Format::Toml | Format::Json | Format::Text) {
        bail!("export writes toml or json (got --format {format:?})");
    }
    let mut connection = connect(ctx)?;
    let rows = connection
        .portal
        .bindings()
        .with_context(|| format!("reading the bindings of {}", connection.name))?;
    let bindings: Vec<Binding> = rows.into_iter().map(Binding::new).collect();
    let text = match format {
        Format::Json => render::bindings_json(&bindings).to_string(),
        _ => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let header = format!(
                "Bindings exported by b24bind {} from {} on {}.\nThe portal does not show options or an online auth_connector, so they are not here.",
                env!("CARGO_PKG_VERSION"),
                connection.name,
                b24bind::timefmt::iso_utc(now)
            );
            write_manifest(&bindings, &header)
        }
    };
    connection.close()?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            ctx.term.info(&format!(
                "wrote {} bindings to {}",
                bindings.len(),
                path.display()
            ));
        }
        None => ctx.term.result(&text)?,
    }
    Ok(Exit::Ok)
}

pub fn events(ctx: &Ctx, args: &EventsArgs) -> anyhow::Result<Exit> {
    let format = ctx.cli.global.format;
    if !matches!(format, Format::Text | Format::Json) {
        bail!("events writes text or json (got --format {format:?})");
    }
    let mut connection = connect(ctx)?;
    let events = connection
        .portal
        .events(args.all)
        .with_context(|| format!("listing the events of {}", connection.name))?;
    connection.close()?;
    let text = match format {
        Format::Json => render::events_json(&events).to_string(),
        _ => render::events_text(&events),
    };
    ctx.term.result(&text)?;
    Ok(Exit::Ok)
}

pub fn emulator(ctx: &Ctx, args: &EmulatorArgs) -> anyhow::Result<Exit> {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        bail!(
            "--fail-rate is a share of requests, from 0 to 1 (got {})",
            args.fail_rate
        );
    }
    let global = &ctx.cli.global.portal;
    let config = EmulatorConfig {
        listen: args.listen,
        admin: !args.no_admin,
        latency: Duration::from_millis(args.latency_ms),
        // Without an explicit --rate/--burst the standalone emulator has no request limit, so
        // manual experiments are not slowed down; give them to reproduce the cloud's.
        limits: ctx.rate_given.then_some(RateLimit {
            burst: global.burst,
            drain_per_sec: global.rate,
        }),
        faults: Faults {
            seed: args.seed,
            fail_rate: args.fail_rate,
            ..Faults::default()
        },
        state_file: args.state.clone(),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).context("cannot start the emulator")?;
    // The emulator's own test credentials: printing them is the point of this command.
    let line = serde_json::json!({
        "portal": emulator.base_url(),
        "access_token": emulator.access_token(),
        "refresh_token": emulator.refresh_token(),
        "client_id": emulator.client_id(),
        "client_secret": emulator.client_secret(),
        "oauth_url": emulator.oauth_url(),
        "state": args.state,
    });
    ctx.term.result(&line.to_string())?;
    ctx.term.info("serving until interrupted (Ctrl-C)");
    while !ctx.cancel.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(err) = emulator.persist_error() {
        bail!("the emulator could not save its state: {err}");
    }
    Ok(Exit::Ok)
}
