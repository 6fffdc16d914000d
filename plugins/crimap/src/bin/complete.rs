//! `kubectl_complete-crimap`: argument completion for `kubectl crimap`, run by kubectl 1.26+.

fn main() -> std::process::ExitCode {
    shared::app::complete_main::<kubectl_crimap::cli::Cli>()
}
