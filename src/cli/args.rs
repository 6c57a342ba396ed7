//! The command-line interface as clap sees it: flags only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use b24bind::fleet::Shard;

const AFTER_HELP: &str = "\
Exit codes:
  0    success; the portal is in sync (plan), or apply converged
  1    error: invalid manifest, refused preflight, portal or auth failure
  2    changes pending (only with plan --detailed-exitcode or diff --detailed-exitcode)
  3    apply finished, but some changes failed or could not be verified; with --fleet:
       some portal failed (this wins over 2)
  64   usage error (unknown flag, bad value)
  130  interrupted (Ctrl-C); the ledger says what was done

Environment (secrets are read only from the environment or files, never from flags):
  B24_PORTAL          portal address, as --portal
  B24_ACCESS_TOKEN    an application's OAuth access token
  B24_AUTH_FILE       auth file, as --auth-file
  B24_CLIENT_ID       application client id, to refresh an expired token
  B24_CLIENT_SECRET   application client secret, to refresh an expired token
  B24_OAUTH_URL       token endpoint (default https://oauth.bitrix.info/oauth/token/)
  B24BIND_MANIFEST    manifest path, as --manifest
  NO_COLOR            disables colour";

/// Keeps a Bitrix24 application's event handlers exactly as its manifest says.
#[derive(Debug, Parser)]
#[command(name = "b24bind", version, about, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The manifest to read
    #[arg(
        short,
        long,
        global = true,
        env = "B24BIND_MANIFEST",
        default_value = "handlers.toml",
        value_name = "FILE"
    )]
    pub manifest: PathBuf,

    /// Set a manifest variable, overriding the environment and [vars] (repeatable)
    #[arg(long = "var", global = true, value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,

    /// Output format (export also takes toml; plan and diff also take markdown)
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Log each request (secrets shown as ***) and retries on stderr
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// When to use colour on stderr and stdout
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(flatten)]
    pub portal: PortalArgs,
}

#[derive(Debug, Args)]
pub struct PortalArgs {
    /// Portal address, e.g. https://your.bitrix24.com (http:// only for loopback)
    #[arg(
        long,
        global = true,
        env = "B24_PORTAL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub portal: Option<String>,

    /// JSON file with the app's auth block (access_token, refresh_token, client_endpoint); rotated tokens are written back
    #[arg(
        long,
        global = true,
        env = "B24_AUTH_FILE",
        value_name = "FILE",
        hide_env_values = true
    )]
    pub auth_file: Option<PathBuf>,

    /// Run against the built-in emulator, keeping its bindings in STATE_FILE
    #[arg(long, global = true, value_name = "STATE_FILE", num_args = 0..=1, require_equals = true,
          default_missing_value = ".b24bind/emulator.json", conflicts_with = "portal")]
    pub emulator: Option<PathBuf>,

    /// Requests per second once the burst is spent (cloud 2, Enterprise 5)
    #[arg(long, global = true, default_value_t = 2.0, value_name = "N")]
    pub rate: f64,

    /// Requests allowed back to back (cloud 50, Enterprise 250)
    #[arg(long, global = true, default_value_t = 50, value_name = "N")]
    pub burst: u32,

    /// Longest wait for the portal's limits to clear before giving up, in seconds
    #[arg(long, global = true, default_value_t = 120, value_name = "SECONDS")]
    pub max_wait: u64,

    /// Time limit of one request, in seconds
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the manifest offline and print the bindings it resolves to
    Validate(ValidateArgs),
    /// Show what apply would change on the portal (a dry run)
    Plan(PlanArgs),
    /// Change the portal's bindings to match the manifest
    Apply(ApplyArgs),
    /// Write the portal's current bindings as a manifest
    Export(ExportArgs),
    /// List the events the portal lets this app bind
    Events(EventsArgs),
    /// Serve the built-in portal emulator until interrupted
    Emulator(EmulatorArgs),
    /// Compare two manifest versions offline: what applying NEW does to a portal matching OLD
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old manifest: a file, or git:REV:PATH (read with `git show REV:PATH`)
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The new manifest: a file, or git:REV:PATH
    #[arg(value_name = "NEW")]
    pub new: String,
    /// Exit 2 when the manifests differ (0: same bindings, 1: error)
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also show a unified diff of the two canonical binding listings
    #[arg(long)]
    pub unified: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Accept a manifest with no bindings (it means "remove all")
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ReconcileArgs {
    /// Leave portal bindings that the manifest does not list
    #[arg(long)]
    pub no_prune: bool,
    /// Unbind and bind again bindings whose options or auth_connector cannot be read back
    #[arg(long)]
    pub recreate: bool,
    /// Accept a manifest with no bindings (it means "remove all")
    #[arg(long)]
    pub allow_empty: bool,
}

/// Running over many portals (`--fleet`).
#[derive(Debug, Args, Clone)]
pub struct FleetArgs {
    /// Run over many portals: a fleet file ([[portal]] name, url, auth_file, vars) or a
    /// directory of auth files; --portal and --auth-file are then not used
    #[arg(long, value_name = "FLEET")]
    pub fleet: Option<PathBuf>,
    /// With --fleet: portals handled at once
    #[arg(long, default_value_t = 8, value_name = "N", requires = "fleet",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: u16,
    /// With --fleet: handle only the K-th of N stable slices of the fleet (by portal name)
    #[arg(long, value_name = "K/N", requires = "fleet", value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Also show a unified diff of the portal's listing before and after
    #[arg(long)]
    pub diff: bool,
    /// Exit 2 when there are changes (0: in sync, 1: error)
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the plan as JSON, for `apply --plan`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Apply only if the portal and the manifest still give this saved plan
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Compute and print the plan, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Every event of every scope, not only those this app's token may bind
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (loopback)
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Keep bindings in this JSON file across runs
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The token's user is a portal administrator (default)
    #[arg(long, overrides_with = "no_admin")]
    pub admin: bool,
    /// The token's user is not an administrator
    #[arg(long)]
    pub no_admin: bool,
    /// Added latency per request, in milliseconds (the global --rate and --burst, when given,
    /// set the emulator's leaky bucket; without them it has no request limit)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_ms: u64,
    /// Share of requests answered with HTTP 500 (0 to 1)
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fail_rate: f64,
    /// Seed of the fault generator
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Toml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}
