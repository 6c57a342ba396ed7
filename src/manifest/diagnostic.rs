//! Diagnostics about a manifest: what went wrong, where in the source, and how to fix it.
//!
//! Spans are byte ranges into the manifest source. Rendering slices out only the lines an
//! error touches, so printing a handful of errors about a 100k-line file stays cheap.

use std::fmt;
use std::ops::Range;

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Byte range of the offending value; `None` for findings about the file as a whole.
    pub span: Option<Range<usize>>,
    /// 1-based line and column (in characters) of the span start; 1:1 without a span.
    pub line: usize,
    pub column: usize,
    /// Secondary places, e.g. "first declared here".
    pub labels: Vec<(Range<usize>, String)>,
    /// What to do about it.
    pub help: Option<String>,
}

/// Everything found in one manifest, with the source needed to show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    /// The file path as given.
    pub name: String,
    pub source: String,
    /// All errors and warnings of the file, in source order.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warning_count(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// Renders every item as `file:line:column`, the source line(s), a caret under the value and
    /// a `help:` line; items are separated by a blank line. `color` picks ANSI styling.
    pub fn render(&self, color: bool) -> String {
        render_items(&self.name, &self.source, &self.items, color)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}

/// Renders `items` against `source` (shared by error reports and warnings on success).
pub fn render_items(name: &str, source: &str, items: &[Diagnostic], color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    // One line index for the whole file: building it per diagnostic made rendering many
    // diagnostics of a large file quadratic.
    let index = LineIndex::new(source);
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        out.push_str(&render_one(&renderer, name, source, &index, item));
    }
    out
}

fn render_one(
    renderer: &Renderer,
    name: &str,
    source: &str,
    index: &LineIndex,
    d: &Diagnostic,
) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut group = Group::with_title(level.primary_title(d.message.as_str()));
    match &d.span {
        Some(span) => {
            for snippet in snippets(name, source, index, span, &d.labels) {
                group = group.element(snippet);
            }
        }
        None => {
            group = group.element(Origin::path(name));
        }
    }
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    renderer.render(&[group])
}

/// Lines closer than this are shown in one snippet; farther labels get their own.
const MERGE_DISTANCE: usize = 4;

/// One snippet per cluster of nearby annotated lines, each holding only its own lines.
fn snippets<'a>(
    name: &'a str,
    source: &'a str,
    index: &LineIndex,
    primary: &Range<usize>,
    labels: &'a [(Range<usize>, String)],
) -> Vec<Snippet<'a, annotate_snippets::Annotation<'a>>> {
    struct Mark<'a> {
        span: Range<usize>,
        label: Option<&'a str>,
        primary: bool,
        first_line: usize,
        last_line: usize,
    }
    let mark = |span: &Range<usize>, label: Option<&'a str>, primary: bool| {
        let span = clamp(source, span);
        let first_line = index.line_of(span.start);
        let last_line = index.line_of(span.end.saturating_sub(1).max(span.start));
        Mark {
            span,
            label,
            primary,
            first_line,
            last_line,
        }
    };
    let mut marks = vec![mark(primary, None, true)];
    marks.extend(labels.iter().map(|(s, l)| mark(s, Some(l.as_str()), false)));
    // The primary cluster comes first so the `-->` header points at the offending value.
    let primary_line = marks[0].first_line;
    marks.sort_by_key(|m| (m.first_line, !m.primary));

    let mut clusters: Vec<Vec<Mark<'a>>> = Vec::new();
    for m in marks {
        match clusters.last_mut() {
            Some(c)
                if c.iter().map(|x| x.last_line).max().unwrap_or(0) + MERGE_DISTANCE
                    >= m.first_line =>
            {
                c.push(m)
            }
            _ => clusters.push(vec![m]),
        }
    }
    clusters.sort_by_key(|c| !c.iter().any(|m| m.primary && m.first_line == primary_line));

    clusters
        .into_iter()
        .map(|cluster| {
            let first = cluster.iter().map(|m| m.first_line).min().unwrap_or(1);
            let last = cluster.iter().map(|m| m.last_line).max().unwrap_or(first);
            let start = index.line_start(first);
            let end = index.line_end(last, source);
            let mut snippet = Snippet::source(&source[start..end])
                .line_start(first)
                .path(name)
                .fold(true);
            for m in cluster {
                // A span starting on a line break ends up past the shown text: keep it ordered.
                let span_start = m.span.start.min(end);
                let span_end = m.span.end.clamp(span_start, end.max(span_start));
                let span = (span_start - start)..(span_end - start);
                let kind = if m.primary {
                    AnnotationKind::Primary
                } else {
                    AnnotationKind::Context
                };
                let annotation = match m.label {
                    Some(label) => kind.span(span).label(label),
                    None => kind.span(span),
                };
                snippet = snippet.annotation(annotation);
            }
            snippet
        })
        .collect()
}

/// Keeps a span inside the source and on character boundaries, whatever produced it.
fn clamp(source: &str, span: &Range<usize>) -> Range<usize> {
    let mut start = span.start.min(source.len());
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = span.end.clamp(start, source.len());
    while !source.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

/// Byte offsets of line starts, for turning spans into 1-based line:column.
#[derive(Clone, Debug)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 1-based line containing byte `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// 1-based line and 1-based character column of byte `offset`.
    pub(crate) fn line_col(&self, source: &str, offset: usize) -> (usize, usize) {
        let line = self.line_of(offset);
        let start = self.line_start(line);
        let offset = offset.min(source.len()).max(start);
        let column = source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, column + 1)
    }

    fn line_start(&self, line: usize) -> usize {
        self.starts.get(line - 1).copied().unwrap_or(0)
    }

    /// End of `line`'s text, without its newline.
    fn line_end(&self, line: usize, source: &str) -> usize {
        let end = self.starts.get(line).map_or(source.len(), |&next| next - 1);
        if end > 0 && source.as_bytes().get(end - 1) == Some(&b'\r') {
            end - 1
        } else {
            end
        }
    }
}

/// Builds diagnostics for one source, filling in line and column.
pub(crate) struct Sink<'s> {
    source: &'s str,
    index: LineIndex,
    pub(crate) items: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        Sink {
            source,
            index: LineIndex::new(source),
            items: Vec::new(),
        }
    }

    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.index.line_of(offset)
    }

    pub(crate) fn error(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Draft<'_, 's> {
        self.push(Severity::Error, span, message.into())
    }

    pub(crate) fn warning(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Draft<'_, 's> {
        self.push(Severity::Warning, span, message.into())
    }

    fn push(
        &mut self,
        severity: Severity,
        span: Option<Range<usize>>,
        message: String,
    ) -> Draft<'_, 's> {
        let (line, column) = match &span {
            Some(s) => self.index.line_col(self.source, s.start),
            None => (1, 1),
        };
        self.items.push(Diagnostic {
            severity,
            message,
            span,
            line,
            column,
            labels: Vec::new(),
            help: None,
        });
        Draft { sink: self }
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Source order; whole-file findings last. Stable, so same-span findings keep their order.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
        self.items
    }
}

/// The diagnostic just pushed, to attach help and labels to.
pub(crate) struct Draft<'a, 's> {
    sink: &'a mut Sink<'s>,
}

impl Draft<'_, '_> {
    fn last(&mut self) -> Option<&mut Diagnostic> {
        self.sink.items.last_mut()
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        if let Some(d) = self.last() {
            d.help = Some(help.into());
        }
        self
    }

    pub(crate) fn label(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        if let Some(d) = self.last() {
            d.labels.push((span, label.into()));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = "a = 1\nпривет = \"x\"\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.line_col(src, 0), (1, 1));
        assert_eq!(idx.line_col(src, 6), (2, 1));
        let quote = src.find('"').unwrap();
        assert_eq!(idx.line_col(src, quote), (2, 10));
    }

    #[test]
    fn far_labels_get_their_own_snippet_and_the_primary_comes_first() {
        let mut src = String::from("first = 1\n");
        for _ in 0..20 {
            src.push_str("# filler\n");
        }
        let second = src.len();
        src.push_str("second = 2\n");
        let d = Diagnostic {
            severity: Severity::Error,
            message: "twice".into(),
            span: Some(second..second + 6),
            line: 22,
            column: 1,
            labels: vec![(0..5, "first declared here".into())],
            help: Some("remove one".into()),
        };
        let out = render_items("m.toml", &src, &[d], false);
        let header = out.find("m.toml:22:1").expect(&out);
        let label = out.find("first declared here").expect(&out);
        assert!(header < label, "{out}");
        assert!(!out.contains("filler"), "{out}");
        assert!(out.contains("help: remove one"), "{out}");
    }

    #[test]
    fn spans_past_the_end_do_not_panic() {
        let d = Diagnostic {
            severity: Severity::Error,
            message: "eof".into(),
            span: Some(3..99),
            line: 1,
            column: 4,
            labels: vec![(50..60, "nowhere".into())],
            help: None,
        };
        let out = render_items("m.toml", "abc", &[d], false);
        assert!(out.contains("error: eof"), "{out}");
    }
}
