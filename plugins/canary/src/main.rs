//! `kubectl-canary`: the plugin binary.

fn main() -> std::process::ExitCode {
    kubectl_canary::main()
}
