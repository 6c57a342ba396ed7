//! PHP's view of request data: ordered arrays, `parse_str`, `intval`, `(bool)` and `Json::encode`.
//!
//! The platform is PHP, so parameter parsing and JSON output follow PHP's rules rather than
//! serde_json's: array order is insertion order (batch keys answer in the order sent), empty
//! arrays are `[]`, and strings are written with `\/` and `\u003C`-style escapes.

use std::fmt::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A PHP value as the platform sees it. Arrays keep insertion order and string keys (PHP turns
/// numeric-string keys into ints, which changes nothing about how they print).
#[derive(Clone, Debug, PartialEq)]
pub enum Php {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<(String, Php)>),
}

impl Php {
    pub fn arr() -> Php {
        Php::Arr(Vec::new())
    }

    pub fn str(s: impl Into<String>) -> Php {
        Php::Str(s.into())
    }

    /// Builds an array from key/value pairs.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Php)>) -> Php {
        Php::Arr(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Builds a list (keys 0, 1, ...).
    pub fn list(items: impl IntoIterator<Item = Php>) -> Php {
        Php::Arr(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&Php> {
        match self {
            Php::Arr(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key`, replacing an existing entry in place (PHP assignment keeps the position).
    pub fn set(&mut self, key: &str, value: Php) {
        if !matches!(self, Php::Arr(_)) {
            *self = Php::arr();
        }
        if let Php::Arr(items) = self {
            match items.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => items.push((key.to_string(), value)),
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Php> {
        match self {
            Php::Arr(items) => {
                let at = items.iter().position(|(k, _)| k == key)?;
                Some(items.remove(at).1)
            }
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Php)] {
        match self {
            Php::Arr(items) => items,
            _ => &[],
        }
    }

    /// `array_change_key_case` on the top level; a later duplicate wins, as in PHP.
    pub fn keys_upper(&self) -> Php {
        let mut out = Php::arr();
        for (k, v) in self.entries() {
            out.set(&k.to_uppercase(), v.clone());
        }
        out
    }

    /// PHP's string conversion for scalars; arrays become "" (PHP would say "Array" with a
    /// warning, which no event parameter relies on).
    pub fn to_php_string(&self) -> String {
        match self {
            Php::Null => String::new(),
            Php::Bool(true) => "1".into(),
            Php::Bool(false) => String::new(),
            Php::Int(i) => i.to_string(),
            Php::Float(f) => format_float(*f),
            Php::Str(s) => s.clone(),
            Php::Arr(_) => String::new(),
        }
    }

    /// PHP `intval`.
    pub fn intval(&self) -> i64 {
        match self {
            Php::Null => 0,
            Php::Bool(b) => i64::from(*b),
            Php::Int(i) => *i,
            Php::Float(f) => {
                if f.is_finite() {
                    f.trunc() as i64
                } else {
                    0
                }
            }
            Php::Str(s) => intval_str(s),
            Php::Arr(items) => i64::from(!items.is_empty()),
        }
    }

    /// PHP `(bool)`: `0`, `"0"`, `""`, `0.0`, null and `[]` are false; the string "false" is true.
    pub fn truthy(&self) -> bool {
        match self {
            Php::Null => false,
            Php::Bool(b) => *b,
            Php::Int(i) => *i != 0,
            Php::Float(f) => *f != 0.0,
            Php::Str(s) => !(s.is_empty() || s == "0"),
            Php::Arr(items) => !items.is_empty(),
        }
    }

    /// For the journal: a plain JSON view (order of keys may change).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Php::Null => Value::Null,
            Php::Bool(b) => Value::Bool(*b),
            Php::Int(i) => Value::from(*i),
            Php::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Php::Str(s) => Value::String(s.clone()),
            Php::Arr(items) => Value::Object(
                items
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// `Bitrix\Main\Web\Json::encode` with its default flags.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode_into(self, &mut out);
        out
    }
}

fn intval_str(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut value: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        // PHP saturates at PHP_INT_MAX / PHP_INT_MIN.
        value = value.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg { value.saturating_neg() } else { value }
}

/// PHP 7.1+ float output (`serialize_precision = -1`): shortest round-trip form, and a float
/// that happens to be whole keeps its `.0`.
pub fn format_float(f: f64) -> String {
    if !f.is_finite() {
        return "0".into();
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn is_list(items: &[(String, Php)]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, (k, _))| k.parse::<usize>().ok() == Some(i) && *k == i.to_string())
}

fn encode_into(v: &Php, out: &mut String) {
    match v {
        Php::Null => out.push_str("null"),
        Php::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Php::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Php::Float(f) => out.push_str(&format_float(*f)),
        Php::Str(s) => encode_str(s, out),
        Php::Arr(items) if is_list(items) => {
            out.push('[');
            for (i, (_, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_into(item, out);
            }
            out.push(']');
        }
        Php::Arr(items) => {
            out.push('{');
            for (i, (k, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_str(k, out);
                out.push(':');
                encode_into(item, out);
            }
            out.push('}');
        }
    }
}

fn encode_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\u0022"),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '\'' => out.push_str("\\u0027"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Percent-decoding as PHP's `urldecode`: `+` is a space, malformed escapes stay as they are.
pub fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// PHP `parse_str`: `a=1&b[c]=2&b[d][]=3` into nested ordered arrays.
pub fn parse_str(query: &str) -> Php {
    let mut root = Php::arr();
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = urldecode(raw_key);
        let value = urldecode(raw_value);
        let (base, path) = split_brackets(&key);
        if base.is_empty() {
            continue;
        }
        insert_path(&mut root, &base, &path, Php::Str(value));
    }
    root
}

/// Splits `name[a][b][]` into `name` and `[Some("a"), Some("b"), None]`. PHP turns `.` and
/// spaces in the base name into `_`, and ignores anything after a stray bracket.
fn split_brackets(key: &str) -> (String, Vec<Option<String>>) {
    let Some(open) = key.find('[') else {
        return (key.replace(['.', ' '], "_"), Vec::new());
    };
    let base = key[..open].replace(['.', ' '], "_");
    let mut path = Vec::new();
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            if path.is_empty() {
                // An unclosed first bracket makes the whole thing a plain name, '[' becoming '_'.
                return (
                    key.replacen('[', "_", 1).replace(['.', ' '], "_"),
                    Vec::new(),
                );
            }
            break;
        };
        let inner = &stripped[..close];
        path.push(if inner.is_empty() {
            None
        } else {
            Some(inner.to_string())
        });
        rest = &stripped[close + 1..];
    }
    (base, path)
}

fn next_index(items: &[(String, Php)]) -> String {
    let max = items
        .iter()
        .filter_map(|(k, _)| k.parse::<i64>().ok())
        .max();
    match max {
        Some(m) if m >= 0 => (m + 1).to_string(),
        _ => "0".into(),
    }
}

fn insert_path(node: &mut Php, key: &str, path: &[Option<String>], value: Php) {
    if path.is_empty() {
        node.set(key, value);
        return;
    }
    let mut child = match node.get(key) {
        Some(existing @ Php::Arr(_)) => existing.clone(),
        _ => Php::arr(),
    };
    let next_key = match &path[0] {
        Some(k) => k.clone(),
        None => next_index(child.entries()),
    };
    insert_path(&mut child, &next_key, &path[1..], value);
    node.set(key, child);
}

impl<'de> Deserialize<'de> for Php {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Php, D::Error> {
        deserializer.deserialize_any(PhpVisitor)
    }
}

struct PhpVisitor;

impl<'de> Visitor<'de> for PhpVisitor {
    type Value = Php;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Php, E> {
        Ok(Php::Null)
    }
    fn visit_none<E>(self) -> Result<Php, E> {
        Ok(Php::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Php, E> {
        Ok(Php::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Php, E> {
        Ok(Php::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Php, E> {
        // PHP's json_decode turns integers past PHP_INT_MAX into floats.
        Ok(i64::try_from(v).map_or(Php::Float(v as f64), Php::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Php, E> {
        Ok(Php::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Php, E> {
        Ok(Php::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Php, E> {
        Ok(Php::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Php, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Php>()? {
            items.push((items.len().to_string(), v));
        }
        Ok(Php::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Php, A::Error> {
        let mut out = Php::arr();
        while let Some((k, v)) = map.next_entry::<String, Php>()? {
            out.set(&k, v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_str_nests_brackets_in_order() {
        let p = parse_str("cmd[b]=x%3Fa%3D1&cmd[a]=y&options[minTimeout]=5&l[]=1&l[]=2&a.b=3");
        assert_eq!(
            p.encode(),
            r#"{"cmd":{"b":"x?a=1","a":"y"},"options":{"minTimeout":"5"},"l":["1","2"],"a_b":"3"}"#
        );
    }

    #[test]
    fn encode_escapes_like_php() {
        let v = Php::obj([
            ("h", Php::str("https://x.example/h?a=1&b=<'\">")),
            ("e", Php::arr()),
        ]);
        assert_eq!(
            v.encode(),
            r#"{"h":"https:\/\/x.example\/h?a=1\u0026b=\u003C\u0027\u0022\u003E","e":[]}"#
        );
        assert_eq!(Php::Float(2.0).encode(), "2.0");
    }

    #[test]
    fn intval_and_truthiness_follow_php() {
        assert_eq!(Php::str(" 12abc").intval(), 12);
        assert_eq!(Php::str("abc").intval(), 0);
        assert_eq!(Php::str("-3").intval(), -3);
        assert!(Php::str("false").truthy());
        assert!(!Php::str("0").truthy());
        assert!(!Php::str("").truthy());
    }

    #[test]
    fn json_objects_keep_order() {
        let v: Php = serde_json::from_str(r#"{"z":1,"a":[true,null],"m":{"k":"v"}}"#).unwrap();
        assert_eq!(v.encode(), r#"{"z":1,"a":[true,null],"m":{"k":"v"}}"#);
    }
}
