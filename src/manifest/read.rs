//! Turns manifest source into resolved bindings, collecting every problem on the way.
//!
//! The TOML is parsed into a spanned document first (so every finding can point at the value
//! it is about), then each section is checked by hand rather than through serde: that is what
//! lets one pass report all unknown keys, wrong types and rule violations together.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::LoadOptions;
use super::diagnostic::{Diagnostic, Sink};
use super::handler;
use super::interpolate::{InterpolateError, Scope, interpolate, is_var_name};
use crate::glob::Glob;
use crate::model::{Binding, BindingKey, OFFLINE_NOTIFY_EVENT};
use crate::plan::IgnoreRules;

type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["vars", "defaults", "binding", "ignore"];
const DEFAULTS_KEYS: &[&str] = &["handler_base", "auth_type"];
const BINDING_KEYS: &[&str] = &[
    "event",
    "events",
    "handler",
    "auth_type",
    "event_type",
    "auth_connector",
    "options",
];
const IGNORE_KEYS: &[&str] = &["events", "handlers"];

/// What a successful read produced.
pub(crate) struct Output {
    pub(crate) bindings: Vec<Binding>,
    pub(crate) ignore: IgnoreRules,
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) has_errors: bool,
}

pub(crate) fn read(source: &str, opts: &LoadOptions) -> Output {
    let mut sink = Sink::new(source);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        // A recovered document may be missing pieces, so semantic checks would only add noise.
        for e in syntax_errors {
            let message = e.message().trim_end().to_owned();
            sink.error(e.span(), format!("invalid TOML: {message}"))
                .help("fix the TOML syntax at the marked position (strings need quotes; each binding starts with [[binding]])");
        }
        return finish(sink, Vec::new(), IgnoreRules::default());
    }
    let reader = Reader {
        source,
        sink,
        opts,
        manifest_vars: BTreeMap::new(),
        base: Base::Unset,
        default_auth_type: 0,
        seen: HashMap::new(),
        folded: HashMap::new(),
    };
    reader.document(root.get_ref())
}

fn finish(sink: Sink<'_>, bindings: Vec<Binding>, ignore: IgnoreRules) -> Output {
    let has_errors = sink.has_errors();
    Output {
        bindings,
        ignore,
        diagnostics: sink.into_sorted(),
        has_errors,
    }
}

/// The state of `[defaults].handler_base`.
enum Base {
    Unset,
    /// Set but invalid: already reported, so `/path` handlers are not reported again.
    Broken,
    Valid {
        url: String,
        plain_http: bool,
    },
}

struct Reader<'s, 'o> {
    source: &'s str,
    sink: Sink<'s>,
    opts: &'o LoadOptions,
    manifest_vars: BTreeMap<String, String>,
    base: Base,
    default_auth_type: u64,
    /// Identity -> span of the event that first declared it.
    seen: HashMap<BindingKey, Range<usize>>,
    /// The same identity with handler or connector folded the way a case-insensitive, pad-space
    /// SQL collation compares them -> span of its first declaration.
    folded: HashMap<BindingKey, Range<usize>>,
}

/// A string value after interpolation, with where it came from.
struct Text {
    value: String,
    raw: String,
    span: Range<usize>,
}

impl Text {
    /// "`value`", plus what it was written as when interpolation changed it.
    fn shown(&self) -> String {
        if self.value == self.raw {
            format!("`{}`", self.value)
        } else {
            format!("`{}` (written as `{}`)", self.value, self.raw)
        }
    }
}

/// The fields of one `[[binding]]` entry, type-checked but not yet validated together.
#[derive(Default)]
struct Entry {
    event: Option<(Range<usize>, Vec<Text>)>,
    events: Option<(Range<usize>, Vec<Text>)>,
    handler: Option<Text>,
    auth_type: Option<(u64, Range<usize>)>,
    offline: Option<(bool, Range<usize>)>,
    auth_connector: Option<Text>,
    options: Option<(BTreeMap<String, String>, Range<usize>)>,
    /// A field failed its own check, so cross-field rules would only repeat the problem.
    broken: bool,
    /// Keys that were present but failed their check (so "missing" would be wrong).
    failed: Vec<&'static str>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Entries of a table in source order (the parsed map is sorted by key).
fn entries<'a, 'i>(
    table: &'a DeTable<'i>,
) -> Vec<(&'a Spanned<std::borrow::Cow<'i, str>>, &'a Value<'i>)> {
    let mut out: Vec<_> = table.iter().collect();
    out.sort_by_key(|(k, _)| k.span().start);
    out
}

impl<'s> Reader<'s, '_> {
    fn document(mut self, root: &DeTable<'_>) -> Output {
        let mut vars = None;
        let mut defaults = None;
        let mut binding = None;
        let mut ignore = None;
        for (key, value) in entries(root) {
            match key.get_ref().as_ref() {
                "vars" => vars = Some(value),
                "defaults" => defaults = Some(value),
                "binding" => binding = Some((key.span(), value)),
                "ignore" => ignore = Some(value),
                other => self.unknown_key(key.span(), other, "the top level", TOP_KEYS),
            }
        }
        // Order matters: [vars] feed interpolation, [defaults] feed every binding.
        if let Some(v) = vars.and_then(|v| self.table("vars", v)) {
            self.vars(v);
        }
        if let Some(v) = defaults.and_then(|v| self.table("defaults", v)) {
            self.defaults(v);
        }
        let mut bindings = Vec::new();
        let mut entry_count = 0;
        if let Some((key_span, value)) = binding {
            entry_count = self.bindings(key_span, value, &mut bindings);
        }
        let ignore = ignore
            .and_then(|v| self.table("ignore", v))
            .map(|t| self.ignore(t))
            .unwrap_or_default();
        if entry_count == 0 && !self.opts.allow_empty {
            self.sink
                .error(None, "the manifest declares no bindings")
                .help("add a [[binding]] entry, or pass --allow-empty if the app should have no bindings at all (every binding it has on the portal is then removed)");
        }
        finish(self.sink, bindings, ignore)
    }

    fn unknown_key(&mut self, span: Range<usize>, key: &str, section: &str, known: &[&str]) {
        let elsewhere = [
            ("[defaults]", DEFAULTS_KEYS),
            ("a [[binding]] entry", BINDING_KEYS),
            ("[ignore]", IGNORE_KEYS),
            ("the top level", TOP_KEYS),
        ]
        .into_iter()
        .find(|(name, keys)| *name != section && keys.contains(&key))
        .map(|(name, _)| name);
        let accepted = known.join(", ");
        let help = match (nearest_key(key, known), elsewhere) {
            (Some(s), _) => format!("did you mean `{s}`? {section} accepts: {accepted}"),
            (None, Some(place)) => {
                format!("`{key}` belongs in {place}; {section} accepts: {accepted}")
            }
            (None, None) => format!("remove it; {section} accepts: {accepted}"),
        };
        self.sink
            .error(Some(span), format!("unknown key `{key}` in {section}"))
            .help(help);
    }

    fn wrong_type(&mut self, what: &str, v: &Value<'_>, expected: &str, help: &str) {
        self.sink
            .error(
                Some(v.span()),
                format!(
                    "{what} must be {expected}, found {}",
                    type_name(v.get_ref())
                ),
            )
            .help(help);
    }

    fn table<'a, 'i>(&mut self, name: &str, v: &'a Value<'i>) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(
                    &format!("`{name}`"),
                    v,
                    "a table",
                    &format!("write it as a section: [{name}] followed by key = value lines"),
                );
                None
            }
        }
    }

    fn vars(&mut self, table: &DeTable<'_>) {
        for (key, value) in entries(table) {
            let name = key.get_ref().as_ref();
            if !is_var_name(name) {
                self.sink
                    .error(
                        Some(key.span()),
                        format!("`{name}` is not a valid variable name"),
                    )
                    .help(
                        "variable names use letters, digits and _, and do not start with a digit",
                    );
                continue;
            }
            let DeValue::String(raw) = value.get_ref() else {
                self.wrong_type(
                    &format!("variable `{name}`"),
                    value,
                    "a string",
                    &format!("put the value in quotes: {name} = \"…\""),
                );
                continue;
            };
            match interpolate(raw, None) {
                Ok(v) => {
                    self.manifest_vars.insert(name.to_owned(), v.into_owned());
                }
                Err(errors) => self.interpolation_errors(raw, value.span(), errors),
            }
        }
    }

    fn defaults(&mut self, table: &DeTable<'_>) {
        for (key, value) in entries(table) {
            match key.get_ref().as_ref() {
                "handler_base" => self.handler_base(value),
                "auth_type" => {
                    if let Some(n) = self.auth_type(value) {
                        self.default_auth_type = n;
                    }
                }
                other => self.unknown_key(key.span(), other, "[defaults]", DEFAULTS_KEYS),
            }
        }
    }

    fn handler_base(&mut self, value: &Value<'_>) {
        self.base = Base::Broken;
        let Some(text) = self.string("handler_base", value) else {
            return;
        };
        let result = if !handler::has_scheme(&text.value) {
            Err(handler::Rejection {
                message: format!("handler_base {} is not an absolute URL", text.shown()),
                help: "write it as https://host/path; handlers starting with / are joined to it"
                    .into(),
            })
        } else if text.value.contains(['?', '#']) {
            Err(handler::Rejection {
                message: format!(
                    "handler_base {} has a query or fragment, so joined paths would land inside it",
                    text.shown()
                ),
                help: "remove the ?… / #… part; put query parameters into each handler instead"
                    .into(),
            })
        } else {
            handler::check_absolute(&text.value).map_err(|r| handler::Rejection {
                message: format!("handler_base: {}", r.message),
                help: r.help,
            })
        };
        match result {
            Ok(plain_http) => {
                if plain_http {
                    self.sink
                        .warning(
                            Some(text.span.clone()),
                            format!(
                                "handler_base {} uses plain http: every handler joined to it receives the app's tokens unencrypted",
                                text.shown()
                            ),
                        )
                        .help("use https://");
                }
                self.base = Base::Valid {
                    url: text.value,
                    plain_http,
                };
            }
            Err(r) => {
                self.sink.error(Some(text.span), r.message).help(r.help);
            }
        }
    }

    /// A non-negative integer `auth_type`.
    fn auth_type(&mut self, value: &Value<'_>) -> Option<u64> {
        const HELP: &str = "auth_type is the id of the user the handler is authorised as (0 = the user who triggered the event); write it as a whole number without quotes, e.g. auth_type = 0";
        match value.get_ref() {
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                match i128::from_str_radix(&digits, i.radix()) {
                    Ok(n) if n < 0 => {
                        self.sink
                            .error(
                                Some(value.span()),
                                format!("auth_type must be 0 or greater, found {n}"),
                            )
                            .help(HELP);
                        None
                    }
                    // PHP's intval saturates at i64::MAX, so anything larger would not round-trip.
                    Ok(n) if n > i128::from(i64::MAX) => {
                        self.sink
                            .error(
                                Some(value.span()),
                                format!("auth_type {n} is too large to be a user id"),
                            )
                            .help(HELP);
                        None
                    }
                    Ok(n) => u64::try_from(n).ok(),
                    Err(_) => {
                        self.sink
                            .error(Some(value.span()), "auth_type is too large to be a user id")
                            .help(HELP);
                        None
                    }
                }
            }
            DeValue::Float(f) => {
                self.sink
                    .error(
                        Some(value.span()),
                        format!(
                            "auth_type must be a whole number, found the float {}",
                            f.as_str()
                        ),
                    )
                    .help(HELP);
                None
            }
            _ => {
                self.wrong_type("auth_type", value, "an integer", HELP);
                None
            }
        }
    }

    /// A string value, interpolated.
    fn string(&mut self, what: &str, value: &Value<'_>) -> Option<Text> {
        let DeValue::String(raw) = value.get_ref() else {
            self.wrong_type(
                &format!("`{what}`"),
                value,
                "a string",
                &format!("put the value in quotes: {what} = \"…\""),
            );
            return None;
        };
        self.interpolated(raw, value.span())
    }

    fn interpolated(&mut self, raw: &str, span: Range<usize>) -> Option<Text> {
        let scope = Scope {
            vars: &self.opts.vars,
            env: &self.opts.env,
            manifest: &self.manifest_vars,
        };
        match interpolate(raw, Some(&scope)) {
            Ok(v) => Some(Text {
                value: v.into_owned(),
                raw: raw.to_owned(),
                span,
            }),
            Err(errors) => {
                self.interpolation_errors(raw, span, errors);
                None
            }
        }
    }

    fn interpolation_errors(
        &mut self,
        raw: &str,
        span: Range<usize>,
        errors: Vec<InterpolateError>,
    ) {
        for e in errors {
            let at = self.sub_span(raw, &span, e.at());
            match e {
                InterpolateError::Unset { name, .. } => {
                    self.sink
                        .error(Some(at), format!("variable `{name}` is not set"))
                        .help(format!(
                            "pass --var {name}=VALUE, set the environment variable {name}, or add {name} = \"…\" under [vars]"
                        ));
                }
                InterpolateError::Unterminated { .. } => {
                    self.sink
                        .error(Some(at), "`${` has no closing `}`")
                        .help("write ${NAME}, or $$ for a literal $");
                }
                InterpolateError::BadName { name, .. } => {
                    self.sink
                        .error(Some(at), format!("`${{{name}}}` is not a valid variable reference"))
                        .help("variable names use letters, digits and _, and do not start with a digit; write $$ for a literal $");
                }
                InterpolateError::NotAllowed { .. } => {
                    self.sink
                        .error(Some(at), "[vars] values are literal and cannot reference other variables")
                        .help("write the value out in full (override it with --var or the environment), or write $$ for a literal $");
                }
            }
        }
    }

    /// Narrows `at` (offsets in the decoded string) to the source when the string was written
    /// without escapes; otherwise the whole value is marked.
    fn sub_span(&self, raw: &str, span: &Range<usize>, at: Range<usize>) -> Range<usize> {
        let written = self.source.get(span.clone()).unwrap_or("");
        for quote in ["\"", "'"] {
            if written.len() == raw.len() + 2
                && written.starts_with(quote)
                && written.ends_with(quote)
                && &written[1..written.len() - 1] == raw
            {
                return span.start + 1 + at.start..span.start + 1 + at.end;
            }
        }
        span.clone()
    }

    /// Reads every `[[binding]]` entry; returns how many entries there were.
    fn bindings(
        &mut self,
        key_span: Range<usize>,
        value: &Value<'_>,
        out: &mut Vec<Binding>,
    ) -> usize {
        let DeValue::Array(items) = value.get_ref() else {
            self.sink
                .error(
                    Some(key_span),
                    format!(
                        "`binding` must be an array of tables, found {}",
                        type_name(value.get_ref())
                    ),
                )
                .help("write each binding as its own [[binding]] section (two brackets)");
            return 1;
        };
        out.reserve(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => self.binding(item.span(), t, out),
                _ => self.wrong_type(
                    "each `binding`",
                    item,
                    "a table",
                    "write each binding as its own [[binding]] section",
                ),
            }
        }
        items.len()
    }

    fn binding(&mut self, span: Range<usize>, table: &DeTable<'_>, out: &mut Vec<Binding>) {
        let entry = self.entry(table);
        let line = u32::try_from(self.sink.line_of(span.start)).ok();
        let mut broken = entry.broken;

        let events: Vec<Text> = match (entry.event, entry.events) {
            (Some((event_key, _)), Some((events_key, _))) => {
                self.sink
                    .error(Some(events_key), "a binding sets both `event` and `events`")
                    .label(event_key, "`event` is set here")
                    .help("use `event` for one event or `events = [..]` for several, not both");
                broken = true;
                Vec::new()
            }
            (Some((_, e)), None) | (None, Some((_, e))) => e,
            (None, None) => {
                if !entry.failed.contains(&"event") && !entry.failed.contains(&"events") {
                    self.sink
                        .error(Some(span.clone()), "this binding has no `event`")
                        .help("add event = \"ONCRMLEADADD\" (or events = [\"…\", \"…\"] for several events with the same handler)");
                }
                // Keep going: the handler's own problems are worth reporting in the same run.
                broken = true;
                Vec::new()
            }
        };
        if entry.failed.contains(&"event_type") {
            // Online or offline decides every other rule; guessing would mislead.
            return;
        }
        let offline = entry.offline.as_ref().is_some_and(|(o, _)| *o);

        let target = if offline {
            if let Some(h) = &entry.handler {
                self.sink
                    .error(Some(h.span.clone()), "an offline binding cannot have a handler")
                    .help("remove `handler` (offline events go to a queue the app reads with event.offline.get), or remove event_type = \"offline\" to call the handler");
                broken = true;
            }
            if let Some((n, s)) = &entry.auth_type
                && *n != 0
            {
                self.sink
                    .error(Some(s.clone()), format!("an offline binding cannot have auth_type {n}; the portal always stores 0"))
                    .help("remove auth_type from this binding");
                broken = true;
            }
            for e in &events {
                if e.value.eq_ignore_ascii_case(OFFLINE_NOTIFY_EVENT) {
                    self.sink
                        .error(Some(e.span.clone()), format!("{OFFLINE_NOTIFY_EVENT} cannot be an offline binding"))
                        .help("ONOFFLINEEVENT notifies an online handler that the offline queue has entries: remove event_type = \"offline\" and give it a handler");
                    broken = true;
                }
            }
            let connector = entry
                .auth_connector
                .as_ref()
                .map_or(String::new(), |t| t.value.clone());
            Some(Target::Offline(connector))
        } else {
            let auth_type = entry
                .auth_type
                .as_ref()
                .map_or(self.default_auth_type, |(n, _)| *n);
            match &entry.handler {
                Some(h) => self
                    .online_handler(h)
                    .map(|url| Target::Online(url, auth_type)),
                None => {
                    if !entry.failed.contains(&"handler") {
                        self.sink
                            .error(Some(span.clone()), "this binding has no `handler`")
                            .help("add handler = \"/path\" (joined to [defaults].handler_base) or an absolute https:// URL; or set event_type = \"offline\" for an offline queue");
                    }
                    None
                }
            }
        };

        let options = match entry.options {
            Some((options, options_span)) => {
                let others: Vec<&str> = events
                    .iter()
                    .map(|e| e.value.as_str())
                    .filter(|e| !e.eq_ignore_ascii_case(OFFLINE_NOTIFY_EVENT))
                    .collect();
                if !others.is_empty() && !options.is_empty() {
                    self.sink
                        .warning(
                            Some(options_span),
                            format!(
                                "`options` only take effect on {OFFLINE_NOTIFY_EVENT}; the portal silently drops them for {}",
                                others.join(", ").to_ascii_uppercase()
                            ),
                        )
                        .help("remove `options` from this binding");
                }
                options
            }
            None => BTreeMap::new(),
        };

        let Some(target) = target else { return };
        if broken {
            return;
        }
        for event in events {
            let key = match &target {
                Target::Online(url, auth_type) => BindingKey::online(&event.value, url, *auth_type),
                Target::Offline(connector) => BindingKey::offline(&event.value, connector),
            };
            if let Some(first) = self.seen.get(&key) {
                let first = first.clone();
                self.sink
                    .error(Some(event.span.clone()), format!("duplicate binding: {key} is declared twice"))
                    .label(first, "first declared here")
                    .help("remove one of them: bindings are the same when the event (in any case), handler and auth_type match (offline: the auth_connector)");
                continue;
            }
            self.seen.insert(key.clone(), event.span.clone());
            // Whether the portal's database tells such twins apart is not known (its default
            // collation may not): warn, since binding the second one may fail as a duplicate.
            let folded = fold_for_collation(&key);
            if let Some(first) = self.folded.get(&folded) {
                let first = first.clone();
                self.sink
                    .warning(
                        Some(event.span.clone()),
                        format!("{key} differs from another binding only in letter case or trailing spaces"),
                    )
                    .label(first, "the other spelling")
                    .help("use one spelling: the portal's database may compare them as equal and refuse the second as a duplicate");
            } else {
                self.folded.insert(folded, event.span.clone());
            }
            let auth_connector = match &target {
                Target::Online(..) => entry
                    .auth_connector
                    .as_ref()
                    .filter(|t| !t.value.is_empty())
                    .map(|t| t.value.clone()),
                Target::Offline(_) => None,
            };
            out.push(Binding {
                key,
                options: options.clone(),
                auth_connector,
                line,
            });
        }
    }

    /// The final URL of an online handler, or `None` after reporting why it is unusable.
    fn online_handler(&mut self, h: &Text) -> Option<String> {
        let (url, plain_http_reported) = if handler::has_scheme(&h.value) {
            (h.value.clone(), false)
        } else if h.value.starts_with("//") {
            self.sink
                .error(
                    Some(h.span.clone()),
                    format!(
                        "handler {} is protocol-relative; the portal needs the scheme",
                        h.shown()
                    ),
                )
                .help("write the full URL, e.g. https:// followed by the host and path");
            return None;
        } else if h.value.starts_with('/') {
            match &self.base {
                Base::Valid { url, plain_http } => (handler::join(url, &h.value), *plain_http),
                Base::Broken => return None,
                Base::Unset => {
                    self.sink
                        .error(
                            Some(h.span.clone()),
                            format!("handler {} is a path, but [defaults] has no handler_base to join it to", h.shown()),
                        )
                        .help("add handler_base = \"https://app.example.com/b24\" under [defaults], or write the full https:// URL here");
                    return None;
                }
            }
        } else {
            let help = if h.value.is_empty() {
                "write an absolute https:// URL, or a path starting with / joined to [defaults].handler_base".to_owned()
            } else if h.value.contains('.') && !h.value.contains(':') {
                format!(
                    "if `{}` is a host, write https://{}; a path must start with /",
                    h.value, h.value
                )
            } else {
                "write an absolute https:// URL, or a path starting with / joined to [defaults].handler_base".to_owned()
            };
            let message = if h.value.is_empty() {
                "handler is empty".to_owned()
            } else {
                format!(
                    "handler {} is neither an absolute URL nor a path starting with /",
                    h.shown()
                )
            };
            self.sink.error(Some(h.span.clone()), message).help(help);
            return None;
        };
        match handler::check_absolute(&url) {
            Ok(plain_http) => {
                if plain_http && !plain_http_reported {
                    self.sink
                        .warning(
                            Some(h.span.clone()),
                            format!("handler `{url}` uses plain http: the portal sends the app's tokens to it unencrypted"),
                        )
                        .help("use https://");
                }
                Some(url)
            }
            Err(r) => {
                let message = if url != h.raw {
                    format!("{} (handler written as `{}`)", r.message, h.raw)
                } else {
                    r.message
                };
                self.sink.error(Some(h.span.clone()), message).help(r.help);
                None
            }
        }
    }

    /// Type-checks the fields of one entry.
    fn entry(&mut self, table: &DeTable<'_>) -> Entry {
        let mut e = Entry::default();
        for (key, value) in entries(table) {
            let name = key.get_ref().as_ref();
            let failed_before = e.broken;
            e.broken = false;
            match name {
                "event" => match self.string("event", value) {
                    Some(t) => {
                        e.broken |= !self.event_name(&t);
                        e.event = Some((key.span(), vec![t]));
                    }
                    None => e.broken = true,
                },
                "events" => match self.event_list(value) {
                    Some(list) => e.events = Some((key.span(), list)),
                    None => e.broken = true,
                },
                "handler" => match self.string("handler", value) {
                    Some(t) => e.handler = Some(t),
                    None => e.broken = true,
                },
                "auth_type" => match self.auth_type(value) {
                    Some(n) => e.auth_type = Some((n, value.span())),
                    None => e.broken = true,
                },
                "event_type" => match self.event_type(value) {
                    Some(o) => e.offline = Some((o, value.span())),
                    None => e.broken = true,
                },
                "auth_connector" => match self.string("auth_connector", value) {
                    Some(t) => e.auth_connector = Some(t),
                    None => e.broken = true,
                },
                "options" => match self.options(value) {
                    Some(o) => e.options = Some((o, value.span())),
                    None => e.broken = true,
                },
                other => {
                    self.unknown_key(key.span(), other, "a [[binding]] entry", BINDING_KEYS);
                    e.broken = true;
                    // A misspelt `handler` should not also be reported as a missing one.
                    if let Some(meant) = nearest_key(other, BINDING_KEYS) {
                        e.failed.push(meant);
                    }
                }
            }
            if e.broken
                && let Some(known) = BINDING_KEYS.iter().find(|k| **k == name)
            {
                e.failed.push(known);
            }
            e.broken |= failed_before;
        }
        e
    }

    /// Checks an event name's characters; `false` after reporting a bad one.
    fn event_name(&mut self, t: &Text) -> bool {
        if t.value.is_empty() {
            self.sink
                .error(Some(t.span.clone()), "event name is empty")
                .help("write the event's name, e.g. event = \"ONCRMLEADADD\" (b24bind events lists them)");
            return false;
        }
        if let Some(c) = t
            .value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            self.sink
                .error(
                    Some(t.span.clone()),
                    format!(
                        "event name {} contains {}; event names are letters, digits and _ only",
                        t.shown(),
                        describe_char(c)
                    ),
                )
                .help("write the event's name as the portal lists it, e.g. ONCRMLEADADD (case does not matter)");
            return false;
        }
        true
    }

    fn event_list(&mut self, value: &Value<'_>) -> Option<Vec<Text>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                "`events`",
                value,
                "an array of event names",
                "write events = [\"ONCRMDEALADD\", \"ONCRMDEALUPDATE\"], or use event = \"…\" for one event",
            );
            return None;
        };
        if items.is_empty() {
            self.sink
                .error(Some(value.span()), "`events` is empty")
                .help("list at least one event, e.g. events = [\"ONCRMDEALADD\"], or remove the binding");
            return None;
        }
        let mut ok = true;
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match self.string("each event in `events`", item) {
                Some(t) => {
                    ok &= self.event_name(&t);
                    out.push(t);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `true` for offline.
    fn event_type(&mut self, value: &Value<'_>) -> Option<bool> {
        let t = self.string("event_type", value)?;
        match t.value.as_str() {
            "online" => Some(false),
            "offline" => Some(true),
            other => {
                let help = if other.eq_ignore_ascii_case("online")
                    || other.eq_ignore_ascii_case("offline")
                {
                    format!(
                        "write it in lower case: event_type = \"{}\"",
                        other.to_ascii_lowercase()
                    )
                } else {
                    "use \"online\" (call the handler; the default) or \"offline\" (queue events for event.offline.get)".to_owned()
                };
                self.sink
                    .error(
                        Some(t.span.clone()),
                        format!(
                            "event_type must be \"online\" or \"offline\", found {}",
                            t.shown()
                        ),
                    )
                    .help(help);
                None
            }
        }
    }

    /// Option values are sent as form fields, so they are kept as strings.
    fn options(&mut self, value: &Value<'_>) -> Option<BTreeMap<String, String>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.wrong_type(
                "`options`",
                value,
                "a table",
                "write options = { minTimeout = 30 }",
            );
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, v) in entries(table) {
            let name = key.get_ref().as_ref();
            let text = match v.get_ref() {
                DeValue::String(s) => self.interpolated(s, v.span()).map(|t| t.value),
                DeValue::Integer(i) => {
                    let digits = i.as_str().replace('_', "");
                    match i64::from_str_radix(&digits, i.radix()) {
                        Ok(n) => Some(n.to_string()),
                        Err(_) => {
                            self.sink
                                .error(Some(v.span()), format!("option `{name}` is too large"))
                                .help("option values must fit in a 64-bit integer");
                            None
                        }
                    }
                }
                // PHP reads form booleans as "1" / "0".
                DeValue::Boolean(b) => Some(if *b { "1" } else { "0" }.to_owned()),
                _ => {
                    self.wrong_type(
                        &format!("option `{name}`"),
                        v,
                        "an integer, a string or a boolean",
                        "options are sent as plain form values, e.g. options = { minTimeout = 30 }",
                    );
                    None
                }
            };
            match text {
                Some(t) => {
                    out.insert(name.to_owned(), t);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn ignore(&mut self, table: &DeTable<'_>) -> IgnoreRules {
        let mut rules = IgnoreRules::default();
        for (key, value) in entries(table) {
            let name = key.get_ref().as_ref();
            match name {
                "events" => {
                    rules.events = self
                        .patterns(name, value)
                        .iter()
                        .map(|p| Glob::new_case_insensitive(p))
                        .collect();
                }
                "handlers" => {
                    rules.handlers = self
                        .patterns(name, value)
                        .iter()
                        .map(|p| Glob::new(p))
                        .collect();
                }
                other => self.unknown_key(key.span(), other, "[ignore]", IGNORE_KEYS),
            }
        }
        rules
    }

    fn patterns(&mut self, name: &str, value: &Value<'_>) -> Vec<String> {
        let help = format!("write {name} = [\"pattern\", …] with * and ? as wildcards");
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                &format!("[ignore] {name}"),
                value,
                "an array of glob strings",
                &help,
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => {
                    if let Some(t) = self.interpolated(s, item.span()) {
                        out.push(t.value);
                    }
                }
                _ => self.wrong_type(
                    &format!("each [ignore] {name} pattern"),
                    item,
                    "a string",
                    &help,
                ),
            }
        }
        out
    }
}

enum Target {
    Online(String, u64),
    Offline(String),
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("the character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// The closest known key to a misspelt one, if it is a plausible typo.
fn nearest_key<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    crate::suggest::nearest(word, known.iter().copied(), 1)
        .first()
        .copied()
}

/// `key` with its handler (or connector) lower-cased and trailing spaces dropped, as a
/// case-insensitive, pad-space collation would compare it.
fn fold_for_collation(key: &BindingKey) -> BindingKey {
    let fold = |s: &str| s.trim_end_matches(' ').to_lowercase();
    BindingKey {
        event: key.event.clone(),
        target: match &key.target {
            crate::model::Target::Online { handler, auth_type } => crate::model::Target::Online {
                handler: fold(handler),
                auth_type: *auth_type,
            },
            crate::model::Target::Offline { connector } => crate::model::Target::Offline {
                connector: fold(connector),
            },
        },
    }
}
