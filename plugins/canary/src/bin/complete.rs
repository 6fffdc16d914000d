//! `kubectl_complete-canary`: argument completion for `kubectl canary`, run by kubectl 1.26+.

fn main() -> std::process::ExitCode {
    shared::app::complete_main::<kubectl_canary::cli::Cli>()
}
