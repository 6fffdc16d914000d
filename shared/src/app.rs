//! The process entry of every plugin: the runtime, logging, error printing and exit codes.

use std::future::Future;
use std::process::ExitCode;

use crate::error::{EXIT_FAILURE, EXIT_OK, Error};

/// Runs a plugin command on a tokio runtime and turns its result into the exit code.
/// Errors print once to stderr as `kubectl-<name>: error: ...`; a closed stdout ends quietly.
pub fn run_plugin<F>(plugin: &str, verbosity: u8, command: F) -> ExitCode
where
    F: Future<Output = Result<(), Error>>,
{
    crate::logging::init(verbosity);
    install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kubectl-{plugin}: error: failed to start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };

    match runtime.block_on(command) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => ExitCode::from(report(plugin, &error)),
    }
}

/// Names ring as the process's rustls crypto provider.
///
/// In a workspace build rustls carries two providers: ring (through kube) and aws-lc-rs (through
/// rust-s3's HTTP client). With both, rustls cannot choose by itself and the first TLS client
/// panics, so every plugin installs ring before it builds one. Later calls change nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Prints an error as kubectl plugins do and returns its exit code.
pub fn report(plugin: &str, error: &Error) -> u8 {
    if error.is_broken_pipe() {
        return EXIT_OK;
    }
    if !matches!(error, Error::Exit(_)) {
        eprintln!("kubectl-{plugin}: error: {error}");
    }
    error.exit_code()
}

/// Runs the whole `main` of a plugin binary. It serves kubectl's `__complete` requests, parses
/// the command line (clap prints usage errors and exits 2, help and version exit 0), then runs
/// the command and maps its result to the exit code.
pub fn plugin_main<C, F, Fut>(plugin: &str, verbosity_of: fn(&C) -> u8, run: F) -> ExitCode
where
    C: clap::Parser,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    if crate::completion::handle_complete_request(&C::command(), &args) {
        return ExitCode::from(EXIT_OK);
    }

    let cli = match C::try_parse() {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let verbosity = verbosity_of(&cli);
    run_plugin(plugin, verbosity, run(cli))
}

/// Runs the whole `main` of a `kubectl_complete-<name>` binary. kubectl 1.26+ starts it with the
/// words after `kubectl <name>` and reads Cobra-format completions from its stdout.
pub fn complete_main<C: clap::Parser>() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let words = match words.first().map(String::as_str) {
        Some("__complete") => words[1..].to_vec(),
        _ => words,
    };
    print!(
        "{}",
        crate::completion::cobra_complete(&C::command(), &words)
    );
    ExitCode::from(EXIT_OK)
}
