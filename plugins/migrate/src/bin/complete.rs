//! `kubectl_complete-migrate`: argument completion for `kubectl migrate`, run by kubectl 1.26+.

fn main() -> std::process::ExitCode {
    shared::app::complete_main::<kubectl_migrate::cli::Cli>()
}
