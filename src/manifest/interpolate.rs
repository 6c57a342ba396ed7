//! `${NAME}` interpolation of manifest strings, and `$$` as a literal `$`.
//!
//! A `$` followed by anything else is kept as written, because handler URLs may contain it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

/// Where variable values come from, highest precedence first.
pub(crate) struct Scope<'a> {
    pub(crate) vars: &'a BTreeMap<String, String>,
    pub(crate) env: &'a BTreeMap<String, String>,
    pub(crate) manifest: &'a BTreeMap<String, String>,
}

impl Scope<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .or_else(|| self.env.get(name))
            .or_else(|| self.manifest.get(name))
            .map(String::as_str)
    }
}

/// Why a string could not be interpolated. Ranges are byte offsets within the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InterpolateError {
    Unset {
        name: String,
        at: Range<usize>,
    },
    Unterminated {
        at: Range<usize>,
    },
    BadName {
        name: String,
        at: Range<usize>,
    },
    /// A `${...}` where references are not allowed (the `[vars]` table).
    NotAllowed {
        at: Range<usize>,
    },
}

impl InterpolateError {
    pub(crate) fn at(&self) -> Range<usize> {
        match self {
            InterpolateError::Unset { at, .. }
            | InterpolateError::Unterminated { at }
            | InterpolateError::BadName { at, .. }
            | InterpolateError::NotAllowed { at } => at.clone(),
        }
    }
}

pub(crate) fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands `${NAME}` from `scope` (or rejects references when `scope` is `None`) and `$$`.
/// Every problem in the string is reported, not only the first.
pub(crate) fn interpolate<'s>(
    text: &'s str,
    scope: Option<&Scope<'_>>,
) -> Result<Cow<'s, str>, Vec<InterpolateError>> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push_str(&text[rest..i + 1]);
                i += 2;
                rest = i;
            }
            Some(b'{') => {
                out.push_str(&text[rest..i]);
                let Some(close) = text[i + 2..].find('}').map(|p| i + 2 + p) else {
                    errors.push(InterpolateError::Unterminated { at: i..text.len() });
                    return Err(errors);
                };
                let name = &text[i + 2..close];
                let at = i..close + 1;
                match scope {
                    None => errors.push(InterpolateError::NotAllowed { at }),
                    Some(_) if !is_var_name(name) => errors.push(InterpolateError::BadName {
                        name: name.to_owned(),
                        at,
                    }),
                    Some(scope) => match scope.lookup(name) {
                        Some(value) => out.push_str(value),
                        None => errors.push(InterpolateError::Unset {
                            name: name.to_owned(),
                            at,
                        }),
                    },
                }
                i = close + 1;
                rest = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[rest..]);
    if errors.is_empty() {
        Ok(Cow::Owned(out))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_is_vars_then_env_then_manifest() {
        let (v, e, m) = (
            map(&[("A", "var")]),
            map(&[("A", "env"), ("B", "env")]),
            map(&[("A", "m"), ("B", "m"), ("C", "m")]),
        );
        let scope = Scope {
            vars: &v,
            env: &e,
            manifest: &m,
        };
        let got = interpolate("${A}/${B}/${C}", Some(&scope)).unwrap();
        assert_eq!(got, "var/env/m");
    }

    #[test]
    fn dollars() {
        let empty = BTreeMap::new();
        let scope = Scope {
            vars: &empty,
            env: &empty,
            manifest: &empty,
        };
        assert_eq!(interpolate("a$$b$c$", Some(&scope)).unwrap(), "a$b$c$");
        assert_eq!(interpolate("$${X}", Some(&scope)).unwrap(), "${X}");
        assert_eq!(interpolate("$$", None).unwrap(), "$");
    }

    #[test]
    fn all_errors_are_reported() {
        let empty = BTreeMap::new();
        let scope = Scope {
            vars: &empty,
            env: &empty,
            manifest: &empty,
        };
        let errs = interpolate("${X}-${1bad}-${Y", Some(&scope)).unwrap_err();
        assert_eq!(
            errs,
            vec![
                InterpolateError::Unset {
                    name: "X".into(),
                    at: 0..4
                },
                InterpolateError::BadName {
                    name: "1bad".into(),
                    at: 5..12
                },
                InterpolateError::Unterminated { at: 13..16 },
            ]
        );
        assert_eq!(
            interpolate("${X}", None).unwrap_err(),
            vec![InterpolateError::NotAllowed { at: 0..4 }]
        );
    }
}
