//! `explain`: where a request goes and which rule decides.

use serde::Serialize;
use shared::{OutputFormat, Result};

use crate::cli::ExplainArgs;
use crate::cluster::Cluster;
use crate::httproute;
use crate::ingress;
use crate::routing::{self, Decision, Request, Route};
use crate::target::{self, Canary};

/// Output of `explain`: the decision and the Services involved.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Explanation {
    #[serde(flatten)]
    decision: Decision,
    provider: &'static str,
    stable_services: Vec<String>,
    canary_service: Option<String>,
}

/// Runs `explain`.
pub async fn run(cluster: &Cluster, args: &ExplainArgs) -> Result<()> {
    let canary = target::resolve(cluster, &args.target).await?;
    let request = Request {
        headers: args.header.clone(),
        cookies: args.cookie.clone(),
        path: args.path.clone(),
        method: args.method.to_ascii_uppercase(),
        host: args.host.clone(),
    };
    let explanation = explain(&canary, &request);

    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&explanation, args.output.output)
        }
        _ => {
            let share = match explanation.decision.route {
                Route::Split { canary_share } => format!(" ({:.1}% canary)", canary_share * 100.0),
                _ => String::new(),
            };
            let mut text = format!(
                "Route:    {}{share}\nReason:   {}\nStable:   {}\n",
                explanation.decision.route.name(),
                explanation.decision.reason,
                explanation.stable_services.join(", ")
            );
            text.push_str(&format!(
                "Canary:   {}\n",
                explanation.canary_service.as_deref().unwrap_or("<none>")
            ));
            shared::output::print(&text)
        }
    }
}

fn explain(canary: &Canary, request: &Request) -> Explanation {
    match canary {
        Canary::Nginx(pair) => {
            let stable_services = ingress::services_of(&pair.primary);
            let Some(canary_ingress) = &pair.canary else {
                return Explanation {
                    decision: Decision {
                        route: Route::Stable,
                        reason: format!(
                            "Ingress {} has no canary Ingress",
                            ingress::name_of(&pair.primary)
                        ),
                    },
                    provider: "nginx",
                    stable_services,
                    canary_service: None,
                };
            };
            let affinity =
                routing::affinity_cookie(&ingress::annotations_of(&pair.primary.metadata)).or_else(
                    || routing::affinity_cookie(&ingress::annotations_of(&canary_ingress.metadata)),
                );
            Explanation {
                decision: routing::explain_nginx(
                    &ingress::canary_annotations(canary_ingress),
                    affinity.as_deref(),
                    request,
                ),
                provider: "nginx",
                stable_services,
                canary_service: ingress::services_of(canary_ingress).first().cloned(),
            }
        }
        Canary::Gateway(route) => {
            let canary_service = route.state.as_ref().map(|s| s.canary_service.clone());
            let stable_services = match &route.state {
                Some(state) => vec![state.stable_service.clone()],
                None => httproute::stable_services(&route.spec),
            };
            Explanation {
                decision: httproute::explain_route(&route.spec, canary_service.as_deref(), request),
                provider: "gateway-api",
                stable_services,
                canary_service,
            }
        }
    }
}
