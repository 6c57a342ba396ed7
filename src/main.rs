//! The `b24bind` command: parse the arguments, run one command, turn the outcome into an exit code.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
