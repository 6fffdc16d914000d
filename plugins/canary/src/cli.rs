//! Command-line definition of `kubectl canary`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use shared::completion::CompletionArgs;
use shared::{KubeArgs, OutputArgs};

use crate::weight;

const EXAMPLES: &str = "\
Examples:
  # Send 10% of the traffic of Ingress web to the Service web-v2
  kubectl canary create web --service web-v2 --weight 10

  # Send requests with the header X-Canary: always to the canary
  kubectl canary set-header web X-Canary

  # Raise the weight step by step, checking the split before each step
  kubectl canary rollout web --steps 10,25,50,100 --interval 2m \\
      --verify-url http://web.example.test/ --verify-canary-match 'version: v2'

  # Show every canary in the cluster
  kubectl canary status -A

  # Where does a request with this cookie go?
  kubectl canary explain web --cookie beta=always

  # Rewrite old extensions/v1beta1 Ingress manifests
  kubectl canary convert -f old-ingress.yaml
";

/// Release new versions gradually behind ingress-nginx or Gateway API.
#[derive(Parser, Debug)]
#[command(name = "kubectl-canary", bin_name = "kubectl canary", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `kubectl canary`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a canary for an Ingress (a canary Ingress) or an HTTPRoute (a weighted backendRef).
    Create(CreateArgs),
    /// Set the share of requests that the canary receives.
    SetWeight(SetWeightArgs),
    /// Send requests with a header to the canary.
    SetHeader(SetHeaderArgs),
    /// Send requests with the cookie value `always` to the canary and `never` to stable.
    SetCookie(SetCookieArgs),
    /// Remove the header and cookie rules, keeping the weight.
    ClearRules(TargetArgs),
    /// Show canaries: services, ready endpoints, weight, rules and warnings.
    Status(StatusArgs),
    /// Run the pre-flight checks on canaries without changing anything.
    Lint(LintArgs),
    /// Point the primary at the canary Service, then remove the canary.
    Promote(PromoteArgs),
    /// Send all traffic back to the stable Service (weight 0, no header or cookie rules).
    Abort(AbortArgs),
    /// Raise the canary weight step by step; resumable, and rolled back when verify fails.
    Rollout(RolloutArgs),
    /// Send HTTP requests and measure the share that reaches the canary.
    Verify(VerifyArgs),
    /// Say where a request goes and which rule decides.
    Explain(ExplainArgs),
    /// Convert extensions/v1beta1 and networking.k8s.io/v1beta1 Ingress manifests to networking.k8s.io/v1.
    Convert(ConvertArgs),
    /// Write a shell completion script for kubectl-canary (bash, zsh or fish).
    Completion(CompletionArgs),
}

/// Traffic provider of a canary.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// ingress-nginx canary annotations on a second Ingress.
    Nginx,
    /// Gateway API HTTPRoute backendRef weights and header matches.
    GatewayApi,
}

impl Provider {
    /// Returns the flag value naming the provider.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Nginx => "nginx",
            Provider::GatewayApi => "gateway-api",
        }
    }
}

/// Value of `--dry-run`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DryRun {
    /// Write the changes.
    #[default]
    None,
    /// Print the objects that would be written and write nothing.
    Client,
    /// Send the writes with dryRun=All so that the API server validates them without storing.
    Server,
}

/// The canary a command works on.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Primary Ingress or HTTPRoute (a canary Ingress's own name works too).
    pub name: String,

    /// Traffic provider; detected from the object named NAME when not given.
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,

    /// Name of the canary Ingress [default: NAME-canary, else the canary attached to NAME].
    #[arg(long = "name", value_name = "CANARY")]
    pub canary_name: Option<String>,
}

/// Header rule flags of `create`.
#[derive(Args, Debug, Clone, Default)]
pub struct HeaderFlags {
    /// Header that selects the canary: `always` sends to it, `never` away from it.
    #[arg(long, value_name = "NAME")]
    pub header: Option<String>,

    /// Exact header value that selects the canary (instead of always/never).
    #[arg(
        long,
        value_name = "VALUE",
        requires = "header",
        conflicts_with = "header_pattern"
    )]
    pub header_value: Option<String>,

    /// Regular expression on the header value that selects the canary; ingress-nginx does not anchor it.
    #[arg(long, value_name = "REGEX", requires = "header")]
    pub header_pattern: Option<String>,
}

/// Arguments of `create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Primary Ingress or HTTPRoute.
    pub primary: String,

    /// Service that runs the new version.
    #[arg(long, value_name = "SVC")]
    pub service: String,

    /// Port of the canary Service [default: each path's port of the primary].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub port: Option<i32>,

    /// Share of requests sent to the canary, out of --total.
    #[arg(long, value_name = "N", default_value = "0", value_parser = weight::parse_weight)]
    pub weight: u32,

    /// Weight total (ingress-nginx treats totals below 100 as 100).
    #[arg(long, value_name = "T", default_value = "100", value_parser = weight::parse_total)]
    pub total: u32,

    #[command(flatten)]
    pub header: HeaderFlags,

    /// Cookie that selects the canary with the value `always` and stable with `never`.
    #[arg(long, value_name = "NAME")]
    pub cookie: Option<String>,

    /// Name of the canary Ingress [default: PRIMARY-canary].
    #[arg(long = "name", value_name = "CANARY")]
    pub canary_name: Option<String>,

    /// Stable Service of an HTTPRoute whose rules send to more than one Service.
    #[arg(long, value_name = "SVC")]
    pub stable_service: Option<String>,

    /// Traffic provider; detected from the object named PRIMARY when not given.
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,

    /// none, client (print the objects) or server (validated by the API server, not stored).
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// Arguments of `set-weight`.
#[derive(Args, Debug)]
pub struct SetWeightArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Share of requests sent to the canary, out of the total.
    #[arg(value_name = "N", value_parser = weight::parse_weight)]
    pub weight: u32,

    /// New weight total [default: the current total].
    #[arg(long, value_name = "T", value_parser = weight::parse_total)]
    pub total: Option<u32>,

    /// none, client (print the objects) or server (validated by the API server, not stored).
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// Arguments of `set-header`.
#[derive(Args, Debug)]
pub struct SetHeaderArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Header name, matched case-insensitively.
    #[arg(value_name = "HEADER")]
    pub header: String,

    /// Exact value that selects the canary [default: always/never].
    #[arg(long, value_name = "VALUE", conflicts_with = "pattern")]
    pub value: Option<String>,

    /// Regular expression on the value that selects the canary.
    #[arg(long, value_name = "REGEX")]
    pub pattern: Option<String>,

    /// none, client (print the objects) or server (validated by the API server, not stored).
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// Arguments of `set-cookie`.
#[derive(Args, Debug)]
pub struct SetCookieArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Cookie name.
    #[arg(value_name = "COOKIE")]
    pub cookie: String,

    /// none, client (print the objects) or server (validated by the API server, not stored).
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// Arguments of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Primary Ingress or HTTPRoute [default: every canary in the namespace].
    pub name: Option<String>,

    /// Show canaries in every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,

    /// Traffic provider; detected from the object named NAME when not given.
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,

    /// Name of the canary Ingress [default: NAME-canary, else the canary attached to NAME].
    #[arg(long = "name", value_name = "CANARY", requires = "name")]
    pub canary_name: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `lint`.
#[derive(Args, Debug)]
pub struct LintArgs {
    /// Primary Ingress or HTTPRoute [default: every canary in the namespace].
    pub name: Option<String>,

    /// Check canaries in every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,

    /// Exit 1 on warnings too, not only on errors.
    #[arg(long)]
    pub strict: bool,

    /// Traffic provider; detected from the object named NAME when not given.
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,

    /// Name of the canary Ingress [default: NAME-canary, else the canary attached to NAME].
    #[arg(long = "name", value_name = "CANARY", requires = "name")]
    pub canary_name: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `promote`.
#[derive(Args, Debug)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// none, client (print the plan and objects) or server (validated by the API server, not stored).
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// Arguments of `abort`.
#[derive(Args, Debug)]
pub struct AbortArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// none, client (print the objects) or server (validated by the API server, not stored).
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// Arguments of `rollout`.
#[derive(Args, Debug)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Canary weights to go through, increasing, out of the canary's total.
    #[arg(long, value_name = "WEIGHTS", value_parser = parse_steps)]
    pub steps: Steps,

    /// Time to wait at each step before the next one, e.g. 30s, 2m.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = shared::kubeconfig::parse_duration)]
    pub interval: Duration,

    /// Apply one step and stop; each rerun applies the next step.
    #[arg(long)]
    pub pause: bool,

    /// Promote the canary after the last step.
    #[arg(long)]
    pub promote: bool,

    #[command(flatten)]
    pub verify: RolloutVerifyArgs,
}

/// Verify flags of `rollout`, checked at each step against the step's weight.
#[derive(Args, Debug, Clone, Default)]
pub struct RolloutVerifyArgs {
    /// URL to send verify requests to before each next step.
    #[arg(long, value_name = "URL")]
    pub verify_url: Option<String>,

    /// Host header of the verify requests.
    #[arg(long, value_name = "HOST", requires = "verify_url")]
    pub verify_host: Option<String>,

    /// Number of verify requests per step.
    #[arg(long, value_name = "N", default_value_t = 200, requires = "verify_url")]
    pub verify_requests: u64,

    /// Header added to verify requests, NAME:VALUE; repeatable.
    #[arg(long, value_name = "NAME:VALUE", requires = "verify_url", value_parser = crate::routing::parse_header_arg)]
    pub verify_header: Vec<(String, String)>,

    /// Regular expression on the response body that marks a canary response.
    #[arg(
        long,
        value_name = "REGEX",
        requires = "verify_url",
        conflicts_with = "verify_canary_header"
    )]
    pub verify_canary_match: Option<String>,

    /// Response header whose presence marks a canary response (NAME, or NAME:VALUE for a value).
    #[arg(long, value_name = "NAME", requires = "verify_url")]
    pub verify_canary_header: Option<String>,

    /// Failed requests (errors and 5xx responses) a step tolerates before the rollout aborts.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "verify_url")]
    pub verify_max_failures: u64,

    /// PEM file of CA certificates to trust for an https verify URL, besides the web PKI roots.
    #[arg(long, value_name = "FILE", requires = "verify_url")]
    pub verify_certificate_authority: Option<PathBuf>,

    /// Accept any certificate of an https verify URL (for self-signed test setups).
    #[arg(
        long,
        requires = "verify_url",
        conflicts_with = "verify_certificate_authority"
    )]
    pub verify_insecure_skip_tls_verify: bool,
}

/// Arguments of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// URL to send requests to.
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// Host header of the requests (the Ingress or HTTPRoute host).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Number of requests [default: 200]. `-n N` sets it too, because verify uses no namespace.
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,

    /// Header added to every request, NAME:VALUE; repeatable.
    #[arg(long, value_name = "NAME:VALUE", value_parser = crate::routing::parse_header_arg)]
    pub header: Vec<(String, String)>,

    /// Cookie added to every request, NAME=VALUE; repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = crate::routing::parse_cookie_arg)]
    pub cookie: Vec<(String, String)>,

    /// Expected canary share in percent (0 to 100); exit 1 when it lies outside the 95% interval.
    #[arg(long, value_name = "N", value_parser = parse_percent)]
    pub expect_weight: Option<f64>,

    /// Regular expression on the response body that marks a canary response.
    #[arg(
        long,
        value_name = "REGEX",
        required_unless_present = "canary_header",
        conflicts_with = "canary_header"
    )]
    pub canary_match: Option<String>,

    /// Response header whose presence marks a canary response (NAME, or NAME:VALUE for a value).
    #[arg(long, value_name = "NAME")]
    pub canary_header: Option<String>,

    /// Time to wait for each response, e.g. 5s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = shared::kubeconfig::parse_duration)]
    pub timeout: Duration,

    /// PEM file of CA certificates to trust for an https URL, besides the web PKI roots.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,

    /// Accept any certificate of an https URL (for self-signed test setups).
    #[arg(long, conflicts_with = "certificate_authority")]
    pub insecure_skip_tls_verify: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Request header, NAME:VALUE; repeatable.
    #[arg(long, value_name = "NAME:VALUE", value_parser = crate::routing::parse_header_arg)]
    pub header: Vec<(String, String)>,

    /// Request cookie, NAME=VALUE; repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = crate::routing::parse_cookie_arg)]
    pub cookie: Vec<(String, String)>,

    /// Request path, with an optional query string (HTTPRoute matching only).
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub path: String,

    /// Request method (HTTPRoute matching only).
    #[arg(long, value_name = "METHOD", default_value = "GET")]
    pub method: String,

    /// Request host (HTTPRoute hostnames only).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Manifest file to convert, `-` for standard input.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub filename: PathBuf,

    /// Output format: yaml or json.
    #[arg(short = 'o', long, value_enum, default_value_t = ConvertFormat::Yaml)]
    pub output: ConvertFormat,
}

/// Output format of `convert`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertFormat {
    /// YAML documents separated by `---`.
    Yaml,
    /// One JSON object, or a List of several.
    Json,
}

/// Weights of `rollout --steps`, increasing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps(pub Vec<u32>);

fn parse_steps(value: &str) -> Result<Steps, String> {
    weight::parse_steps(value).map(Steps)
}

/// Parses a percentage between 0 and 100.
pub fn parse_percent(value: &str) -> Result<f64, String> {
    let percent: f64 = value.trim().parse().map_err(|_| {
        format!("invalid weight {value:?}: expected a percentage between 0 and 100")
    })?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!(
            "invalid weight {value:?}: expected a percentage between 0 and 100"
        ));
    }
    Ok(percent)
}

/// Returns the command definition named as the binary, for completion scripts.
pub fn command_for_scripts() -> clap::Command {
    Cli::command().bin_name("kubectl-canary")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-canary").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn create_parses_flags() {
        let cli = parse(&[
            "create",
            "web",
            "--service",
            "web-v2",
            "--weight",
            "10",
            "--header",
            "X-Canary",
            "--header-value",
            "on",
        ])
        .unwrap();
        let Command::Create(args) = cli.command else {
            panic!("not create")
        };
        assert_eq!(args.weight, 10);
        assert_eq!(args.total, 100);
        assert_eq!(args.header.header_value.as_deref(), Some("on"));
        assert_eq!(args.dry_run, DryRun::None);
    }

    #[test]
    fn weight_not_a_number_is_usage_error() {
        let error = parse(&["set-weight", "web", "ten"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(
            error.to_string().contains("invalid weight \"ten\""),
            "{error}"
        );
    }

    #[test]
    fn header_value_requires_header() {
        assert!(parse(&["create", "web", "--service", "v2", "--header-value", "x"]).is_err());
        assert!(
            parse(&[
                "create",
                "web",
                "--service",
                "v2",
                "--header",
                "h",
                "--header-value",
                "x",
                "--header-pattern",
                "y"
            ])
            .is_err()
        );
    }

    #[test]
    fn dry_run_without_value_means_client() {
        let cli = parse(&["promote", "web", "--dry-run"]).unwrap();
        let Command::Promote(args) = cli.command else {
            panic!("not promote")
        };
        assert_eq!(args.dry_run, DryRun::Client);
    }

    #[test]
    fn rollout_parses_steps_and_interval() {
        let cli = parse(&[
            "rollout",
            "web",
            "--steps",
            "10,50,100",
            "--interval",
            "30s",
        ])
        .unwrap();
        let Command::Rollout(args) = cli.command else {
            panic!("not rollout")
        };
        assert_eq!(args.steps, Steps(vec![10, 50, 100]));
        assert_eq!(args.interval, Duration::from_secs(30));
        assert!(parse(&["rollout", "web", "--steps", "50,10"]).is_err());
        assert!(parse(&["rollout", "web", "--steps", "10", "--interval", "soon"]).is_err());
    }

    #[test]
    fn verify_needs_a_classifier() {
        assert!(parse(&["verify", "--url", "http://127.0.0.1:1/"]).is_err());
        let cli = parse(&[
            "verify",
            "--url",
            "http://127.0.0.1:1/",
            "-n",
            "50",
            "--canary-match",
            "v2",
            "--expect-weight",
            "20",
        ])
        .unwrap();
        assert_eq!(cli.kube.namespace.as_deref(), Some("50"));
        assert!(
            parse(&[
                "verify",
                "--url",
                "u",
                "--canary-match",
                "v2",
                "--expect-weight",
                "120"
            ])
            .is_err()
        );
    }

    #[test]
    fn provider_names() {
        let cli = parse(&["status", "web", "--provider", "gateway-api"]).unwrap();
        let Command::Status(args) = cli.command else {
            panic!("not status")
        };
        assert_eq!(args.provider, Some(Provider::GatewayApi));
    }
}
