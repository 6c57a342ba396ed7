//! The plan as a pull-request comment: title, summary table, a `diff` block of changes, and what
//! stays folded in `<details>`; always shorter than [`MARKDOWN_LIMIT`] bytes.
//!
//! GitHub refuses comments over 65,536 characters. When the plan does not fit, whole lines are
//! left out (changes last, since they matter most) and a notice says how many and how to see them.

use crate::plan::{Action, Plan};
use crate::render::text::{change_line, summary_line};
use crate::render::{View, keep_reason_text, note_parts, plural, sanitize, shown_key};

/// Every Markdown output is strictly shorter than this many bytes (so also characters).
pub const MARKDOWN_LIMIT: usize = 65_000;

/// A line longer than this is cut, so that one absurd handler cannot crowd out the rest.
const MAX_LINE: usize = 2_000;
/// The subject is cut to this in the title.
const MAX_SUBJECT: usize = 500;
/// Room kept free for the truncation notice.
const NOTICE_ROOM: usize = 600;

/// What the comment is called and how a reader sees everything; `plan` and `diff` differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkdownLabels {
    /// `b24bind plan`: the title reads `### b24bind plan: <subject>`.
    pub title: String,
    /// The command that shows the whole plan, quoted in the truncation notice.
    pub see_all: String,
}

impl MarkdownLabels {
    pub fn plan() -> Self {
        MarkdownLabels {
            title: "b24bind plan".to_owned(),
            see_all: "b24bind plan --format json".to_owned(),
        }
    }

    pub fn diff() -> Self {
        MarkdownLabels {
            title: "b24bind diff".to_owned(),
            see_all: "b24bind diff OLD NEW --format json".to_owned(),
        }
    }
}

impl Default for MarkdownLabels {
    fn default() -> Self {
        MarkdownLabels::plan()
    }
}

/// [`plan_markdown_with`] with the `plan` labels.
pub fn plan_markdown(plan: &Plan, view: &View) -> String {
    plan_markdown_with(plan, view, &MarkdownLabels::plan())
}

pub fn plan_markdown_with(plan: &Plan, view: &View, labels: &MarkdownLabels) -> String {
    let head = head(plan, view, labels);
    let footer = format!(
        "\n<sub>portal fingerprint {}</sub>\n",
        inline_code(&sanitize(&plan.fingerprint))
    );

    let changes: Vec<String> = plan.changes.iter().map(|c| cap(change_line(c))).collect();
    let kept: Vec<String> = plan
        .kept
        .iter()
        .map(|(key, reason)| cap(format!("{}: {}", shown_key(key), keep_reason_text(reason))))
        .collect();
    let notes: Vec<String> = plan
        .notes
        .iter()
        .map(|note| {
            let (_, binding, message) = note_parts(note);
            cap(format!("{}: {message}", sanitize(&binding)))
        })
        .collect();
    let fence = fence_for(changes.iter().chain(&kept).chain(&notes));

    // First try everything; only when that is too long, budget line by line.
    let unlimited = usize::MAX;
    let full = assemble(
        &head,
        &footer,
        &fence,
        [&changes, &kept, &notes],
        [unlimited; 3],
    );
    if full.text.len() < MARKDOWN_LIMIT {
        return full.text;
    }

    let fixed = head.len() + footer.len() + NOTICE_ROOM + 3 * (2 * fence.len() + 120);
    let mut budget = MARKDOWN_LIMIT.saturating_sub(fixed);
    let mut budgets = [0; 3];
    for (slot, lines) in budgets.iter_mut().zip([&changes, &kept, &notes]) {
        *slot = budget;
        budget = budget.saturating_sub(lines_len(lines));
    }
    let mut cut = assemble(&head, &footer, &fence, [&changes, &kept, &notes], budgets);
    let hidden_changes = changes.len() - cut.shown[0];
    let hidden_other = (kept.len() - cut.shown[1]) + (notes.len() - cut.shown[2]);
    let mut notice = format!(
        "\n> [!NOTE]\n> Cut to fit a pull-request comment: {} of {} not shown",
        hidden_changes,
        plural(changes.len(), "change", "changes"),
    );
    if hidden_other > 0 {
        notice.push_str(&format!(
            ", nor {} of the kept bindings and notes",
            hidden_other
        ));
    }
    notice.push_str(&format!(
        ". See all of it with {}.\n",
        inline_code(&sanitize(&labels.see_all))
    ));
    // Right after the blocks it explains, before the footer.
    let at = cut.text.len() - footer.len();
    cut.text.insert_str(at, &notice);
    // The budget above makes this unreachable; it keeps the promise even if a label is huge.
    if cut.text.len() >= MARKDOWN_LIMIT {
        let end = floor_boundary(&cut.text, MARKDOWN_LIMIT - NOTICE_ROOM);
        let end = cut.text[..end].rfind('\n').map_or(0, |i| i + 1);
        cut.text.truncate(end);
        cut.text
            .push_str(&notice[..floor_boundary(&notice, NOTICE_ROOM / 2)]);
        cut.text.push('\n');
    }
    cut.text
}

fn head(plan: &Plan, view: &View, labels: &MarkdownLabels) -> String {
    let subject = view.shown_subject();
    let mut out = format!("### {}", sanitize(&labels.title));
    if !subject.is_empty() {
        out.push_str(": ");
        out.push_str(&inline_code(&cap_to(subject, MAX_SUBJECT)));
    }
    out.push_str("\n\n| bind | unbind | recreate | unchanged | kept |\n");
    out.push_str("|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| {} | {} | {} | {} | {} |\n",
        plan.count(Action::Bind),
        plan.count(Action::Unbind),
        plan.count(Action::Recreate),
        plan.unchanged.len(),
        plan.kept.len()
    ));
    if plan.is_empty() {
        let line = summary_line(plan, &View::new("", false));
        out.push_str(&format!("\n**No changes**: {line}.\n"));
    }
    out
}

struct Assembled {
    text: String,
    /// How many lines of changes, kept and notes made it in.
    shown: [usize; 3],
}

fn assemble(
    head: &str,
    footer: &str,
    fence: &str,
    [changes, kept, notes]: [&Vec<String>; 3],
    budgets: [usize; 3],
) -> Assembled {
    let mut text = head.to_owned();
    let mut shown = [0; 3];
    if !changes.is_empty() {
        let (block, n) = take_lines(changes, budgets[0]);
        shown[0] = n;
        if n > 0 {
            text.push_str(&format!("\n{fence}diff\n{block}{fence}\n"));
        }
    }
    for (i, (lines, title)) in [(kept, "Kept on the portal"), (notes, "Notes")]
        .into_iter()
        .enumerate()
    {
        if lines.is_empty() {
            continue;
        }
        let (block, n) = take_lines(lines, budgets[i + 1]);
        shown[i + 1] = n;
        if n > 0 {
            text.push_str(&format!(
                "\n<details><summary>{title} ({})</summary>\n\n{fence}text\n{block}{fence}\n\n</details>\n",
                lines.len()
            ));
        }
    }
    text.push_str(footer);
    Assembled { text, shown }
}

/// As many whole lines as fit in `budget` bytes (each with its newline), and how many.
fn take_lines(lines: &[String], budget: usize) -> (String, usize) {
    let mut out = String::new();
    let mut n = 0;
    for line in lines {
        if out.len() + line.len() + 1 > budget {
            break;
        }
        out.push_str(line);
        out.push('\n');
        n += 1;
    }
    (out, n)
}

fn lines_len(lines: &[String]) -> usize {
    lines.iter().map(|l| l.len() + 1).sum()
}

/// A code fence longer than any run of backticks inside, so no handler can close it early.
fn fence_for<'a>(lines: impl Iterator<Item = &'a String>) -> String {
    let longest = lines.map(|l| longest_backtick_run(l)).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Inline code that survives backticks in its content.
fn inline_code(s: &str) -> String {
    let ticks = "`".repeat(longest_backtick_run(s) + 1);
    if s.starts_with('`') || s.ends_with('`') {
        format!("{ticks} {s} {ticks}")
    } else {
        format!("{ticks}{s}{ticks}")
    }
}

fn cap(line: String) -> String {
    cap_to(line, MAX_LINE)
}

fn cap_to(mut s: String, max: usize) -> String {
    if s.len() > max {
        s.truncate(floor_boundary(&s, max));
        s.push('…');
    }
    s
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}
