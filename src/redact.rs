//! Masking secrets in URLs and free text before anything is shown, logged or saved.
//!
//! Handler URLs often carry credentials (`https://user:pw@host/`, `?token=…`), and Bitrix24
//! webhook URLs carry their secret in the path (`/rest/1/<code>/`). Everything a renderer outputs
//! goes through here. Masking works on the string itself and never re-serialises the URL through a
//! parser: every byte that is not a secret stays as it was, so a masked handler is still
//! recognisable next to the manifest line it came from. Masking errs on the side of hiding: a
//! parameter name that merely contains `key` or `code` is masked too.

use std::fmt;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Parameter names containing any of these (ignoring case, after percent-decoding) are secrets.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "key",
    "sig",
    "password",
    "passwd",
    "pass",
    "auth",
    "signature",
    "apikey",
    "access",
    "refresh",
    "code",
];

/// Nested URLs in parameter values are looked into this many levels deep, no further.
const MAX_DEPTH: u8 = 4;

/// `Display`s a URL with its secrets masked, for use in `format!` without an intermediate String.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(self.0))
    }
}

/// Masks the secrets of one URL: userinfo, secret-looking query and fragment parameter values,
/// the code of a `/rest/<user>/<code>/` webhook path, and any parameter value that itself holds
/// something to mask (a nested, possibly percent-encoded URL). Never panics.
pub fn mask_url(url: &str) -> String {
    mask_url_at(url, 0)
}

/// Masks every URL and every `secret=value` pair found in a line of free text, such as an error
/// message from a portal or a transport error that quotes the URL it failed on.
pub fn mask_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word_start = None;
    for (i, c) in text.char_indices() {
        if is_word_break(c) {
            if let Some(start) = word_start.take() {
                out.push_str(&mask_word(&text[start..i]));
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(start) = word_start {
        out.push_str(&mask_word(&text[start..]));
    }
    out
}

/// Whether a parameter name (raw, possibly percent-encoded) names a secret.
pub fn is_secret_name(raw_name: &str) -> bool {
    let decoded = decode_fully(raw_name);
    let lower: Vec<u8> = decoded.iter().map(u8::to_ascii_lowercase).collect();
    SECRET_WORDS
        .iter()
        .any(|word| contains(&lower, word.as_bytes()))
}

fn is_word_break(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`')
}

/// Brackets and punctuation around a word are prose, not part of the URL; inside it they are.
fn mask_word(word: &str) -> String {
    let inner = word.trim_start_matches(['(', '[', '{']);
    let lead = &word[..word.len() - inner.len()];
    let core = inner.trim_end_matches([')', ']', '}', ',', '.', ':', ';']);
    let trail = &inner[core.len()..];
    format!("{lead}{}{trail}", mask_core(core))
}

fn mask_core(word: &str) -> String {
    if word.contains("://") || word.contains('?') || word.contains('#') {
        mask_url(word)
    } else if word.contains('=') {
        // A bare `access_token=abc&x=1` in a message.
        mask_params(word, 0)
    } else {
        word.to_owned()
    }
}

fn mask_url_at(url: &str, depth: u8) -> String {
    // Split off the fragment first: a `?` inside it does not start a query.
    let (before_fragment, fragment) = match url.find('#') {
        Some(i) => (&url[..i], Some(&url[i + 1..])),
        None => (url, None),
    };
    let (before_query, query) = match before_fragment.find('?') {
        Some(i) => (&before_fragment[..i], Some(&before_fragment[i + 1..])),
        None => (before_fragment, None),
    };

    let mut out = String::with_capacity(url.len());
    let path_start = match authority_range(before_query) {
        Some((start, end)) => {
            out.push_str(&before_query[..start]);
            out.push_str(&mask_authority(&before_query[start..end]));
            end
        }
        None => 0,
    };
    out.push_str(&mask_webhook_path(&before_query[path_start..]));
    if let Some(query) = query {
        out.push('?');
        out.push_str(&mask_params(query, depth));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        // OAuth implicit flows put tokens in the fragment; otherwise a fragment has no `=`.
        out.push_str(&mask_params(fragment, depth));
    }
    out
}

/// Byte range of the authority: after `scheme://` (or a leading `//`) up to the path.
fn authority_range(s: &str) -> Option<(usize, usize)> {
    let start = if s.starts_with("//") {
        2
    } else {
        s.find("://")? + 3
    };
    let rest = &s[start..];
    // `\` counts as a path separator because browsers treat it so for http(s).
    let end = rest.find(['/', '\\']).map_or(s.len(), |i| start + i);
    Some((start, end))
}

fn mask_authority(authority: &str) -> String {
    // The last `@` ends the userinfo: an unencoded `@` in a password must not leak its tail.
    let Some(at) = authority.rfind('@') else {
        return authority.to_owned();
    };
    let (userinfo, host) = (&authority[..at], &authority[at..]);
    if userinfo.is_empty() {
        return authority.to_owned();
    }
    let masked = if userinfo.contains(':') {
        format!("{MASK}:{MASK}")
    } else {
        MASK.to_owned()
    };
    masked + host
}

/// `/rest/<user id>/<code>/…` is a webhook: the code is the whole secret.
fn mask_webhook_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let mut i = 0;
    while i < segments.len() {
        out.push(segments[i]);
        if segments[i].eq_ignore_ascii_case("rest")
            && let (Some(user), Some(code)) = (segments.get(i + 1), segments.get(i + 2))
            && !user.is_empty()
            && user.bytes().all(|b| b.is_ascii_digit())
            && !code.is_empty()
        {
            out.push(user);
            out.push(MASK);
            i += 3;
            continue;
        }
        i += 1;
    }
    out.join("/")
}

/// Masks `name=value` pairs separated by `&` or `;`, keeping separators and order.
fn mask_params(params: &str, depth: u8) -> String {
    let mut out = String::with_capacity(params.len());
    let mut rest = params;
    loop {
        let (pair, sep, tail) = match rest.find(['&', ';']) {
            Some(i) => (&rest[..i], Some(&rest[i..i + 1]), &rest[i + 1..]),
            None => (rest, None, ""),
        };
        out.push_str(&mask_pair(pair, depth));
        match sep {
            Some(sep) => {
                out.push_str(sep);
                rest = tail;
            }
            None => break,
        }
    }
    out
}

fn mask_pair(pair: &str, depth: u8) -> String {
    let Some(eq) = pair.find('=') else {
        return pair.to_owned();
    };
    let (name, value) = (&pair[..eq], &pair[eq + 1..]);
    if value.is_empty() {
        return pair.to_owned();
    }
    if is_secret_name(name) || value_hides_secret(value, depth) {
        format!("{name}={MASK}")
    } else {
        pair.to_owned()
    }
}

/// Whether a harmless-looking value carries a secret of its own, such as
/// `next=https%3A%2F%2Fx%2F%3Ftoken%3Dabc`: then the whole value is masked.
fn value_hides_secret(value: &str, depth: u8) -> bool {
    if depth >= MAX_DEPTH {
        // Deeper nesting than any real handler: hide rather than look further.
        return value.contains(['=', '@', '%']);
    }
    let decoded = String::from_utf8_lossy(&decode_fully(value)).into_owned();
    let next = depth + 1;
    mask_url_at(&decoded, next) != decoded || mask_params(&decoded, next) != decoded
}

/// Percent-decodes (and `+` to space) until nothing changes, so `%2574oken` reads as `token`.
fn decode_fully(s: &str) -> Vec<u8> {
    let mut current: Vec<u8> = s.as_bytes().to_vec();
    for _ in 0..MAX_DEPTH {
        let next = decode_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn decode_once(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked() {
        assert_eq!(
            mask_url("https://user:pass@host/x"),
            "https://***:***@host/x"
        );
        assert_eq!(mask_url("https://user@host/x"), "https://***@host/x");
        assert_eq!(mask_url("https://u:p@ss@host/"), "https://***:***@host/");
        assert_eq!(mask_url("https://@host/"), "https://@host/");
    }

    #[test]
    fn secret_parameters_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_url("https://h/p?token=abc&x=1;Api_Key=zz&page=2#frag"),
            "https://h/p?token=***&x=1;Api_Key=***&page=2#frag"
        );
        assert_eq!(
            mask_url("https://h/p?%74oken=abc"),
            "https://h/p?%74oken=***"
        );
        assert_eq!(
            mask_url("https://h/p?%2574oken=abc"),
            "https://h/p?%2574oken=***"
        );
        assert_eq!(mask_url("https://h/p?token="), "https://h/p?token=");
        assert_eq!(
            mask_url("https://h/p#access_token=a&b=c"),
            "https://h/p#access_token=***&b=c"
        );
    }

    #[test]
    fn everything_else_is_byte_for_byte() {
        for url in [
            "https://h/p",
            "https://[::1]:8080/a/b/?x=1&y=%20",
            "https://пример.рф/путь/",
            "http://127.0.0.1:1/a%2Fb?q",
            "",
            "not a url at all",
        ] {
            assert_eq!(mask_url(url), url);
        }
        assert_eq!(
            mask_url("https://u:p@[::1]:8080/?sig=1"),
            "https://***:***@[::1]:8080/?sig=***"
        );
    }

    #[test]
    fn nested_urls_and_webhooks_are_masked() {
        assert_eq!(
            mask_url("https://h/?next=https%3A%2F%2Fx%2F%3Ftoken%3Dabc&y=1"),
            "https://h/?next=***&y=1"
        );
        assert_eq!(
            mask_url("https://x.bitrix24.ru/rest/1/abcdef123/event.get"),
            "https://x.bitrix24.ru/rest/1/***/event.get"
        );
    }

    #[test]
    fn free_text_is_masked_word_by_word() {
        assert_eq!(
            mask_text("POST https://u:pw@h/x?auth=zz failed (access_token=abc)"),
            "POST https://***:***@h/x?auth=*** failed (access_token=***)"
        );
    }
}
