//! Shared test harness: run the built binary, start emulators, write manifests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use b24bind::emulator::{Emulator, EmulatorConfig, Row};

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertions that something appears nowhere.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The built `b24bind` with a clean environment: no B24_* variable, no colour, no manifest.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_b24bind"));
    clean_env(&mut cmd);
    cmd
}

/// Removes what the test runner's environment could leak into a run (B24_* settings, colour
/// switches) and closes stdin, for the binary or a shell that execs it.
pub fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("B24") || key == "NO_COLOR" || key == "CLICOLOR_FORCE" {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null());
}

/// Runs the binary with `args` and extra environment, in `dir`.
pub fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = bin();
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the b24bind binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary working directory with a manifest in it.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }

    /// Writes `handlers.toml`, the default manifest name.
    pub fn manifest(&self, text: &str) -> PathBuf {
        self.write("handlers.toml", text)
    }

    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        run_in(self.path(), args, env)
    }

    /// Runs a portal command against `emu` with its token in the environment.
    pub fn run_on(&self, emu: &Emulator, args: &[&str]) -> Run {
        let url = emu.base_url();
        let token = emu.access_token();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--portal", &url]);
        self.run(&all, &[("B24_ACCESS_TOKEN", &token)])
    }
}

pub fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("the emulator starts")
}

pub fn emulator_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).expect("the emulator starts")
}

/// An online row of the emulator's app.
pub fn online_row(emu: &Emulator, event: &str, handler: &str, user_id: u64) -> Row {
    Row {
        id: 0,
        app_id: emu.app_id(),
        event: event.to_ascii_uppercase(),
        handler: handler.to_owned(),
        user_id,
        connector_id: String::new(),
        options: Default::default(),
    }
}

/// An offline row of the emulator's app.
pub fn offline_row(emu: &Emulator, event: &str, connector: &str) -> Row {
    Row {
        id: 0,
        app_id: emu.app_id(),
        event: event.to_ascii_uppercase(),
        handler: String::new(),
        user_id: 0,
        connector_id: connector.to_owned(),
        options: Default::default(),
    }
}

/// The emulator's rows as sorted `EVENT handler user connector` lines, for comparisons.
pub fn row_lines(emu: &Emulator) -> Vec<String> {
    let mut lines: Vec<String> = emu
        .rows()
        .into_iter()
        .map(|r| format!("{} {} {} {}", r.event, r.handler, r.user_id, r.connector_id))
        .collect();
    lines.sort();
    lines
}
