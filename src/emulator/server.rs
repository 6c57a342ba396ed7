//! The HTTP side: a listener whose connections can be cut mid-request (drop and lose faults),
//! request parsing as `CRestUtil::getRequestData` does it, authentication, limits, faults, the
//! OAuth token endpoint, and the envelopes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::config::Fault;
use super::envelope::{RestError, time_block};
use super::methods::{AuthKind, Caller, call};
use super::php::{Php, parse_str};
use super::state::{Fate, JournalEntry, State, unix_now};

pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state even if a panicking request poisoned it: the state stays usable.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's kill switch: once set, every read ends and every write fails, so the client
/// sees the connection close without an answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cut(Arc<AtomicBool>);

impl Cut {
    fn cut(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn is_cut(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub(crate) struct CuttableStream {
    inner: TcpStream,
    cut: Cut,
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "emulated fault")
}

impl AsyncRead for CuttableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(crate) struct CuttableListener(pub TcpListener);

impl Listener for CuttableListener {
    type Io = CuttableStream;
    type Addr = Cut;

    async fn accept(&mut self) -> (CuttableStream, Cut) {
        loop {
            match self.0.accept().await {
                Ok((inner, _)) => {
                    let _ = inner.set_nodelay(true);
                    let cut = Cut::default();
                    return (
                        CuttableStream {
                            inner,
                            cut: cut.clone(),
                        },
                        cut,
                    );
                }
                // Out of file descriptors and the like: wait a little instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Cut> {
        Ok(Cut::default())
    }
}

impl Connected<IncomingStream<'_, CuttableListener>> for Cut {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

fn json_response(status: u16, body: &Php) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.encode(),
    )
        .into_response()
}

/// Query merged with the body; body values win. A JSON body that fails to decode adds nothing,
/// as on the platform.
fn request_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Php {
    let mut params = parse_str(uri.query().unwrap_or(""));
    if body.is_empty() {
        return params;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    let from_body = if is_json {
        serde_json::from_slice::<Php>(body).unwrap_or(Php::Null)
    } else {
        parse_str(&String::from_utf8_lossy(body))
    };
    for (k, v) in from_body.entries() {
        params.set(k, v.clone());
    }
    params
}

const SECRET_KEYS: [&str; 4] = ["auth", "access_token", "refresh_token", "client_secret"];

fn masked(params: &Php) -> serde_json::Value {
    let mut p = params.clone();
    for key in SECRET_KEYS {
        if p.get(key).is_some() {
            p.set(key, Php::str("***"));
        }
    }
    p.to_json()
}

/// What the path asks for.
enum Route {
    Rest { method: String },
    Webhook { user: String, method: String },
    OAuth,
    NotFound,
}

fn route(path: &str) -> Route {
    let trimmed = path.trim_end_matches('/');
    if trimmed == "/oauth/token" {
        return Route::OAuth;
    }
    let Some(rest) = trimmed.strip_prefix("/rest/") else {
        return Route::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let method_of = |m: &str| {
        let m = m
            .strip_suffix(".json")
            .or_else(|| m.strip_suffix(".xml"))
            .unwrap_or(m);
        m.to_lowercase()
    };
    match segments.as_slice() {
        [method] if !method.is_empty() => Route::Rest {
            method: method_of(method),
        },
        [user, _code, method] if !method.is_empty() => Route::Webhook {
            user: (*user).to_string(),
            method: method_of(method),
        },
        _ => Route::NotFound,
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// `lib/oauth/auth.php`: the header, then `auth`, then `access_token`. The auth keys and
/// `auth_connector` never reach the method.
fn authenticate(
    state: &State,
    route_user: Option<&str>,
    headers: &HeaderMap,
    params: &mut Php,
) -> Result<Caller, RestError> {
    let from_auth = params.remove("auth").map(|v| v.to_php_string());
    let from_access = params.remove("access_token").map(|v| v.to_php_string());
    let connector = params
        .remove("auth_connector")
        .map(|v| v.to_php_string())
        .unwrap_or_default();
    if let Some(user) = route_user {
        let user_id = user.parse::<u64>().ok();
        let admin = user_id.and_then(|u| state.users.get(&u).copied());
        return match (user_id, admin) {
            (Some(user_id), Some(admin)) => Ok(Caller {
                kind: AuthKind::Webhook,
                user_id,
                admin,
                connector,
            }),
            _ => Err(RestError::new(
                401,
                "INVALID_CREDENTIALS",
                "Invalid request credentials",
            )),
        };
    }
    let token = bearer(headers)
        .or(from_auth.filter(|t| !t.is_empty()))
        .or(from_access.filter(|t| !t.is_empty()));
    let Some(token) = token else {
        return Err(RestError::new(
            401,
            "NO_AUTH_FOUND",
            "Wrong authorization data",
        ));
    };
    let Some(found) = state.access.get(&token) else {
        return Err(RestError::new(
            401,
            "invalid_token",
            "The access token provided is invalid.",
        ));
    };
    if std::time::Instant::now() >= found.expires {
        return Err(RestError::new(
            401,
            "expired_token",
            "The access token provided has expired",
        ));
    }
    let Some(&admin) = state.users.get(&found.user_id) else {
        return Err(RestError::new(
            401,
            "authorization_error",
            "Unable to authorize user",
        ));
    };
    Ok(Caller {
        kind: AuthKind::OAuth,
        user_id: found.user_id,
        admin,
        connector,
    })
}

/// The axum entry point for every path.
pub(crate) async fn handle(
    AxumState(shared): AxumState<Shared>,
    ConnectInfo(cut): ConnectInfo<Cut>,
    http_method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let start = unix_now();
    let route = route(uri.path());
    if matches!(route, Route::OAuth) {
        return oauth(&shared, &http_method, &uri, &headers, &body);
    }
    let latency = lock(&shared).config.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut params = request_params(&uri, &headers, &body);
    let mut state = lock(&shared);
    let seq = state.journal.len();
    let (method, route_user) = match &route {
        Route::Rest { method } => (method.clone(), None),
        Route::Webhook { user, method } => (method.clone(), Some(user.clone())),
        _ => (String::new(), None),
    };
    let mut entry = JournalEntry {
        seq,
        http_method: http_method.to_string(),
        path: uri.path().to_string(),
        method: method.clone(),
        params: masked(&params),
        user_id: None,
        status: None,
        error: None,
        fate: Fate::Answered,
    };
    let fault = state.roll_fault();
    if fault == Some(Fault::Drop) {
        entry.fate = Fate::Dropped;
        state.journal.push(entry);
        cut.cut();
        return StatusCode::OK.into_response();
    }
    let outcome: Result<Php, RestError> = (|| {
        if !state.admit() {
            return Err(RestError::query_limit());
        }
        match fault {
            Some(Fault::ServerError) => return Err(RestError::server_error()),
            Some(Fault::QueryLimit) => return Err(RestError::query_limit()),
            Some(Fault::OperationTimeLimit) => {
                let reset = state.operating_reset_at(&method);
                return Err(RestError::operation_time_limit(reset));
            }
            _ => {}
        }
        if matches!(route, Route::NotFound) {
            return Err(RestError::method_not_found());
        }
        let caller = authenticate(&state, route_user.as_deref(), &headers, &mut params)?;
        entry.user_id = Some(caller.user_id);
        let before = state.mutations.len();
        let result = call(&mut state, &caller, seq, &method, &params);
        if state.mutations.len() != before {
            state.persist();
        }
        result
    })();
    let (status, body) = match outcome {
        Ok(result) => {
            let finish = unix_now();
            let operating = if method == "batch" {
                state.operating("batch")
            } else {
                state.operating(&method)
            };
            let body = Php::obj([
                ("result", result),
                ("time", time_block(start, finish, finish - start, operating)),
            ]);
            (200, body)
        }
        Err(error) => {
            entry.error = Some(error.code.clone());
            (error.status, error.body())
        }
    };
    if fault == Some(Fault::LoseResponse) {
        entry.fate = Fate::Lost;
        state.journal.push(entry);
        cut.cut();
        return StatusCode::OK.into_response();
    }
    entry.status = Some(status);
    state.journal.push(entry);
    json_response(status, &body)
}

fn oauth_error(status: u16, code: &str, description: &str) -> (u16, Php) {
    (
        status,
        Php::obj([
            ("error", Php::str(code)),
            ("error_description", Php::str(description)),
        ]),
    )
}

/// The OAuth server's refresh grant: checks grant type, then client, then the refresh token;
/// answers a new pair and retires the used refresh token.
fn oauth(
    shared: &Shared,
    http_method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let params = request_params(uri, headers, body);
    let mut state = lock(shared);
    let seq = state.journal.len();
    let get = |k: &str| params.get(k).map(Php::to_php_string).unwrap_or_default();
    let mut user_id = None;
    let (status, answer) = if get("grant_type") != "refresh_token" {
        oauth_error(400, "invalid_request", "Unsupported grant_type")
    } else if get("client_id") != state.config.client_id
        || get("client_secret") != state.config.client_secret
    {
        oauth_error(401, "invalid_client", "Invalid client credentials")
    } else {
        let presented = get("refresh_token");
        let usable = state
            .refresh
            .get(&presented)
            .filter(|r| !r.used)
            .map(|r| (r.user_id, r.access.clone()));
        match usable {
            None => oauth_error(400, "invalid_grant", "Invalid refresh token"),
            Some((user, old_access)) => {
                if let Some(r) = state.refresh.get_mut(&presented) {
                    r.used = true;
                }
                if state.config.strict.refresh_revokes_access {
                    state.access.remove(&old_access);
                }
                let (access, refresh) = state.issue_pair(user);
                user_id = Some(user);
                let ttl = state.config.token_ttl.as_secs() as i64;
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                let endpoint = format!("http://{host}/rest/");
                (
                    200,
                    Php::obj([
                        ("access_token", Php::str(access)),
                        ("expires", Php::Int(unix_now() as i64 + ttl)),
                        ("expires_in", Php::Int(ttl)),
                        ("scope", Php::str(state.config.scopes.join(","))),
                        ("domain", Php::str("oauth.bitrix.info")),
                        ("server_endpoint", Php::str(endpoint.clone())),
                        ("status", Php::str("L")),
                        ("client_endpoint", Php::str(endpoint)),
                        ("member_id", Php::str("b24bind0emulator0000000000000001")),
                        ("user_id", Php::Int(user as i64)),
                        ("refresh_token", Php::str(refresh)),
                    ]),
                )
            }
        }
    };
    let error = answer.get("error").map(Php::to_php_string);
    state.journal.push(JournalEntry {
        seq,
        http_method: http_method.to_string(),
        path: uri.path().to_string(),
        method: "oauth/token".into(),
        params: masked(&params),
        user_id,
        status: Some(status),
        error,
        fate: Fate::Answered,
    });
    json_response(status, &answer)
}
