//! `verify`: the observed canary share of real requests against the expected weight.

use shared::{Error, OutputFormat, Result};

use crate::cli::VerifyArgs;
use crate::verify::{self, Classifier, Probe};

/// Default number of requests.
pub const DEFAULT_REQUESTS: u64 = 200;

/// Runs `verify`. `namespace_flag` is the value of `-n`, which sets the request count here
/// because verify talks to no API server.
pub async fn run(args: &VerifyArgs, namespace_flag: Option<&str>) -> Result<()> {
    let requests = match (args.requests, namespace_flag) {
        (Some(count), _) => count,
        (None, Some(text)) => text.trim().parse::<u64>().map_err(|_| {
            Error::usage(format!("invalid -n {text:?}: verify uses -n for the number of requests, a whole number such as 200"))
        })?,
        (None, None) => DEFAULT_REQUESTS,
    };
    if requests == 0 {
        return Err(Error::usage(
            "invalid number of requests 0: send at least 1",
        ));
    }
    let classifier =
        Classifier::from_flags(args.canary_match.as_deref(), args.canary_header.as_deref())
            .map_err(Error::usage)?;
    let probe = Probe {
        url: args.url.clone(),
        host: args.host.clone(),
        headers: args.header.clone(),
        cookies: args.cookie.clone(),
        timeout: args.timeout,
        ca_pem: match &args.certificate_authority {
            Some(path) => Some(std::fs::read(path).map_err(|error| {
                Error::usage(format!(
                    "failed to read --certificate-authority {}: {error}",
                    path.display()
                ))
            })?),
            None => None,
        },
        insecure: args.insecure_skip_tls_verify,
    };

    let expected = args.expect_weight.map(|percent| percent / 100.0);
    let report = measure(&probe, &classifier, requests, expected).await?;
    if report.tally.failed > 0 {
        eprintln!(
            "warning: {} of {requests} requests failed and are left out of the split",
            report.tally.failed
        );
    }
    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&report, args.output.output)?
        }
        _ => shared::output::print(&verify::render(&report))?,
    }
    judge(&report)
}

/// Sends the requests and builds the report; fails when no response could be classified.
pub async fn measure(
    probe: &Probe,
    classifier: &Classifier,
    requests: u64,
    expected: Option<f64>,
) -> Result<verify::Report> {
    let tally = verify::send(probe, classifier, requests)
        .await
        .map_err(Error::usage)?;
    if tally.canary + tally.stable == 0 {
        return Err(Error::failed(format!(
            "all {requests} requests to {} failed (first failure: {}): check the URL and --host",
            probe.url,
            tally.first_error.as_deref().unwrap_or("unknown")
        )));
    }
    Ok(verify::report(requests, tally, expected))
}

/// Turns a disagreement with the expected weight into exit code 1.
pub fn judge(report: &verify::Report) -> Result<()> {
    if let (Some(false), Some(interval), Some(expected)) =
        (report.agrees, &report.interval, report.expected)
    {
        return Err(Error::failed(format!(
            "the observed canary share {:.1}% disagrees with the expected {:.1}%, which lies outside the 95% interval {:.1}% to {:.1}%",
            interval.share * 100.0,
            expected * 100.0,
            interval.low * 100.0,
            interval.high * 100.0
        )));
    }
    Ok(())
}
