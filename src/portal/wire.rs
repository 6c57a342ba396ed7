//! The portal's wire format: encoding our operations as REST parameters and decoding answers.
//!
//! Decoding is tolerant where the platform is known to vary (`auth_type` as string or number,
//! PHP's `[]` for an empty map) and strict where a wrong guess would corrupt a plan.

use serde_json::{Map, Value, json};
use url::form_urlencoded;

use crate::model::{BindingKey, Caller, Target};
use crate::portal::{AppStatus, Op, Outcome};

/// Parameters of an op as a JSON object, for a direct call. Integers stay integers: the portal
/// compares a non-admin's unbind `auth_type` strictly against an integer.
pub fn op_params(op: &Op) -> (&'static str, Map<String, Value>) {
    let mut p = Map::new();
    match op {
        Op::Bind(b) => {
            p.insert("event".into(), json!(b.key.event));
            match &b.key.target {
                Target::Online { handler, auth_type } => {
                    p.insert("handler".into(), json!(handler));
                    p.insert("auth_type".into(), json!(auth_type));
                    p.insert("event_type".into(), json!("online"));
                    if let Some(c) = &b.auth_connector {
                        p.insert("auth_connector".into(), json!(c));
                    }
                }
                Target::Offline { connector } => {
                    p.insert("event_type".into(), json!("offline"));
                    if !connector.is_empty() {
                        p.insert("auth_connector".into(), json!(connector));
                    }
                }
            }
            if !b.options.is_empty() {
                let options: Map<String, Value> = b
                    .options
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                p.insert("options".into(), Value::Object(options));
            }
            ("event.bind", p)
        }
        Op::Unbind(key) => {
            p.insert("event".into(), json!(key.event));
            match &key.target {
                Target::Online { handler, auth_type } => {
                    p.insert("handler".into(), json!(handler));
                    p.insert("auth_type".into(), json!(auth_type));
                    p.insert("event_type".into(), json!("online"));
                }
                Target::Offline { connector } => {
                    p.insert("event_type".into(), json!("offline"));
                    if !connector.is_empty() {
                        p.insert("auth_connector".into(), json!(connector));
                    }
                }
            }
            ("event.unbind", p)
        }
    }
}

/// Whether an op can travel inside `batch`. A sub-call's parameters come from its query string,
/// so they are strings, and the auth layer is not run again for it. Two of our ops need more:
/// - `auth_connector` is read by the portal from the auth layer, not from method parameters;
///   inside a batch it may be dropped, binding the wrong queue. Sent directly it works under both
///   readings of the platform.
/// - a non-admin's unbind with `auth_type` passes only if that value is a JSON integer.
pub fn batchable(op: &Op, caller: Option<Caller>) -> bool {
    let connector = match op {
        Op::Bind(b) => {
            b.auth_connector.is_some() || b.key.connector().is_some_and(|c| !c.is_empty())
        }
        Op::Unbind(k) => k.connector().is_some_and(|c| !c.is_empty()),
    };
    let non_admin_unbind = matches!(op, Op::Unbind(_)) && caller.is_some_and(|c| !c.admin);
    !connector && !non_admin_unbind
}

/// `method?query` for a batch command, values form-encoded (the portal parses it with
/// `parse_str`, so a handler containing `&` must be encoded).
pub fn batch_command(method: &str, params: &Map<String, Value>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        match v {
            Value::Object(inner) => {
                for (ik, iv) in inner {
                    query.append_pair(&format!("{k}[{ik}]"), &scalar(iv));
                }
            }
            other => {
                query.append_pair(k, &scalar(other));
            }
        }
    }
    format!("{method}?{}", query.finish())
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "1".into(),
        Value::Bool(false) => "0".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An entry of one of batch's maps. PHP sends an empty map as `[]` and a map with keys
/// 0..n as a JSON array, so both shapes are looked up.
pub fn batch_entry<'a>(map: Option<&'a Value>, key: &str, index: usize) -> Option<&'a Value> {
    match map? {
        Value::Object(m) => m.get(key).or_else(|| m.get(&index.to_string())),
        Value::Array(items) => {
            if key.parse::<usize>().is_ok() {
                items.get(index)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The outcome of a bind or unbind from its result or error.
pub fn outcome_from_result(op: &Op, result: &Value) -> Outcome {
    match op {
        Op::Bind(_) => match result {
            Value::Bool(true) => Outcome::Done,
            other if truthy(other) => Outcome::Done,
            other => Outcome::Failed {
                code: "UNEXPECTED_RESULT".into(),
                description: format!("event.bind answered {}", short(other)),
            },
        },
        Op::Unbind(_) => match result.get("count").and_then(as_u64) {
            Some(0) => Outcome::AlreadySo,
            Some(_) => Outcome::Done,
            None => Outcome::Unknown {
                reason: format!("event.unbind answered {}", short(result)),
            },
        },
    }
}

/// Maps a portal error on a mutation to an outcome. "Already binded" means the portal already
/// is as wanted; a parallel identical bind in progress will land by itself, so it is unknown
/// until the read-back settles it.
pub fn outcome_from_error(op: &Op, code: &str, description: &str) -> Outcome {
    let bind = matches!(op, Op::Bind(_));
    if bind
        && (code == "ERROR_EVENT_BINDING_EXISTS"
            || (code == "ERROR_CORE" && description.contains("already binded")))
    {
        return Outcome::AlreadySo;
    }
    if bind && code == "ERROR_CORE" && description.contains("already started") {
        return Outcome::Unknown {
            reason: format!("{code}: {description}"),
        };
    }
    Outcome::Failed {
        code: code.to_owned(),
        description: description.to_owned(),
    }
}

/// Decodes `event.get` rows into identities.
pub fn decode_bindings(value: &Value) -> Result<Vec<BindingKey>, String> {
    let rows = match value {
        Value::Array(rows) => rows.as_slice(),
        // PHP may send a list with holes as an object keyed by index.
        Value::Object(m) if m.is_empty() => &[],
        Value::Object(_) => {
            return decode_bindings(&Value::Array(
                value
                    .as_object()
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default(),
            ));
        }
        other => {
            return Err(format!(
                "event.get returned {} instead of a list",
                kind(other)
            ));
        }
    };
    rows.iter()
        .enumerate()
        .map(|(i, row)| decode_row(row).map_err(|e| format!("event.get row {}: {e}", i + 1)))
        .collect()
}

fn decode_row(row: &Value) -> Result<BindingKey, String> {
    let obj = row
        .as_object()
        .ok_or_else(|| format!("a row is {}, not an object", kind(row)))?;
    let event = obj
        .get("event")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or("the row has no event name")?;
    let offline = obj.get("offline").is_some_and(truthy);
    let handler = obj.get("handler").and_then(Value::as_str).unwrap_or("");
    if offline || (handler.is_empty() && obj.contains_key("connector_id")) {
        let connector = obj.get("connector_id").map(scalar).unwrap_or_default();
        return Ok(BindingKey::offline(event, &connector));
    }
    if handler.is_empty() {
        return Err(format!("the online row for {event} has no handler"));
    }
    // The platform sends auth_type as a string ("0", "15"); accept a number too, and treat
    // empty or null as 0, as the platform does.
    let auth_type = match obj.get("auth_type") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.trim().is_empty() => 0,
        Some(v) => as_u64(v).ok_or_else(|| {
            format!(
                "the row for {event} has auth_type {}, not a user id",
                short(v)
            )
        })?,
    };
    Ok(BindingKey::online(event, handler, auth_type))
}

/// Decodes the `events` list.
pub fn decode_events(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_uppercase)
            .collect()),
        Value::Object(m) => Ok(m
            .values()
            .filter_map(Value::as_str)
            .map(str::to_ascii_uppercase)
            .collect()),
        other => Err(format!("events returned {}", kind(other))),
    }
}

/// Builds the caller from `user.admin` and `profile`.
pub fn decode_caller(admin: Option<&Value>, profile: Option<&Value>) -> Caller {
    let admin = admin
        .map(truthy)
        .or_else(|| profile.and_then(|p| p.get("ADMIN")).map(truthy))
        .unwrap_or(false);
    let user_id = profile
        .and_then(|p| p.get("ID"))
        .and_then(as_u64)
        .unwrap_or(0);
    Caller { user_id, admin }
}

/// Decodes `app.info`.
pub fn decode_app(value: Option<&Value>) -> AppStatus {
    let Some(v) = value else {
        return AppStatus::default();
    };
    AppStatus {
        installed: v.get("INSTALLED").map(truthy),
        code: v.get("CODE").map(scalar).filter(|s| !s.is_empty()),
        version: v.get("VERSION").map(scalar).filter(|s| !s.is_empty()),
    }
}

pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// PHP truthiness for the values the portal uses as flags: true, 1, "1", "Y".
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.as_str(), "1" | "Y" | "y" | "true"),
        _ => false,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Binding;

    #[test]
    fn decodes_the_documented_shapes() {
        let v: Value = serde_json::from_str(
            r#"[{"event":"ONAPPINSTALL","handler":"https:\/\/app.example.com\/install.php","auth_type":"0","offline":0},
                {"event":"ONCRMLEADADD","handler":"https:\/\/hooks.example.com\/b24","auth_type":"15","offline":0},
                {"event":"ONCRMDEALUPDATE","connector_id":"sync1","offline":1},
                {"event":"onCrmLeadAdd","handler":"https://h.example/x","auth_type":7,"offline":0,"extra":"ok"}]"#,
        )
        .unwrap();
        let keys = decode_bindings(&v).unwrap();
        assert_eq!(
            keys[0],
            BindingKey::online("ONAPPINSTALL", "https://app.example.com/install.php", 0)
        );
        assert_eq!(
            keys[1],
            BindingKey::online("ONCRMLEADADD", "https://hooks.example.com/b24", 15)
        );
        assert_eq!(keys[2], BindingKey::offline("ONCRMDEALUPDATE", "sync1"));
        assert_eq!(
            keys[3],
            BindingKey::online("ONCRMLEADADD", "https://h.example/x", 7)
        );
        assert_eq!(decode_bindings(&json!([])).unwrap(), vec![]);
    }

    #[test]
    fn rejects_what_would_corrupt_a_plan() {
        assert!(
            decode_bindings(&json!("<html>"))
                .unwrap_err()
                .contains("a string")
        );
        assert!(
            decode_bindings(&json!([{"handler": "x"}]))
                .unwrap_err()
                .contains("no event")
        );
        assert!(
            decode_bindings(&json!([{"event": "E", "offline": 0}]))
                .unwrap_err()
                .contains("no handler")
        );
        assert!(
            decode_bindings(&json!([{"event": "E", "handler": "h", "auth_type": "x"}]))
                .unwrap_err()
                .contains("auth_type")
        );
    }

    #[test]
    fn batch_commands_encode_values() {
        let mut b = Binding::new(BindingKey::online(
            "ONOFFLINEEVENT",
            "https://h.example/a?x=1&y=2",
            0,
        ));
        b.options.insert("minTimeout".into(), "30".into());
        let (method, params) = op_params(&Op::Bind(b));
        let cmd = batch_command(method, &params);
        assert_eq!(
            cmd,
            "event.bind?auth_type=0&event=ONOFFLINEEVENT&event_type=online&handler=https%3A%2F%2Fh.example%2Fa%3Fx%3D1%26y%3D2&options%5BminTimeout%5D=30"
        );
    }

    #[test]
    fn unbind_always_names_auth_type_and_type() {
        let (_, p) = op_params(&Op::Unbind(BindingKey::online(
            "E",
            "https://h.example/",
            0,
        )));
        assert_eq!(p["auth_type"], json!(0));
        assert_eq!(p["event_type"], json!("online"));
        let (_, p) = op_params(&Op::Unbind(BindingKey::offline("E", "erp")));
        assert_eq!(p["event_type"], json!("offline"));
        assert_eq!(p["auth_connector"], json!("erp"));
    }

    #[test]
    fn what_goes_in_a_batch() {
        let admin = Some(Caller {
            user_id: 1,
            admin: true,
        });
        let user = Some(Caller {
            user_id: 5,
            admin: false,
        });
        let online = Op::Bind(Binding::new(BindingKey::online(
            "E",
            "https://h.example/",
            0,
        )));
        let offline = Op::Bind(Binding::new(BindingKey::offline("E", "erp")));
        let unbind = Op::Unbind(BindingKey::online("E", "https://h.example/", 5));
        assert!(batchable(&online, admin));
        assert!(!batchable(&offline, admin));
        assert!(batchable(&unbind, admin));
        assert!(!batchable(&unbind, user));
    }

    #[test]
    fn error_mapping() {
        let bind = Op::Bind(Binding::new(BindingKey::online(
            "E",
            "https://h.example/",
            0,
        )));
        assert_eq!(
            outcome_from_error(
                &bind,
                "ERROR_CORE",
                "Unable to set event handler: Handler already binded"
            ),
            Outcome::AlreadySo
        );
        assert_eq!(
            outcome_from_error(&bind, "ERROR_EVENT_BINDING_EXISTS", ""),
            Outcome::AlreadySo
        );
        assert!(matches!(
            outcome_from_error(
                &bind,
                "ERROR_CORE",
                "Unable to set event handler: Process of binding the handler has already started"
            ),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            outcome_from_error(&bind, "ERROR_EVENT_NOT_FOUND", "Event not found"),
            Outcome::Failed { .. }
        ));
        let unbind = Op::Unbind(BindingKey::online("E", "https://h.example/", 0));
        assert_eq!(
            outcome_from_result(&unbind, &json!({"count": 0})),
            Outcome::AlreadySo
        );
        assert_eq!(
            outcome_from_result(&unbind, &json!({"count": 2})),
            Outcome::Done
        );
    }

    #[test]
    fn php_maps_in_either_shape() {
        let arr = json!([true, false]);
        assert_eq!(batch_entry(Some(&arr), "1", 1), Some(&json!(false)));
        let obj = json!({"c001": true});
        assert_eq!(batch_entry(Some(&obj), "c001", 1), Some(&json!(true)));
        assert_eq!(batch_entry(Some(&json!([])), "c001", 1), None);
    }
}
