//! Which portal to talk to: checking a user-given portal URL before any request is sent.

use std::net::IpAddr;

use url::Url;

/// A portal's REST base, `https://host[:port]/rest/`. Holds no credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    rest: Url,
}

impl Endpoint {
    /// Accepts `https://x.bitrix24.ru`, with or without a trailing `/rest/`. Plain `http://` is
    /// accepted only for loopback addresses (the emulator): anything else would send tokens in
    /// clear text. A webhook URL (`/rest/<user>/<code>/`) is refused: event methods answer
    /// WRONG_AUTH_TYPE to webhooks, so only an application's OAuth token can work.
    pub fn parse(input: &str) -> Result<Endpoint, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("the portal URL is empty; give it as --portal https://your.bitrix24.com or B24_PORTAL".into());
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let url = Url::parse(&with_scheme)
            .map_err(|e| format!("the portal URL {trimmed:?} is not a valid URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the portal URL must not contain a user name or password".into());
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("the portal URL {trimmed:?} has no host"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(format!(
                    "refusing plain http:// for {host}: tokens would travel unencrypted; use https:// \
                     (http is allowed only for loopback addresses such as the built-in emulator)"
                ));
            }
            other => {
                return Err(format!(
                    "the portal URL must start with https:// (got {other}://)"
                ));
            }
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        match segments.as_slice() {
            [] | ["rest"] => {}
            ["rest", _user, _code, ..] => {
                return Err(
                    "this looks like an incoming webhook URL (/rest/<user>/<code>/); the portal refuses \
                     event.bind, event.unbind and event.get for webhooks (WRONG_AUTH_TYPE). Give the portal \
                     address (https://your.bitrix24.com) and an application's OAuth token \
                     (B24_ACCESS_TOKEN or --auth-file)"
                        .into(),
                );
            }
            _ => {
                return Err(format!(
                    "the portal URL should be the portal's address, like https://your.bitrix24.com \
                     (got path {:?})",
                    url.path()
                ));
            }
        }
        let mut rest = url.clone();
        rest.set_path("/rest/");
        rest.set_query(None);
        rest.set_fragment(None);
        Ok(Endpoint { rest })
    }

    /// The URL of one REST method.
    pub fn method_url(&self, method: &str) -> String {
        format!("{}{method}.json", self.rest)
    }

    /// The portal's address for messages and plans, e.g. `https://x.bitrix24.ru`.
    pub fn display(&self) -> String {
        let mut base = self.rest.clone();
        base.set_path("");
        base.as_str().trim_end_matches('/').to_owned()
    }
}

/// Checks a URL that credentials will be sent to (the OAuth token endpoint): https, or plain
/// http to a loopback address only.
pub fn check_secure_url(input: &str) -> Result<(), String> {
    let url =
        Url::parse(input.trim()).map_err(|e| format!("{input:?} is not a valid URL ({e})"))?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        _ => Err(format!(
            "refusing to send credentials to {}: use an https:// URL (http only for loopback addresses)",
            url.origin().ascii_serialization()
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_portal_forms() {
        for input in [
            "https://x.bitrix24.ru",
            "https://x.bitrix24.ru/",
            "https://x.bitrix24.ru/rest/",
            "https://x.bitrix24.ru/rest",
            "x.bitrix24.ru",
        ] {
            let e = Endpoint::parse(input).unwrap();
            assert_eq!(
                e.method_url("batch"),
                "https://x.bitrix24.ru/rest/batch.json"
            );
            assert_eq!(e.display(), "https://x.bitrix24.ru");
        }
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            e.method_url("event.get"),
            "http://127.0.0.1:8080/rest/event.get.json"
        );
        assert!(Endpoint::parse("http://[::1]:9/").is_ok());
        assert!(Endpoint::parse("http://localhost:9/").is_ok());
    }

    #[test]
    fn credential_urls_must_be_secure() {
        assert!(check_secure_url("https://oauth.bitrix.info/oauth/token/").is_ok());
        assert!(check_secure_url("http://127.0.0.1:9/oauth/token/").is_ok());
        assert!(
            check_secure_url("http://oauth.example.com/token")
                .unwrap_err()
                .contains("https://")
        );
        assert!(check_secure_url("not a url").is_err());
    }

    #[test]
    fn refuses_unsafe_or_wrong_urls() {
        let err = Endpoint::parse("http://x.bitrix24.ru").unwrap_err();
        assert!(err.contains("refusing plain http://"), "{err}");
        let err = Endpoint::parse("https://x.bitrix24.ru/rest/1/abcdef/").unwrap_err();
        assert!(err.contains("webhook"), "{err}");
        assert!(
            !err.contains("abcdef"),
            "the webhook code is a secret: {err}"
        );
        let err = Endpoint::parse("ftp://x.bitrix24.ru").unwrap_err();
        assert!(err.contains("https://"), "{err}");
        assert!(Endpoint::parse("https://u:p@x.bitrix24.ru").is_err());
        assert!(Endpoint::parse("").is_err());
        assert!(Endpoint::parse("https://x.bitrix24.ru/crm/").is_err());
    }
}
