//! The HTTP client for a real portal: pacing, retries, token refresh and `batch` packing.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::model::{BindingKey, Caller};
use crate::portal::auth::Credentials;
use crate::portal::endpoint::Endpoint;
use crate::portal::pacer::Pacer;
use crate::portal::wire;
use crate::portal::{MAX_BATCH, Op, Outcome, Portal, PortalError, Snapshot};
use crate::secret::Secret;

/// Tuning of the client. The defaults follow the cloud's limits.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Requests per second once the burst is spent (cloud 2, Enterprise 5; 0 = no pacing).
    pub rate: f64,
    /// Requests allowed back to back (cloud 50, Enterprise 250).
    pub burst: u32,
    /// One request's time limit (the cloud stops a request after 60 s anyway).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per call for transient failures (timeouts, dropped connections, 5xx).
    pub max_attempts: u32,
    /// The most time one call may spend in retries of transient failures.
    pub retry_budget: Duration,
    /// The most time one call may wait for a rate or operating-time limit to clear.
    pub max_wait: Duration,
    /// Largest answer read; anything bigger is refused rather than buffered.
    pub max_body: u64,
    /// Seed of the backoff jitter, so tests are repeatable.
    pub seed: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            rate: 2.0,
            burst: 50,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 4,
            retry_budget: Duration::from_secs(30),
            max_wait: Duration::from_secs(120),
            max_body: 64 << 20,
            seed: 0x5eed,
        }
    }
}

/// Something worth telling a user who asked for `-v`. Never carries a secret.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpEvent {
    /// A request is about to be sent; `params` has the token replaced by `***`.
    Request {
        method: String,
        attempt: u32,
        params: String,
    },
    Response {
        method: String,
        status: u16,
        elapsed: Duration,
    },
    /// Waiting before a request: for the pacer, a limit, or a retry.
    Wait { reason: String, wait: Duration },
    /// The access token expired and was renewed (and saved, when there is an auth file).
    Refreshed { saved_to: Option<String> },
}

/// Counters for benchmarks and summaries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// HTTP requests sent to the portal, retries included, token refreshes excluded.
    pub requests: usize,
    pub retries: usize,
    /// Time spent waiting on the client's pacer.
    pub paced: Duration,
    /// Time spent waiting on the portal's limits (503 backoff, 429 reset).
    pub limited: Duration,
}

type Observer = Box<dyn FnMut(&HttpEvent) + Send>;

/// The HTTP machinery (connection pool, TLS) that portal clients can share. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::blocking::Client,
}

impl HttpClient {
    pub fn new(options: &HttpOptions) -> Result<Self, PortalError> {
        // TLS certificates are always verified: there is deliberately no switch to turn that
        // off. Redirects are not followed, so a token never travels to another host.
        reqwest::blocking::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("b24bind/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(|inner| HttpClient { inner })
            .map_err(|e| PortalError::Local {
                message: format!("cannot set up the HTTP client: {}", e.without_url()),
            })
    }
}

/// A portal reached over HTTP(S).
pub struct HttpPortal {
    client: reqwest::blocking::Client,
    endpoint: Endpoint,
    credentials: Credentials,
    options: HttpOptions,
    pacer: Pacer,
    observer: Option<Observer>,
    cancel: Option<Arc<AtomicBool>>,
    caller: Option<Caller>,
    stats: Stats,
    rng: u64,
}

/// What one attempt came to.
enum Attempt {
    Answer(Value),
    Retry {
        reason: String,
        wait: Option<Duration>,
        limit: bool,
    },
    Refresh,
    Fail(PortalError),
}

impl HttpPortal {
    pub fn new(
        endpoint: Endpoint,
        credentials: Credentials,
        options: HttpOptions,
    ) -> Result<Self, PortalError> {
        let client = HttpClient::new(&options)?;
        Ok(Self::with_client(client, endpoint, credentials, options))
    }

    /// A portal client on a shared connection pool: building a TLS client costs milliseconds of
    /// CPU, which a fleet of a thousand portals should pay once, not a thousand times.
    pub fn with_client(
        client: HttpClient,
        endpoint: Endpoint,
        credentials: Credentials,
        options: HttpOptions,
    ) -> Self {
        HttpPortal {
            client: client.inner,
            pacer: Pacer::new(options.rate, options.burst),
            rng: options.seed | 1,
            endpoint,
            credentials,
            options,
            observer: None,
            cancel: None,
            caller: None,
            stats: Stats::default(),
        }
    }

    pub fn with_observer(mut self, observer: impl FnMut(&HttpEvent) + Send + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Stops waits and further requests once the flag is set (Ctrl-C).
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn emit(&mut self, event: HttpEvent) {
        if let Some(observer) = self.observer.as_mut() {
            observer(&event);
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Sleeps in short slices so Ctrl-C is honoured during long waits.
    fn sleep(&self, total: Duration) -> Result<(), PortalError> {
        let deadline = Instant::now() + total;
        loop {
            if self.cancelled() {
                return Err(PortalError::Interrupted);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
    }

    fn jitter(&mut self) -> f64 {
        // xorshift64*: enough for spreading retries, and repeatable from the seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let base = 0.5 * 2f64.powi(attempt.min(6) as i32);
        let capped = base.min(8.0);
        Duration::from_secs_f64(capped * (0.75 + 0.5 * self.jitter()))
    }

    /// Calls one REST method and returns the whole success envelope.
    pub fn call(&mut self, method: &str, params: Map<String, Value>) -> Result<Value, PortalError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut refreshed = false;
        let mut limit_waited = Duration::ZERO;
        // Limit answers keep `attempt` unchanged, so they count their own backoff steps.
        let mut limit_hits = 0u32;
        loop {
            if self.cancelled() {
                return Err(PortalError::Interrupted);
            }
            attempt += 1;
            let wait = self.pacer.reserve(Instant::now());
            if !wait.is_zero() {
                self.emit(HttpEvent::Wait {
                    reason: "pacing requests to the portal's rate limit".into(),
                    wait,
                });
                self.sleep(wait)?;
                self.stats.paced += wait;
            }
            match self.attempt(method, &params, attempt) {
                Attempt::Answer(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Refresh if !refreshed => {
                    refreshed = true;
                    attempt -= 1;
                    self.refresh()?;
                }
                Attempt::Refresh => {
                    return Err(PortalError::Auth {
                        message:
                            "the portal still answers expired_token right after a token refresh; \
                                  check that the client id and secret belong to this portal's app"
                                .into(),
                    });
                }
                Attempt::Retry {
                    reason,
                    wait,
                    limit,
                } => {
                    if limit {
                        let wait = match wait {
                            Some(w) => w,
                            None => self.backoff(limit_hits),
                        };
                        limit_hits += 1;
                        if limit_waited + wait > self.options.max_wait {
                            return Err(PortalError::Limit {
                                method: method.into(),
                                message: format!(
                                    "{reason}; waiting {:.0} s more would exceed the maximum wait ({:.0} s, \
                                     --max-wait). Run again later, or allow a longer wait",
                                    wait.as_secs_f64(),
                                    self.options.max_wait.as_secs_f64()
                                ),
                            });
                        }
                        self.pacer.drain();
                        self.emit(HttpEvent::Wait {
                            reason: reason.clone(),
                            wait,
                        });
                        self.sleep(wait)?;
                        limit_waited += wait;
                        self.stats.limited += wait;
                        self.stats.retries += 1;
                        // Limit answers say nothing about the portal's health: they do not use
                        // up the attempts meant for transient failures.
                        attempt -= 1;
                        continue;
                    }
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt - 1));
                    let spent = started.elapsed();
                    if attempt >= self.options.max_attempts
                        || spent + wait > self.options.retry_budget
                    {
                        return Err(PortalError::Transport {
                            method: method.into(),
                            message: format!(
                                "{reason} (gave up after {attempt} attempt{} in {:.1} s)",
                                if attempt == 1 { "" } else { "s" },
                                spent.as_secs_f64()
                            ),
                        });
                    }
                    self.emit(HttpEvent::Wait {
                        reason: format!("retrying after: {reason}"),
                        wait,
                    });
                    self.sleep(wait)?;
                    self.stats.retries += 1;
                }
            }
        }
    }

    fn attempt(&mut self, method: &str, params: &Map<String, Value>, attempt: u32) -> Attempt {
        let mut body = params.clone();
        let logged = Value::Object(body.clone()).to_string();
        self.emit(HttpEvent::Request {
            method: method.into(),
            attempt,
            params: logged,
        });
        // The token goes in the body, never the URL: URLs end up in error messages and logs.
        body.insert(
            "auth".into(),
            Value::String(self.credentials.access_token.expose().to_owned()),
        );
        self.stats.requests += 1;
        let sent = Instant::now();
        let response = self
            .client
            .post(self.endpoint.method_url(method))
            .json(&Value::Object(body))
            .send();
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let reason = if e.is_timeout() {
                    format!(
                        "no answer from {} within {:.0} s",
                        self.endpoint.display(),
                        self.options.request_timeout.as_secs_f64()
                    )
                } else if e.is_connect() {
                    format!("cannot connect to {}", self.endpoint.display())
                } else {
                    format!(
                        "the connection to {} failed before an answer arrived",
                        self.endpoint.display()
                    )
                };
                return Attempt::Retry {
                    reason,
                    wait: None,
                    limit: false,
                };
            }
        };
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        let read = response
            .take(self.options.max_body + 1)
            .read_to_end(&mut bytes);
        self.emit(HttpEvent::Response {
            method: method.into(),
            status,
            elapsed: sent.elapsed(),
        });
        if read.is_err() {
            return Attempt::Retry {
                reason: format!(
                    "the connection to {} broke while reading the answer",
                    self.endpoint.display()
                ),
                wait: None,
                limit: false,
            };
        }
        if bytes.len() as u64 > self.options.max_body {
            return Attempt::Fail(PortalError::Protocol {
                method: method.into(),
                message: format!(
                    "the answer is larger than {} MiB",
                    self.options.max_body >> 20
                ),
            });
        }
        let json: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if status >= 500 => {
                return Attempt::Retry {
                    reason: format!("HTTP {status} from the portal"),
                    wait: None,
                    limit: false,
                };
            }
            Err(_) => {
                return Attempt::Fail(PortalError::Protocol {
                    method: method.into(),
                    message: format!(
                        "HTTP {status} with a body that is not JSON: {}",
                        preview(&bytes)
                    ),
                });
            }
        };
        if let Some(code) = json.get("error").and_then(Value::as_str) {
            let description = json
                .get("error_description")
                .map(|d| {
                    d.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| d.to_string())
                })
                .unwrap_or_default();
            return self.classify_error(method, status, code, description, &json);
        }
        if status >= 500 {
            return Attempt::Retry {
                reason: format!("HTTP {status} from the portal"),
                wait: None,
                limit: false,
            };
        }
        if status != 200 || json.get("result").is_none() {
            return Attempt::Fail(PortalError::Protocol {
                method: method.into(),
                message: format!("HTTP {status} without a result: {}", preview(&bytes)),
            });
        }
        Attempt::Answer(json)
    }

    fn classify_error(
        &mut self,
        method: &str,
        status: u16,
        code: &str,
        description: String,
        json: &Value,
    ) -> Attempt {
        match code {
            "expired_token" => Attempt::Refresh,
            "QUERY_LIMIT_EXCEEDED" => Attempt::Retry {
                reason: "the portal's request limit was hit (QUERY_LIMIT_EXCEEDED)".into(),
                wait: None,
                limit: true,
            },
            "OPERATION_TIME_LIMIT" => {
                let reset = json
                    .get("operating_reset_at")
                    .or_else(|| json.get("time").and_then(|t| t.get("operating_reset_at")))
                    .and_then(wire::as_u64);
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                let wait = reset.map(|r| Duration::from_secs(r.saturating_sub(now) + 1));
                Attempt::Retry {
                    reason: format!("{method} is blocked by the portal's operating-time limit (OPERATION_TIME_LIMIT)"),
                    wait,
                    limit: true,
                }
            }
            "invalid_token" => Attempt::Fail(PortalError::Auth {
                message: "the portal rejected the access token (invalid_token): it is not a token of this portal's \
                          application, or it was revoked. Save a fresh auth block from the app's install or update \
                          request into the auth file"
                    .into(),
            }),
            "NO_AUTH_FOUND" => Attempt::Fail(PortalError::Auth {
                message: "the portal found no authorization in the request (NO_AUTH_FOUND)".into(),
            }),
            "WRONG_AUTH_TYPE" => Attempt::Fail(PortalError::Auth {
                message: "the portal refuses this kind of authorization for event methods (WRONG_AUTH_TYPE): \
                          event.bind, event.unbind and event.get need an application's OAuth token, not a webhook"
                    .into(),
            }),
            "insufficient_scope" | "APPLICATION_NOT_FOUND" | "authorization_error" | "user_access_error"
            | "INVALID_CREDENTIALS" | "PORTAL_DELETED" => Attempt::Fail(PortalError::Auth {
                message: format!("the portal refused the call to {method}: {code}{}", if description.is_empty() { String::new() } else { format!(" ({description})") }),
            }),
            _ if status >= 500 => Attempt::Retry {
                reason: format!("HTTP {status} {code} from the portal"),
                wait: None,
                limit: false,
            },
            _ => Attempt::Fail(PortalError::Api {
                method: method.into(),
                status,
                code: code.into(),
                description,
                hint: None,
            }),
        }
    }

    /// Renews the access token with the refresh grant and saves the rotated pair before
    /// anything else: the old refresh token is dead from this moment.
    fn refresh(&mut self) -> Result<(), PortalError> {
        let Some(refresher) = self.credentials.refresh.as_ref() else {
            let why = self
                .credentials
                .refresh_unavailable
                .clone()
                .unwrap_or_else(|| "no refresh token and client credentials were given".into());
            return Err(PortalError::Auth {
                message: format!("the access token has expired and cannot be refreshed: {why}"),
            });
        };
        let response = self
            .client
            .get(&refresher.oauth_url)
            .query(&[
                ("grant_type", "refresh_token"),
                ("client_id", refresher.client_id.as_str()),
                ("client_secret", refresher.client_secret.expose()),
                ("refresh_token", refresher.refresh_token.expose()),
            ])
            .send()
            // without_url: the URL carries the refresh token and the client secret.
            .map_err(|e| PortalError::Auth {
                message: format!(
                    "cannot reach the OAuth server to refresh the token: {}",
                    e.without_url()
                ),
            })?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        response
            .take(1 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| PortalError::Auth {
                message: format!("the OAuth server's answer broke off: {e}"),
            })?;
        let json: Value = serde_json::from_slice(&bytes).map_err(|_| PortalError::Auth {
            message: format!(
                "the OAuth server answered HTTP {status} with a body that is not JSON"
            ),
        })?;
        if let Some(code) = json.get("error").and_then(Value::as_str) {
            let hint = match code {
                "invalid_grant" => {
                    "the refresh token has expired or was already used; save a fresh auth block from the app's install or update request"
                }
                "invalid_client" => {
                    "B24_CLIENT_ID / B24_CLIENT_SECRET do not match the application"
                }
                _ => "see the error code in the Bitrix24 OAuth documentation",
            };
            return Err(PortalError::Auth {
                message: format!("refreshing the access token failed: {code} ({hint})"),
            });
        }
        let (Some(access), Some(refresh)) = (
            json.get("access_token")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty()),
            json.get("refresh_token")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty()),
        ) else {
            return Err(PortalError::Auth {
                message: format!(
                    "the OAuth server answered HTTP {status} without a new token pair"
                ),
            });
        };
        let access = Secret::new(access);
        let refresh = Secret::new(refresh);
        let extra = json.as_object().cloned().unwrap_or_default();
        let mut saved_to = None;
        if let Some(refresher) = self.credentials.refresh.as_mut() {
            if let Some(store) = refresher.store.as_mut() {
                store.save_tokens(&access, &refresh, &extra).map_err(|e| PortalError::Auth {
                    message: format!(
                        "the token was refreshed but the new pair could not be saved ({e}); the previous refresh \
                         token is no longer valid, so reinstalling the app or saving a fresh auth block will be needed"
                    ),
                })?;
                saved_to = Some(store.path().display().to_string());
            }
            refresher.refresh_token = refresh;
        }
        self.credentials.access_token = access;
        self.emit(HttpEvent::Refreshed { saved_to });
        Ok(())
    }

    /// Sends up to [`MAX_BATCH`] commands in one `batch` call with `halt=0`.
    fn batch(&mut self, commands: &[(String, String)]) -> Result<Value, PortalError> {
        let cmd: Map<String, Value> = commands
            .iter()
            .map(|(k, c)| (k.clone(), Value::String(c.clone())))
            .collect();
        let mut params = Map::new();
        params.insert("halt".into(), json!(0));
        params.insert("cmd".into(), Value::Object(cmd));
        let envelope = self.call("batch", params)?;
        envelope
            .get("result")
            .cloned()
            .ok_or_else(|| PortalError::Protocol {
                method: "batch".into(),
                message: "the answer has no result".into(),
            })
    }

    fn direct(&mut self, op: &Op) -> Outcome {
        let (method, params) = wire::op_params(op);
        match self.call(method, params) {
            Ok(envelope) => {
                wire::outcome_from_result(op, envelope.get("result").unwrap_or(&Value::Null))
            }
            Err(PortalError::Api {
                code, description, ..
            }) => wire::outcome_from_error(op, &code, &description),
            Err(PortalError::Interrupted) => Outcome::Skipped {
                reason: "not sent: interrupted".into(),
            },
            Err(e) => Outcome::Unknown {
                reason: e.to_string(),
            },
        }
    }
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = flat.chars().take(100).collect();
    if flat.chars().count() > 100 {
        cut.push('…');
    }
    if cut.is_empty() {
        "(empty)".into()
    } else {
        format!("{cut:?}")
    }
}

fn sub_error(result: &Value, key: &str, index: usize) -> Option<(String, String)> {
    let err = wire::batch_entry(result.get("result_error"), key, index)?;
    let code = err
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN_ERROR")
        .to_owned();
    let description = err
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Some((code, description))
}

impl Portal for HttpPortal {
    fn snapshot(&mut self) -> Result<Snapshot, PortalError> {
        let keys = ["get", "events", "admin", "profile", "app"];
        let commands: Vec<(String, String)> = keys
            .iter()
            .zip(["event.get", "events", "user.admin", "profile", "app.info"])
            .map(|(k, m)| ((*k).to_owned(), m.to_owned()))
            .collect();
        let result = self.batch(&commands)?;
        let entry = |i: usize| wire::batch_entry(result.get("result"), keys[i], i);
        let bindings = match entry(0) {
            Some(rows) => wire::decode_bindings(rows).map_err(|message| PortalError::Protocol {
                method: "event.get".into(),
                message,
            })?,
            None => {
                let (code, description) =
                    sub_error(&result, keys[0], 0).unwrap_or(("NO_RESULT".into(), String::new()));
                return Err(PortalError::Api {
                    method: "event.get".into(),
                    status: 200,
                    code,
                    description,
                    hint: None,
                });
            }
        };
        // An events list the portal would not give is treated as unknown (empty), which skips
        // the event-name preflight rather than failing the run.
        let events = entry(1)
            .and_then(|v| wire::decode_events(v).ok())
            .unwrap_or_default();
        let caller = wire::decode_caller(entry(2), entry(3));
        self.caller = Some(caller);
        Ok(Snapshot {
            bindings,
            events,
            caller,
            app: wire::decode_app(entry(4)),
        })
    }

    fn bindings(&mut self) -> Result<Vec<BindingKey>, PortalError> {
        let envelope = self.call("event.get", Map::new())?;
        wire::decode_bindings(envelope.get("result").unwrap_or(&Value::Null)).map_err(|message| {
            PortalError::Protocol {
                method: "event.get".into(),
                message,
            }
        })
    }

    fn events(&mut self, all: bool) -> Result<Vec<String>, PortalError> {
        let mut params = Map::new();
        if all {
            params.insert("FULL".into(), json!(true));
        }
        let envelope = self.call("events", params)?;
        wire::decode_events(envelope.get("result").unwrap_or(&Value::Null)).map_err(|message| {
            PortalError::Protocol {
                method: "events".into(),
                message,
            }
        })
    }

    fn requests_sent(&self) -> Option<usize> {
        Some(self.stats.requests)
    }

    fn execute(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, PortalError> {
        if ops.len() > MAX_BATCH {
            return Err(PortalError::Local {
                message: format!(
                    "at most {MAX_BATCH} operations fit one batch (got {})",
                    ops.len()
                ),
            });
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; ops.len()];
        // The batch runs before the direct calls, so an op whose binding an earlier op touches
        // directly goes direct too: a recreate's direct unbind must not run after its rebind.
        let mut direct_keys: BTreeSet<&BindingKey> = BTreeSet::new();
        let mut batched: Vec<usize> = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            if wire::batchable(op, self.caller) && !direct_keys.contains(op.key()) {
                batched.push(i);
            } else {
                direct_keys.insert(op.key());
            }
        }
        if !batched.is_empty() {
            let commands: Vec<(String, String)> = batched
                .iter()
                .map(|&i| {
                    let (method, params) = wire::op_params(&ops[i]);
                    (format!("c{i:02}"), wire::batch_command(method, &params))
                })
                .collect();
            let result = self.batch(&commands)?;
            for (n, &i) in batched.iter().enumerate() {
                let key = &commands[n].0;
                let outcome = if let Some(value) = wire::batch_entry(result.get("result"), key, n) {
                    wire::outcome_from_result(&ops[i], value)
                } else if let Some((code, description)) = sub_error(&result, key, n) {
                    wire::outcome_from_error(&ops[i], &code, &description)
                } else {
                    Outcome::Unknown {
                        reason: "the batch answer has no entry for this command".into(),
                    }
                };
                outcomes[i] = Some(outcome);
            }
        }
        for (i, op) in ops.iter().enumerate() {
            if outcomes[i].is_none() {
                outcomes[i] = Some(self.direct(op));
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::Unknown {
                    reason: "not sent".into(),
                })
            })
            .collect())
    }
}
