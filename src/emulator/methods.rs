//! The REST methods the emulator serves, with the platform's validation order, matching rules
//! and result shapes (`event.*`, `events`, `batch`, `user.admin`, `profile`, `app.info`).

use super::config::{LongHandler, OFFLINE_NOTIFY_EVENT};
use super::envelope::{RestError, time_block};
use super::php::{Php, parse_str};
use super::state::{Mutation, MutationKind, Row, State, unix_now};

/// How the caller authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthKind {
    OAuth,
    Webhook,
}

/// The authenticated caller of one call (a batch's sub-calls share it).
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub kind: AuthKind,
    pub user_id: u64,
    pub admin: bool,
    /// `auth_connector` from the auth layer, `""` when absent.
    pub connector: String,
}

const MAX_BATCH: usize = 50;
const HANDLER_COLUMN: usize = 255;

fn known(method: &str) -> bool {
    matches!(
        method,
        "event.bind"
            | "event.unbind"
            | "event.get"
            | "events"
            | "batch"
            | "user.admin"
            | "profile"
            | "app.info"
    )
}

/// One call: method lookup, operating budget, then the method. `method` is lower case.
/// Returns the result and the `time` block's operating figures.
pub(crate) fn call(
    state: &mut State,
    caller: &Caller,
    request: usize,
    method: &str,
    params: &Php,
) -> Result<Php, RestError> {
    if !known(method) {
        return Err(RestError::method_not_found());
    }
    // `batch` itself is exempt from the operating budget; its sub-calls are charged.
    if method != "batch" {
        if state.over_budget(method) {
            let reset = state.operating_reset_at(method);
            return Err(RestError::operation_time_limit(reset));
        }
        state.charge(method);
    }
    match method {
        "event.bind" => event_bind(state, caller, request, params),
        "event.unbind" => event_unbind(state, caller, request, params),
        "event.get" => event_get(state, caller),
        "events" => events(state, caller, params),
        "batch" => batch(state, caller, request, params),
        "user.admin" => Ok(Php::Bool(caller.admin)),
        "profile" => Ok(profile(caller)),
        "app.info" => Ok(app_info(state)),
        _ => Err(RestError::method_not_found()),
    }
}

fn require_oauth(caller: &Caller) -> Result<(), RestError> {
    match caller.kind {
        AuthKind::OAuth => Ok(()),
        AuthKind::Webhook => Err(RestError::wrong_auth_type()),
    }
}

/// PHP `isset`: present and not null.
fn isset<'a>(params: &'a Php, key: &str) -> Option<&'a Php> {
    params.get(key).filter(|v| !matches!(v, Php::Null))
}

fn string_param(params: &Php, key: &str) -> String {
    params.get(key).map(Php::to_php_string).unwrap_or_default()
}

#[derive(PartialEq, Eq)]
enum EventType {
    Online,
    Offline,
}

fn event_type(params: &Php) -> Result<EventType, RestError> {
    match string_param(params, "EVENT_TYPE").to_lowercase().as_str() {
        "" | "online" => Ok(EventType::Online),
        "offline" => Ok(EventType::Offline),
        _ => Err(RestError::new(
            400,
            "ERROR_ARGUMENT",
            "Value must be one of {online|offline}",
        )
        .with("argument", Php::str("EVENT_TYPE"))),
    }
}

/// The parts of PHP's `parse_url` the handler check needs: (scheme, host).
fn parse_url(url: &str) -> (Option<&str>, Option<&str>) {
    let mut rest = url;
    let mut scheme = None;
    if let Some(colon) = url.find(':') {
        let candidate = &url[..colon];
        let valid = !candidate.is_empty()
            && candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if valid {
            scheme = Some(candidate);
            rest = &url[colon + 1..];
        }
    }
    let Some(authority_and_more) = rest.strip_prefix("//") else {
        return (scheme, None);
    };
    let end = authority_and_more
        .find(['/', '?', '#'])
        .unwrap_or(authority_and_more.len());
    let authority = &authority_and_more[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port
            .find(']')
            .map_or(host_port, |close| &host_port[..=close])
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    (scheme, if host.is_empty() { None } else { Some(host) })
}

/// `HandlerHelper::checkCallback`: a dotted host first, then a case-sensitive http(s) scheme.
fn check_handler(handler: &str) -> Result<(), RestError> {
    let (scheme, host) = parse_url(handler);
    let dotted = host.is_some_and(|h| h.find('.').is_some_and(|at| at > 0));
    if !dotted {
        return Err(RestError::new(
            400,
            "ERROR_WRONG_HANDLER_URL",
            "Wrong handler URL",
        ));
    }
    if !matches!(scheme, Some("http" | "https")) {
        return Err(RestError::new(
            400,
            "ERROR_UNSUPPORTED_PROTOCOL",
            "Unsupported handler protocol",
        ));
    }
    Ok(())
}

fn same_handler(state: &State, a: &str, b: &str) -> bool {
    if state.config.strict.case_insensitive_handlers {
        a.to_lowercase() == b.to_lowercase()
    } else {
        a == b
    }
}

fn event_bind(
    state: &mut State,
    caller: &Caller,
    request: usize,
    raw: &Php,
) -> Result<Php, RestError> {
    require_oauth(caller)?;
    let params = raw.keys_upper();
    let mut user = params.get("AUTH_TYPE").map_or(0, Php::intval);
    if user > 0 && !caller.admin && user != caller.user_id as i64 {
        return Err(RestError::access_denied(
            "Event binding with AUTH_TYPE requires administrator access rights",
        ));
    }
    if user <= 0 && !caller.admin {
        user = caller.user_id as i64;
    }
    let event = string_param(&params, "EVENT").to_uppercase();
    if event.is_empty() {
        return Err(RestError::null_argument("EVENT"));
    }
    let kind = event_type(&params)?;
    let mut handler = string_param(&params, "HANDLER");
    if kind == EventType::Offline {
        if !caller.admin {
            return Err(RestError::access_denied(
                "Offline events binding requires administrator access rights",
            ));
        }
        handler.clear();
        user = 0;
    } else {
        if handler.is_empty() {
            return Err(RestError::null_argument("HANDLER"));
        }
        check_handler(&handler)?;
    }
    let scopes = state.config.scopes.clone();
    if !state.config.events.for_scopes(&scopes).contains(&event) {
        return Err(RestError::new(
            400,
            "ERROR_EVENT_NOT_FOUND",
            "Event not found",
        ));
    }
    if kind == EventType::Offline && event == OFFLINE_NOTIFY_EVENT {
        return Err(RestError::new(
            400,
            "ERROR_ARGUMENT",
            "Offline event cannot be registered for this event.",
        ));
    }
    let mut options = std::collections::BTreeMap::new();
    if event == OFFLINE_NOTIFY_EVENT
        && let Some(Php::Arr(_)) = params.get("OPTIONS")
        && let Some(min) = params.get("OPTIONS").and_then(|o| o.get("minTimeout"))
    {
        options.insert("minTimeout".to_string(), min.intval());
    }
    let long = handler.chars().count() > HANDLER_COLUMN;
    if long && state.config.strict.long_handler == LongHandler::Truncate {
        handler = handler.chars().take(HANDLER_COLUMN).collect();
    }
    let user_id = u64::try_from(user).unwrap_or(0);
    let app_id = state.config.app_id;
    let connector = caller.connector.clone();
    let duplicate = state.rows.iter().any(|r| {
        r.app_id == app_id
            && r.event == event
            && same_handler(state, &r.handler, &handler)
            && r.user_id == user_id
            && r.connector_id == connector
    });
    if duplicate {
        return Err(RestError::new(
            400,
            "ERROR_CORE",
            "Unable to set event handler: Handler already binded",
        ));
    }
    if long && state.config.strict.long_handler == LongHandler::SqlError {
        return Err(RestError::new(500, "ERROR_CORE", "SQL query error!"));
    }
    let row = state.insert_row(Row {
        id: 0,
        app_id,
        event,
        handler,
        user_id,
        connector_id: connector,
        options,
    });
    state.mutations.push(Mutation {
        request,
        method: "event.bind".into(),
        kind: MutationKind::Insert,
        row,
    });
    Ok(Php::Bool(true))
}

fn event_unbind(
    state: &mut State,
    caller: &Caller,
    request: usize,
    raw: &Php,
) -> Result<Php, RestError> {
    require_oauth(caller)?;
    let params = raw.keys_upper();
    let event = string_param(&params, "EVENT").to_uppercase();
    if event.is_empty() {
        return Err(RestError::null_argument("EVENT"));
    }
    let kind = event_type(&params)?;
    let app_id = state.config.app_id;
    let removed: Vec<Row> = if kind == EventType::Offline {
        if !caller.admin {
            return Err(RestError::access_denied(
                "Offline events unbinding requires administrator access rights",
            ));
        }
        let connector = caller.connector.clone();
        take_rows(state, |_, r| {
            r.app_id == app_id
                && r.event == event
                && r.handler.is_empty()
                && r.connector_id == connector
        })
    } else {
        let handler = string_param(&params, "HANDLER");
        if handler.is_empty() {
            return Err(RestError::null_argument("HANDLER"));
        }
        let auth_type = isset(&params, "AUTH_TYPE");
        let user: Option<i64> = match (auth_type, caller.admin) {
            (Some(value), true) => Some(value.intval()),
            (None, true) => None,
            // A strict comparison with the caller's integer id: only a JSON integer passes.
            (Some(value), false) => {
                if *value != Php::Int(caller.user_id as i64) {
                    return Err(RestError::access_denied(
                        "Event unbinding with AUTH_TYPE requires administrator access rights",
                    ));
                }
                Some(caller.user_id as i64)
            }
            (None, false) => Some(caller.user_id as i64),
        };
        take_rows(state, |s, r| {
            r.app_id == app_id
                && r.event == event
                && same_handler(s, &r.handler, &handler)
                && user.is_none_or(|u| r.user_id as i64 == u)
        })
    };
    let count = removed.len() as i64;
    for row in removed {
        state.mutations.push(Mutation {
            request,
            method: "event.unbind".into(),
            kind: MutationKind::Delete,
            row,
        });
    }
    Ok(Php::obj([("count", Php::Int(count))]))
}

fn take_rows(state: &mut State, keep_out: impl Fn(&State, &Row) -> bool) -> Vec<Row> {
    let (out, kept): (Vec<Row>, Vec<Row>) = state
        .rows
        .clone()
        .into_iter()
        .partition(|r| keep_out(state, r));
    state.rows = kept;
    out
}

fn event_get(state: &mut State, caller: &Caller) -> Result<Php, RestError> {
    require_oauth(caller)?;
    let app_id = state.config.app_id;
    let items = state
        .rows
        .iter()
        .filter(|r| r.app_id == app_id && (caller.admin || r.user_id == caller.user_id))
        .map(|r| {
            if r.handler.is_empty() {
                Php::obj([
                    ("event", Php::str(r.event.clone())),
                    ("connector_id", Php::str(r.connector_id.clone())),
                    ("offline", Php::Int(1)),
                ])
            } else {
                Php::obj([
                    ("event", Php::str(r.event.clone())),
                    ("handler", Php::str(r.handler.clone())),
                    ("auth_type", Php::str(r.user_id.to_string())),
                    ("offline", Php::Int(0)),
                ])
            }
        });
    Ok(Php::list(items))
}

fn events(state: &mut State, caller: &Caller, raw: &Php) -> Result<Php, RestError> {
    require_oauth(caller)?;
    let params = raw.keys_upper();
    let names = if let Some(scope) = isset(&params, "SCOPE") {
        state.config.events.scope(&scope.to_php_string())
    } else if params.get("FULL").is_some_and(Php::truthy) {
        state.config.events.all()
    } else {
        let scopes = state.config.scopes.clone();
        state.config.events.for_scopes(&scopes)
    };
    Ok(Php::list(names.into_iter().map(Php::Str)))
}

fn profile(caller: &Caller) -> Php {
    Php::obj([
        ("ID", Php::str(caller.user_id.to_string())),
        ("ADMIN", Php::Bool(caller.admin)),
        ("NAME", Php::str("Emulated")),
        ("LAST_NAME", Php::str(format!("User {}", caller.user_id))),
        ("PERSONAL_GENDER", Php::str("")),
        ("TIME_ZONE", Php::str("")),
        ("TIME_ZONE_OFFSET", Php::Int(0)),
    ])
}

fn app_info(state: &State) -> Php {
    Php::obj([
        ("ID", Php::str(state.config.app_id.to_string())),
        ("CODE", Php::str(state.config.app_code.clone())),
        ("VERSION", Php::Int(1)),
        ("STATUS", Php::str("L")),
        ("INSTALLED", Php::Bool(state.config.app_installed)),
        ("PAYMENT_EXPIRED", Php::str("N")),
        ("DAYS", Php::Null),
        ("LICENSE", Php::str("en_project")),
    ])
}

/// Replaces `$result[key][field]...` in string values with earlier sub-call results.
fn substitute(value: &Php, results: &Php) -> Php {
    match value {
        Php::Str(s) if s.contains("$result[") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(at) = rest.find("$result[") {
                out.push_str(&rest[..at]);
                let mut cursor = &rest[at + "$result".len()..];
                let mut node = Some(results);
                let mut consumed = false;
                while let Some(inner) = cursor.strip_prefix('[') {
                    let Some(close) = inner.find(']') else { break };
                    node = node.and_then(|n| n.get(&inner[..close]));
                    cursor = &inner[close + 1..];
                    consumed = true;
                }
                match node {
                    Some(found) if consumed => {
                        if let Php::Arr(_) = found
                            && out.is_empty()
                            && cursor.is_empty()
                        {
                            return found.clone();
                        }
                        out.push_str(&found.to_php_string());
                    }
                    // An unresolved placeholder stays as written.
                    _ => out.push_str(&rest[at..rest.len() - cursor.len()]),
                }
                rest = cursor;
            }
            out.push_str(rest);
            Php::Str(out)
        }
        Php::Arr(items) => Php::Arr(
            items
                .iter()
                .map(|(k, v)| (k.clone(), substitute(v, results)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn batch(state: &mut State, caller: &Caller, request: usize, raw: &Php) -> Result<Php, RestError> {
    let params = raw.keys_upper();
    let halt = params.get("HALT").is_some_and(Php::truthy);
    let mut result = Php::arr();
    let mut result_error = Php::arr();
    let mut result_time = Php::arr();
    let commands = params
        .get("CMD")
        .map(|c| c.entries().to_vec())
        .unwrap_or_default();
    for (index, (key, command)) in commands.iter().enumerate() {
        let Php::Str(command) = command else { continue };
        let start = unix_now();
        let outcome = if index >= MAX_BATCH {
            Err(RestError::new(
                400,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded",
            ))
        } else {
            let (path, query) = command.split_once('?').unwrap_or((command, ""));
            let method = path.trim_start_matches('/').to_lowercase();
            let sub_params = substitute(&parse_str(query), &result);
            if matches!(method.as_str(), "batch" | "upload" | "download") {
                Err(RestError::new(
                    400,
                    "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "Method is not allowed for batch usage",
                ))
            } else {
                call(state, caller, request, &method, &sub_params).map(|r| (r, method))
            }
        };
        match outcome {
            Ok((value, method)) => {
                let finish = unix_now();
                let operating = state.operating(&method);
                result.set(key, value);
                result_time.set(key, time_block(start, finish, finish - start, operating));
            }
            Err(error) => {
                result_error.set(key, error.body());
                if halt {
                    break;
                }
            }
        }
    }
    Ok(Php::obj([
        ("result", result),
        ("result_error", result_error),
        ("result_total", Php::arr()),
        ("result_next", Php::arr()),
        ("result_time", result_time),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_checks_follow_parse_url() {
        let code = |h: &str| check_handler(h).err().map(|e| e.code);
        assert_eq!(code("https://a.b/x"), None);
        assert_eq!(code("http://127.0.0.1:8080/x"), None);
        assert_eq!(code("https://u:p@hooks.example.com/b24?a=1"), None);
        assert_eq!(
            code("http://localhost:8080/").as_deref(),
            Some("ERROR_WRONG_HANDLER_URL")
        );
        assert_eq!(
            code("example.com/x").as_deref(),
            Some("ERROR_WRONG_HANDLER_URL")
        );
        assert_eq!(
            code("https://.com/x").as_deref(),
            Some("ERROR_WRONG_HANDLER_URL")
        );
        assert_eq!(
            code("HTTPS://a.b/x").as_deref(),
            Some("ERROR_UNSUPPORTED_PROTOCOL")
        );
        assert_eq!(
            code("ftp://a.b/x").as_deref(),
            Some("ERROR_UNSUPPORTED_PROTOCOL")
        );
        assert_eq!(
            code("//a.b/x").as_deref(),
            Some("ERROR_UNSUPPORTED_PROTOCOL")
        );
    }

    #[test]
    fn placeholders_resolve_against_earlier_results() {
        let results = Php::obj([("u", Php::obj([("ID", Php::str("5"))]))]);
        let v = substitute(&Php::str("x$result[u][ID]y$result[zz]"), &results);
        assert_eq!(v, Php::str("x5y$result[zz]"));
    }
}
