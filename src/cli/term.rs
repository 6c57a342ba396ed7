//! Where output goes: results on stdout, everything else on stderr, colour only when wanted.

use std::io::{self, IsTerminal, Write};

use crate::cli::args::ColorChoice;

/// The terminal policy for one run.
#[derive(Clone, Copy, Debug)]
pub struct Term {
    pub color_out: bool,
    pub color_err: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Term {
    /// `--color auto` colours a stream only when it is a terminal and `NO_COLOR` is unset
    /// (or empty, as no-color.org specifies); `NO_COLOR` wins over `--color always` too.
    pub fn new(choice: ColorChoice, no_color: bool, quiet: bool, verbose: bool) -> Term {
        let decide = |tty: bool| {
            !no_color
                && match choice {
                    ColorChoice::Always => true,
                    ColorChoice::Never => false,
                    ColorChoice::Auto => tty,
                }
        };
        Term {
            color_out: decide(io::stdout().is_terminal()),
            color_err: decide(io::stderr().is_terminal()),
            quiet,
            verbose,
        }
    }

    /// Writes a result to stdout. A closed pipe (`| head`) is not an error worth reporting.
    pub fn result(&self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        let written = out
            .write_all(text.as_bytes())
            .and_then(|()| {
                if text.is_empty() || text.ends_with('\n') {
                    Ok(())
                } else {
                    out.write_all(b"\n")
                }
            })
            .and_then(|()| out.flush());
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// Progress and information on stderr, silenced by `--quiet`.
    pub fn info(&self, text: &str) {
        if !self.quiet {
            self.stderr(text);
        }
    }

    /// Request-level detail, shown with `--verbose`.
    pub fn debug(&self, text: &str) {
        if self.verbose {
            self.stderr(text);
        }
    }

    pub fn warn(&self, text: &str) {
        let label = self.paint_err("warning:", "\x1b[1;33m");
        self.stderr(&format!("{label} {text}"));
    }

    pub fn error(&self, text: &str) {
        let label = self.paint_err("error:", "\x1b[1;31m");
        self.stderr(&format!("{label} {text}"));
    }

    /// Raw text on stderr (already rendered diagnostics).
    pub fn stderr(&self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
    }

    fn paint_err(&self, text: &str, code: &str) -> String {
        if self.color_err {
            format!("{code}{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}
