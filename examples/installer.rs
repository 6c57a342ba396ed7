//! An app's install/update endpoint that keeps its event bindings with the b24bind library.
//!
//! A Bitrix24 portal POSTs a form to the app's install handler on install (and the app's
//! ONAPPUPDATE handler on upgrade) with an `auth[...]` block: tokens and the portal's REST
//! endpoint. This endpoint saves that block (mode 0600, atomically: it holds the refresh token)
//! and reconciles the manifest against the portal, so every install and every upgrade ends
//! with exactly the manifest's bindings, whatever the portal kept or lost.
//!
//! Run it for real:   cargo run --example installer -- --listen 127.0.0.1:8080 --manifest handlers.toml
//! Or see it work:    cargo run --example installer -- --demo
//! (the demo starts the built-in emulator, posts an install request to the endpoint the way a
//! portal would, and shows the outcome.)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde_json::{Map, Value};

use b24bind::apply::ApplyOptions;
use b24bind::manifest::{LoadOptions, Manifest};
use b24bind::portal::auth::{AuthFile, Credentials, Refresher, write_private_atomically};
use b24bind::portal::endpoint::Endpoint;
use b24bind::portal::http::{HttpOptions, HttpPortal};
use b24bind::reconcile::{self, ReconcileError};
use b24bind::secret::Secret;

struct Config {
    manifest: PathBuf,
    auth_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let config = Config {
        manifest: flag("--manifest")
            .unwrap_or_else(|| "handlers.toml".into())
            .into(),
        auth_dir: flag("--auth-dir")
            .unwrap_or_else(|| ".b24bind/portals".into())
            .into(),
    };
    if args.iter().any(|a| a == "--demo") {
        return demo();
    }
    let listen = flag("--listen").unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener =
        TcpListener::bind(&listen).with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("install endpoint on http://{listen}/install");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = serve(stream, &config) {
                    eprintln!("request failed: {e:#}");
                }
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
    Ok(())
}

/// Answers one request: 200 with a summary when the portal is in line with the manifest.
fn serve(mut stream: TcpStream, config: &Config) -> anyhow::Result<()> {
    let body = read_request(&mut stream)?;
    let (status, text) = match install(&body, config) {
        Ok(summary) => ("200 OK", summary),
        Err(e) => ("500 Internal Server Error", format!("{e:#}")),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    Ok(())
}

fn read_request(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().context("bad Content-Length")?;
        }
    }
    if length > 1 << 20 {
        bail!("request body too large");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    String::from_utf8(body).map_err(|_| anyhow!("the body is not UTF-8"))
}

/// The portal's `auth[...]` fields, as a JSON object in the auth file's shape.
fn auth_block(form: &str) -> Map<String, Value> {
    url::form_urlencoded::parse(form.as_bytes())
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("auth[")?.strip_suffix(']')?.to_owned();
            Some((key, Value::String(v.into_owned())))
        })
        .collect()
}

/// Saves the auth block and reconciles. The auth file is per portal (`member_id`), so one
/// endpoint serves every portal the app is installed on.
fn install(form: &str, config: &Config) -> anyhow::Result<String> {
    let block = auth_block(form);
    let member = block
        .get("member_id")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| anyhow!("the request has no valid auth[member_id]"))?;
    std::fs::create_dir_all(&config.auth_dir)?;
    let path = config.auth_dir.join(format!("{member}.json"));
    let bytes = serde_json::to_vec_pretty(&Value::Object(block.clone()))?;
    write_private_atomically(&path, &bytes)
        .with_context(|| format!("cannot save {}", path.display()))?;
    reconcile_portal(&path, &config.manifest)
}

fn reconcile_portal(auth_path: &Path, manifest_path: &Path) -> anyhow::Result<String> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let manifest = Manifest::load(
        manifest_path,
        &LoadOptions {
            env: env.clone(),
            ..LoadOptions::default()
        },
    )
    .map_err(|d| anyhow!("{}", d.render(false)))?;
    let auth = AuthFile::load(auth_path).map_err(|e| anyhow!(e))?;
    let endpoint = Endpoint::parse(
        &auth
            .portal()
            .ok_or_else(|| anyhow!("the auth block names no portal"))?,
    )
    .map_err(|e| anyhow!(e))?;
    let access_token = auth
        .access_token()
        .ok_or_else(|| anyhow!("the auth block has no access token"))?;
    // With the app's client id and secret, an expired token is refreshed and saved back.
    let refresh = match (
        auth.refresh_token(),
        env.get("B24_CLIENT_ID"),
        env.get("B24_CLIENT_SECRET"),
    ) {
        (Some(refresh_token), Some(id), Some(secret)) => Some(Refresher {
            refresh_token,
            client_id: id.clone(),
            client_secret: Secret::new(secret.clone()),
            oauth_url: env
                .get("B24_OAUTH_URL")
                .cloned()
                .unwrap_or_else(|| "https://oauth.bitrix.info/oauth/token/".into()),
            store: Some(auth),
        }),
        _ => None,
    };
    let credentials = Credentials {
        access_token,
        refresh,
        refresh_unavailable: Some("set B24_CLIENT_ID and B24_CLIENT_SECRET".into()),
    };
    let mut portal = HttpPortal::new(endpoint, credentials, HttpOptions::default())?;
    let outcome = reconcile::sync(
        &manifest.bindings,
        &manifest.ignore,
        &mut portal,
        &reconcile::Options::default(),
        &ApplyOptions::default(),
    );
    match outcome {
        Ok((prepared, report)) if report.succeeded() => Ok(format!(
            "in line with the manifest: {} bound, {} unbound, {} unchanged, {} requests)\n",
            prepared.plan.count(b24bind::plan::Action::Bind),
            prepared.plan.count(b24bind::plan::Action::Unbind),
            prepared.plan.unchanged.len(),
            portal.stats().requests
        )),
        Ok((_, report)) => Err(anyhow!(
            "some changes did not land:\n{}",
            b24bind::render::ledger_text(&report, &b24bind::render::View::new("portal", false))
        )),
        Err(ReconcileError::Refused(refusals)) => Err(anyhow!(
            "refused before any change: {}",
            refusals
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Err(ReconcileError::Portal(e)) => Err(anyhow!(e)),
    }
}

/// Plays the portal's part against the built-in emulator.
fn demo() -> anyhow::Result<()> {
    let emulator = b24bind::emulator::Emulator::start(Default::default())?;
    let dir = tempfile_dir()?;
    let config = Config {
        manifest: Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers.toml.example"),
        auth_dir: dir.join("portals"),
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        for _ in 0..2 {
            let (stream, _) = listener.accept()?;
            serve(stream, &config)?;
        }
        Ok(())
    });
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("event", "ONAPPINSTALL")
        .append_pair("auth[access_token]", &emulator.access_token())
        .append_pair("auth[refresh_token]", &emulator.refresh_token())
        .append_pair("auth[client_endpoint]", &emulator.rest_url())
        .append_pair("auth[member_id]", "a223c6b3710f85df22e9377d6c4f7553")
        .finish();
    for round in ["install", "upgrade (nothing to change)"] {
        let answer = reqwest::blocking::Client::new()
            .post(format!("http://{addr}/install"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()?;
        println!(
            "{round}: HTTP {} {}",
            answer.status().as_u16(),
            answer.text()?.trim_end()
        );
    }
    server
        .join()
        .map_err(|_| anyhow!("the endpoint thread panicked"))??;
    println!("the emulator now holds {} bindings", emulator.rows().len());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("b24bind-installer-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
