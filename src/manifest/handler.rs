//! Handler URL rules: what the portal's `event.bind` accepts, checked before any call is made.
//!
//! The portal splits the URL with PHP's `parse_url` and then wants a host with a dot at a
//! position > 0 and a scheme of exactly `http` or `https`. The host extraction below follows
//! `parse_url` (userinfo before the last `@`, a `:port` suffix, `[...]` IPv6 literals kept with
//! their brackets), so a handler we accept is one the portal accepts. Handlers are never
//! re-serialised: the portal compares them byte for byte.

/// The portal stores handlers in a 255-character column.
pub const MAX_HANDLER_CHARS: usize = 255;

/// A handler that the portal would refuse, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) message: String,
    pub(crate) help: String,
}

fn reject(message: String, help: impl Into<String>) -> Rejection {
    Rejection {
        message,
        help: help.into(),
    }
}

/// Whether `text` looks like `scheme://…` (any case, so the scheme check can complain).
pub(crate) fn has_scheme(text: &str) -> bool {
    text.find("://").is_some_and(|p| {
        p > 0
            && text[..p]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Checks an absolute handler URL. `Ok(true)` means it is accepted but uses plain `http`.
pub(crate) fn check_absolute(url: &str) -> Result<bool, Rejection> {
    if url.is_empty() {
        return Err(reject(
            "handler is empty".into(),
            "write an absolute https:// URL, or a path starting with / joined to [defaults].handler_base",
        ));
    }
    let Some(sep) = url.find("://").filter(|_| has_scheme(url)) else {
        return Err(reject(
            format!("handler `{url}` is not an absolute URL"),
            "write it as https://host/path, or as a path starting with / joined to [defaults].handler_base",
        ));
    };
    let scheme = &url[..sep];
    let plain_http = match scheme {
        "https" => false,
        "http" => true,
        _ if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") => {
            return Err(reject(
                format!("handler scheme `{scheme}` must be lower case"),
                format!(
                    "write `{}://…`: the portal compares the scheme case-sensitively and refuses anything else",
                    scheme.to_ascii_lowercase()
                ),
            ));
        }
        _ => {
            return Err(reject(
                format!("handler scheme `{scheme}` is not supported"),
                "the portal only calls http:// and https:// handlers; use https://",
            ));
        }
    };
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(reject(
            format!("handler `{url}` contains {}", describe_char(c)),
            "percent-encode it (a space is %20) or remove it",
        ));
    }
    let host = host_of(&url[sep + 3..]).map_err(|why| {
        reject(
            format!("handler `{url}` has {why}"),
            "write it as https://host/path with a valid host and an optional numeric port",
        )
    })?;
    if host.find('.').is_none_or(|p| p == 0) {
        return Err(reject(
            format!("handler host `{host}` has no dot; the portal refuses such hosts"),
            "use a public host name such as app.example.com (localhost and dot-less names are refused; 127.0.0.1 works for local tests)",
        ));
    }
    let chars = url.chars().count();
    if chars > MAX_HANDLER_CHARS {
        return Err(reject(
            format!(
                "handler is {chars} characters long; the portal stores at most {MAX_HANDLER_CHARS}"
            ),
            "shorten the URL (for example move query parameters into the path or the app's settings)",
        ));
    }
    Ok(plain_http)
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        '\n' | '\r' => "a line break".into(),
        c => format!("the character U+{:04X}", c as u32),
    }
}

/// The host as PHP's `parse_url` reports it, from the part after `scheme://`.
fn host_of(rest: &str) -> Result<&str, &'static str> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if hostport.starts_with('[') && hostport.ends_with(']') {
        hostport
    } else {
        match hostport.rfind(':') {
            Some(colon) => {
                let port = &hostport[colon + 1..];
                let valid = port.is_empty()
                    || (port.len() <= 5
                        && port.bytes().all(|b| b.is_ascii_digit())
                        && port.parse::<u32>().is_ok_and(|p| p <= 65535));
                if !valid {
                    return Err("an invalid port");
                }
                &hostport[..colon]
            }
            None => hostport,
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    Ok(host)
}

/// Joins a `/path` handler to the base with exactly one slash between them.
pub(crate) fn join(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    let mut out = String::with_capacity(base.len() + 1 + path.len());
    out.push_str(base);
    out.push('/');
    out.push_str(path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_host_rules() {
        assert_eq!(check_absolute("https://app.example.com/b24"), Ok(false));
        assert_eq!(check_absolute("http://127.0.0.1:8080/x"), Ok(true));
        assert_eq!(check_absolute("https://a.b"), Ok(false));
        assert_eq!(check_absolute("https://user:pw@a.b:443/x?y#z"), Ok(false));
        assert_eq!(check_absolute("https://[::ffff:1.2.3.4]:8443/x"), Ok(false));
        assert!(check_absolute("https://localhost/x").is_err());
        assert!(check_absolute("http://localhost:8080/").is_err());
        assert!(check_absolute("https://.example/x").is_err());
        assert!(check_absolute("https://[::1]/x").is_err());
        assert!(check_absolute("https://a.b:99999/x").is_err());
        assert!(check_absolute("https://a.b:8o/x").is_err());
        assert!(check_absolute("https:///x.y").is_err());
        // The dot in the userinfo does not count: the host is what follows the last `@`.
        assert!(check_absolute("https://a.b@localhost/x").is_err());
        assert!(check_absolute("example.com/x").is_err());
        assert!(check_absolute("HTTPS://a.b/x").is_err());
        assert!(check_absolute("ftp://a.b/x").is_err());
    }

    #[test]
    fn length_limit_counts_characters() {
        let ok = format!("https://a.b/{}", "ж".repeat(MAX_HANDLER_CHARS - 12));
        assert_eq!(ok.chars().count(), MAX_HANDLER_CHARS);
        assert!(check_absolute(&ok).is_ok());
        let long = format!("{ok}x");
        let err = check_absolute(&long).unwrap_err();
        assert!(err.message.contains("256 characters"), "{}", err.message);
    }

    #[test]
    fn join_uses_exactly_one_slash() {
        assert_eq!(join("https://a.b/b24", "/lead"), "https://a.b/b24/lead");
        assert_eq!(join("https://a.b/b24/", "/lead"), "https://a.b/b24/lead");
        assert_eq!(join("https://a.b", "/"), "https://a.b/");
    }
}
