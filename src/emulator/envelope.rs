//! Answer envelopes: the REST error type, the `time` block, and ISO-8601 dates without a
//! date crate.

use super::php::Php;

/// A REST error as the platform answers it: HTTP status, `error`, `error_description`, and extra
/// keys such as `argument`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RestError {
    pub status: u16,
    pub code: String,
    pub description: String,
    pub extra: Vec<(String, Php)>,
}

impl RestError {
    pub fn new(status: u16, code: &str, description: &str) -> RestError {
        RestError {
            status,
            code: code.into(),
            description: description.into(),
            extra: Vec::new(),
        }
    }

    /// `ArgumentNullException`: 400 with `argument`.
    pub fn null_argument(name: &str) -> RestError {
        RestError::new(
            400,
            "ERROR_ARGUMENT",
            &format!("Argument '{name}' is null or empty"),
        )
        .with("argument", Php::str(name))
    }

    pub fn with(mut self, key: &str, value: Php) -> RestError {
        self.extra.push((key.into(), value));
        self
    }

    pub fn access_denied(detail: &str) -> RestError {
        RestError::new(403, "ACCESS_DENIED", &format!("Access denied! {detail}"))
    }

    pub fn wrong_auth_type() -> RestError {
        RestError::new(
            403,
            "WRONG_AUTH_TYPE",
            "Current authorization type is denied for this method",
        )
    }

    pub fn method_not_found() -> RestError {
        RestError::new(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    }

    pub fn query_limit() -> RestError {
        RestError::new(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    }

    pub fn operation_time_limit(reset_at: i64) -> RestError {
        RestError::new(
            429,
            "OPERATION_TIME_LIMIT",
            "Method is blocked due to operation time limit.",
        )
        .with("operating_reset_at", Php::Int(reset_at))
    }

    pub fn server_error() -> RestError {
        RestError::new(500, "INTERNAL_SERVER_ERROR", "Internal server error")
    }

    /// The error envelope: no `time` block.
    pub fn body(&self) -> Php {
        let mut out = Php::obj([
            ("error", Php::str(self.code.clone())),
            ("error_description", Php::str(self.description.clone())),
        ]);
        for (k, v) in &self.extra {
            out.set(k, v.clone());
        }
        out
    }
}

/// The `time` block of a success envelope (and of each `result_time` entry).
pub(crate) fn time_block(
    start: f64,
    finish: f64,
    processing: f64,
    operating: Option<(f64, Option<i64>)>,
) -> Php {
    let mut t = Php::obj([
        ("start", Php::Float(start)),
        ("finish", Php::Float(finish)),
        ("duration", Php::Float(finish - start)),
        ("processing", Php::Float(processing)),
        ("date_start", Php::str(iso_date(start))),
        ("date_finish", Php::str(iso_date(finish))),
    ]);
    if let Some((sum, reset)) = operating {
        if let Some(reset) = reset {
            t.set("operating_reset_at", Php::Int(reset));
        }
        t.set("operating", Php::Float(sum));
    }
    t
}

/// `2024-07-18T11:55:36+00:00` for a Unix time (the emulated portal runs on UTC).
pub(crate) fn iso_date(unix: f64) -> String {
    crate::timefmt::iso_utc(unix)
}
