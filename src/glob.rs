//! Shell-style globs (`*`, `?`) for `[ignore]` rules, matched against whole strings.

/// A compiled glob. `*` matches any run of characters (including `/`), `?` exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    case_insensitive: bool,
}

impl Glob {
    /// A glob matched byte for byte (handler URLs: the portal compares them exactly).
    pub fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.to_owned(),
            case_insensitive: false,
        }
    }

    /// A glob matched ignoring ASCII case (event names are case-insensitive on the portal).
    pub fn new_case_insensitive(pattern: &str) -> Self {
        Glob {
            pattern: pattern.to_ascii_uppercase(),
            case_insensitive: true,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.case_insensitive {
            wildmatch(
                self.pattern.as_bytes(),
                text.to_ascii_uppercase().as_bytes(),
            )
        } else {
            wildmatch(self.pattern.as_bytes(), text.as_bytes())
        }
    }
}

/// Iterative wildcard matching with single-star backtracking: linear in practice and never
/// exponential, whatever the pattern (a manifest is untrusted input).
fn wildmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark() {
        assert!(Glob::new("https://a.example/runtime/*").matches("https://a.example/runtime/x/y"));
        assert!(!Glob::new("https://a.example/runtime/*").matches("https://a.example/other"));
        assert!(Glob::new("a?c").matches("abc"));
        assert!(!Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("aXXbYYc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYY"));
    }

    #[test]
    fn case_rules() {
        assert!(Glob::new_case_insensitive("onimbot*").matches("ONIMBOTMESSAGEADD"));
        assert!(!Glob::new("https://A.example/*").matches("https://a.example/x"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!Glob::new(&pattern).matches(&text));
    }
}
