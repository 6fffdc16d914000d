//! `kubectl-bwlimit`: the plugin binary.

fn main() -> std::process::ExitCode {
    kubectl_bwlimit::main()
}
