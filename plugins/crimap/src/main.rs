//! `kubectl-crimap`: the plugin binary.

fn main() -> std::process::ExitCode {
    kubectl_crimap::main()
}
