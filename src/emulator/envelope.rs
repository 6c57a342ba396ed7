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
    let secs = unix.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_date(0.0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso_date(1_721_296_536.9), "2024-07-18T09:55:36+00:00");
        assert_eq!(iso_date(951_782_400.0), "2000-02-29T00:00:00+00:00");
    }
}
