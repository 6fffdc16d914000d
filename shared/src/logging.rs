//! Logging through tracing to stderr: warnings by default, more detail with `-v`.

use tracing_subscriber::EnvFilter;

/// Maps kubectl's `-v` level to a tracing filter: 0-1 warn, 2-3 info, 4-5 debug, 6+ trace.
pub fn level_for_verbosity(verbosity: u8) -> &'static str {
    match verbosity {
        0..=1 => "warn",
        2..=3 => "info",
        4..=5 => "debug",
        _ => "trace",
    }
}

/// Installs the stderr logger. `RUST_LOG`, when set, overrides the `-v` level.
/// Calling it twice keeps the first logger.
pub fn init(verbosity: u8) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = level_for_verbosity(verbosity);
        // At the default level only the plugins' own warnings show: a failed request already
        // ends in the plugin's one-line error, so the client libraries' logs would repeat it.
        // -v 2 to 5 add the libraries' warnings, -v 6 and above everything.
        let directive = match verbosity {
            0..=1 => format!("off,shared={level},kubectl_={level}"),
            2..=5 => format!("warn,shared={level},kubectl_={level}"),
            _ => level.to_string(),
        };
        EnvFilter::new(directive)
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbosity >= 4)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_levels() {
        assert_eq!(level_for_verbosity(0), "warn");
        assert_eq!(level_for_verbosity(2), "info");
        assert_eq!(level_for_verbosity(4), "debug");
        assert_eq!(level_for_verbosity(9), "trace");
    }
}
