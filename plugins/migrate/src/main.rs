//! `kubectl-migrate`: the plugin binary.

fn main() -> std::process::ExitCode {
    kubectl_migrate::main()
}
