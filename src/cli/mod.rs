//! The binary's run loop: arguments in, one command run, an exit code out.

mod args;
mod connect;
mod diff;
mod fleet;
mod reconcile;
mod simple;
mod term;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};

use args::{Cli, Command};
use term::Term;

/// The documented exit codes. 2 means "changes pending", so clap's own usage code (2) is
/// remapped to 64 and can never be mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Changes = 2,
    Partial = 3,
    Usage = 64,
    Interrupted = 130,
}

/// Everything a command needs from the process: its arguments, the environment (read here,
/// once, so the library never reads it), the terminal and the Ctrl-C flag.
pub struct Ctx {
    pub cli: Cli,
    pub env: BTreeMap<String, String>,
    pub term: Term,
    pub cancel: Arc<AtomicBool>,
    /// Whether --rate / --burst were given explicitly (the emulator command uses them as its
    /// own limit only then).
    pub rate_given: bool,
}

pub fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage as u8
            } else {
                Exit::Ok as u8
            });
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(Exit::Usage as u8);
        }
    };
    let given = |id: &str| matches!(matches.value_source(id), Some(ValueSource::CommandLine));
    let rate_given = given("rate") || given("burst");
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let no_color = env.get("NO_COLOR").is_some_and(|v| !v.is_empty());
    let term = Term::new(
        cli.global.color,
        no_color,
        cli.global.quiet,
        cli.global.verbose,
    );
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // First Ctrl-C: finish the request in flight, print the ledger, exit 130. Second: now.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(Exit::Interrupted as i32);
            }
        });
    }
    let ctx = Ctx {
        cli,
        env,
        term,
        cancel,
        rate_given,
    };
    let code = match run(&ctx) {
        Ok(code) => code,
        Err(err) => {
            ctx.term.error(&format!("{err:#}"));
            if ctx.cancel.load(Ordering::SeqCst) {
                Exit::Interrupted
            } else {
                Exit::Error
            }
        }
    };
    ExitCode::from(code as u8)
}

fn run(ctx: &Ctx) -> anyhow::Result<Exit> {
    match &ctx.cli.command {
        Command::Validate(a) => simple::validate(ctx, a),
        Command::Plan(a) => reconcile::plan(ctx, a),
        Command::Apply(a) => reconcile::apply(ctx, a),
        Command::Export(a) => simple::export(ctx, a),
        Command::Events(a) => simple::events(ctx, a),
        Command::Emulator(a) => simple::emulator(ctx, a),
        Command::Diff(a) => diff::diff(ctx, a),
    }
}
