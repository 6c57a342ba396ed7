//! Turning flags, environment and files into a portal client (or the embedded emulator).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use b24bind::emulator::{Emulator, EmulatorConfig};
use b24bind::portal::auth::{AuthFile, Credentials, Refresher};
use b24bind::portal::endpoint::{Endpoint, check_secure_url};
use b24bind::portal::http::{HttpClient, HttpEvent, HttpOptions, HttpPortal};
use b24bind::redact::mask_text;
use b24bind::secret::Secret;

use crate::cli::Ctx;

const DEFAULT_OAUTH_URL: &str = "https://oauth.bitrix.info/oauth/token/";

/// A connected portal. With `--emulator` it also owns the emulator, which writes its bindings to
/// the state file after every change.
pub struct Connection {
    pub portal: HttpPortal,
    /// The portal's address for output (never carries credentials).
    pub name: String,
    emulator: Option<Emulator>,
}

impl Connection {
    /// Ends the session. The embedded emulator saves its state after every change; this
    /// reports a save that failed.
    pub fn close(self) -> anyhow::Result<()> {
        if let Some(emulator) = self.emulator
            && let Some(err) = emulator.persist_error()
        {
            bail!("the emulator could not save its state: {err}");
        }
        Ok(())
    }
}

pub fn options(ctx: &Ctx) -> anyhow::Result<HttpOptions> {
    let p = &ctx.cli.global.portal;
    if !(p.rate >= 0.0 && p.rate.is_finite()) {
        bail!(
            "--rate must be a number of requests per second, 0 or more (got {})",
            p.rate
        );
    }
    Ok(HttpOptions {
        rate: p.rate,
        burst: p.burst,
        max_wait: Duration::from_secs(p.max_wait),
        request_timeout: Duration::from_secs(p.timeout.max(1)),
        ..HttpOptions::default()
    })
}

fn observe(ctx: &Ctx, portal: HttpPortal) -> HttpPortal {
    let term = ctx.term;
    portal
        .with_cancel(ctx.cancel.clone())
        .with_observer(move |event| match event {
            HttpEvent::Request {
                method,
                attempt,
                params,
            } => {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                term.debug(&format!(
                    "-> {method}{again} {} auth=***",
                    mask_text(params)
                ));
            }
            HttpEvent::Response {
                method,
                status,
                elapsed,
            } => {
                term.debug(&format!(
                    "<- {method} HTTP {status} in {} ms",
                    elapsed.as_millis()
                ));
            }
            HttpEvent::Wait { reason, wait } => {
                if wait.as_secs_f64() >= 1.0 {
                    term.info(&format!("waiting {:.1} s: {reason}", wait.as_secs_f64()));
                } else {
                    term.debug(&format!("waiting {} ms: {reason}", wait.as_millis()));
                }
            }
            HttpEvent::Refreshed { saved_to } => match saved_to {
                Some(path) => term.info(&format!(
                    "the access token expired; refreshed it and saved the new pair to {path}"
                )),
                None => term.info("the access token expired; refreshed it"),
            },
        })
}

/// Connects to the portal the flags name, or starts the embedded emulator.
pub fn connect(ctx: &Ctx) -> anyhow::Result<Connection> {
    let options = options(ctx)?;
    let p = &ctx.cli.global.portal;
    if let Some(state) = &p.emulator {
        let config = EmulatorConfig {
            state_file: Some(state.clone()),
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start(config).with_context(|| {
            format!(
                "cannot start the built-in emulator with the state file {}",
                state.display()
            )
        })?;
        let endpoint = Endpoint::parse(&emulator.base_url()).map_err(|e| anyhow!(e))?;
        let credentials = Credentials {
            access_token: Secret::new(emulator.access_token()),
            refresh: None,
            refresh_unavailable: None,
        };
        let portal = observe(ctx, HttpPortal::new(endpoint, credentials, options)?);
        ctx.term.info(&format!(
            "using the built-in emulator (state: {})",
            state.display()
        ));
        return Ok(Connection {
            portal,
            name: format!("emulator ({})", state.display()),
            emulator: Some(emulator),
        });
    }

    let client = HttpClient::new(&options)?;
    let (portal, name) = http_portal(
        p.portal.as_deref(),
        p.auth_file.as_deref(),
        &ctx.env,
        &client,
        options,
    )?;
    Ok(Connection {
        portal: observe(ctx, portal),
        name,
        emulator: None,
    })
}

/// Builds the client of one portal from its address (else the auth file's), its auth file (else
/// `B24_ACCESS_TOKEN`) and the refresh settings in `env`. Single runs and fleets both come
/// here, so a token is found and refreshed the same way everywhere. Returns the client and the
/// portal's address for output.
pub fn http_portal(
    portal: Option<&str>,
    auth_file: Option<&Path>,
    env: &BTreeMap<String, String>,
    client: &HttpClient,
    options: HttpOptions,
) -> anyhow::Result<(HttpPortal, String)> {
    let auth_file = auth_file
        .map(|path| AuthFile::load(path).map_err(|e| anyhow!(e)))
        .transpose()?;
    let portal_url = portal
        .map(str::to_owned)
        .or_else(|| auth_file.as_ref().and_then(AuthFile::portal))
        .ok_or_else(|| match &auth_file {
            Some(file) => anyhow!(
                "the auth file {} names no portal: it needs client_endpoint (or domain); or give the \
                 portal's address (--portal, or url = \"https://…\" in a fleet file)",
                file.path().display()
            ),
            None => anyhow!(
                "no portal given: pass --portal https://your.bitrix24.com (or set B24_PORTAL), give an auth \
                 file whose client_endpoint names it, or use --emulator to try the built-in emulator"
            ),
        })?;
    let endpoint = Endpoint::parse(&portal_url).map_err(|e| anyhow!(e))?;

    let env = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let (access_token, auth_file) = match auth_file {
        Some(file) => {
            let token = file
                .access_token()
                .ok_or_else(|| anyhow!("the auth file has no access_token"))?;
            (token, Some(file))
        }
        None => match env("B24_ACCESS_TOKEN") {
            Some(token) => (Secret::new(token), None),
            None => bail!(
                "no access token: set B24_ACCESS_TOKEN, or give --auth-file FILE (or B24_AUTH_FILE) holding the \
                 auth block the portal sent to the app's install handler"
            ),
        },
    };
    let client_id = env("B24_CLIENT_ID");
    let client_secret = env("B24_CLIENT_SECRET").map(Secret::new);
    let refresh_token = auth_file.as_ref().and_then(AuthFile::refresh_token);
    let (refresh, refresh_unavailable) = match (refresh_token, client_id, client_secret) {
        (Some(refresh_token), Some(client_id), Some(client_secret)) => (
            Some(Refresher {
                refresh_token,
                client_id,
                client_secret,
                oauth_url: {
                    let url = env("B24_OAUTH_URL").unwrap_or_else(|| DEFAULT_OAUTH_URL.to_owned());
                    check_secure_url(&url).map_err(|e| anyhow!("B24_OAUTH_URL: {e}"))?;
                    url
                },
                store: auth_file,
            }),
            None,
        ),
        (None, ..) => (
            None,
            Some("give --auth-file with a refresh_token (the auth block the portal sends at install), and set B24_CLIENT_ID and B24_CLIENT_SECRET".to_owned()),
        ),
        _ => (None, Some("set B24_CLIENT_ID and B24_CLIENT_SECRET to the application's client id and secret".to_owned())),
    };
    let credentials = Credentials {
        access_token,
        refresh,
        refresh_unavailable,
    };
    let name = endpoint.display();
    Ok((
        HttpPortal::with_client(client.clone(), endpoint, credentials, options),
        name,
    ))
}
