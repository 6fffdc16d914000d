//! `kubectl_complete-bwlimit`: argument completion for `kubectl bwlimit`, run by kubectl 1.26+.

fn main() -> std::process::ExitCode {
    shared::app::complete_main::<kubectl_bwlimit::cli::Cli>()
}
