//! The `get` (`list`) command: pods with bandwidth annotations, and with `--verify` the limits
//! programmed on their host interfaces, read through the node agent.

use serde::Serialize;
use shared::{Error, KubeArgs, OutputFormat, Result, Table};

use crate::agent::{AgentAction, AgentReport};
use crate::cli::GetArgs;
use crate::live::{self, AgentPodSettings};
use crate::pods::{self, PodInfo};
use crate::rate::{Rate, human_rate};
use crate::shaping::ShapingState;

/// One direction's limit as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitView {
    /// Annotation text.
    pub annotation: String,
    /// Parsed rate in bit/s; null when the annotation is invalid.
    pub bits_per_second: Option<u64>,
}

/// Outcome of `--verify` for one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Programmed ingress rate in bit/s, null when no TBF is on the host veth.
    pub live_ingress: Option<u64>,
    /// Programmed egress rate in bit/s, null when no TBF is on the ifb.
    pub live_egress: Option<u64>,
    /// Whether the programmed limits equal the annotations.
    pub matches: bool,
    /// Differences found, `match`, or the reason the agent could not read the pod.
    pub detail: String,
    /// Host-side interface read.
    pub host_interface: Option<String>,
    /// Every qdisc the agent found, with its device.
    pub qdiscs: Vec<String>,
}

/// One row of `get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodLimits {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node, null when unscheduled.
    pub node: Option<String>,
    /// Ingress annotation.
    pub ingress: Option<LimitView>,
    /// Egress annotation.
    pub egress: Option<LimitView>,
    /// Result of `--verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verification>,
}

fn limit_view(limit: &Option<std::result::Result<Rate, String>>) -> Option<LimitView> {
    limit.as_ref().map(|limit| match limit {
        Ok(rate) => LimitView {
            annotation: crate::target::annotation_value(*rate),
            bits_per_second: Some(rate.bits_per_second()),
        },
        Err(text) => LimitView {
            annotation: text.clone(),
            bits_per_second: None,
        },
    })
}

/// Builds the row of a pod from its annotations.
pub fn row_for(pod: &PodInfo) -> PodLimits {
    let limits = pod.limits();
    PodLimits {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        node: pod.node.clone(),
        ingress: limit_view(&limits.ingress),
        egress: limit_view(&limits.egress),
        verify: None,
    }
}

/// Compares the annotated rates with the TBF rates the agent read. The kernel takes whole
/// bytes/s, so an annotation matches when its bit/s divided by 8 (rounded down) is the
/// programmed byte rate.
pub fn compare(row: &PodLimits, state: &ShapingState, host: Option<String>) -> Verification {
    let live_ingress = state.ingress.map(|p| p.rate_bytes);
    let live_egress = state.egress.map(|p| p.rate_bytes);
    let mut differences = Vec::new();
    for (direction, annotated, live) in [
        ("ingress", &row.ingress, live_ingress),
        ("egress", &row.egress, live_egress),
    ] {
        let expected = annotated
            .as_ref()
            .and_then(|v| v.bits_per_second)
            .map(|b| b / 8);
        if expected != live {
            let want = annotated
                .as_ref()
                .map_or("none".to_string(), |v| v.annotation.clone());
            let have = live.map_or("none".to_string(), |b| human_rate(b.saturating_mul(8)));
            differences.push(format!("{direction}: annotation {want}, programmed {have}"));
        }
    }
    Verification {
        live_ingress: live_ingress.map(|b| b.saturating_mul(8)),
        live_egress: live_egress.map(|b| b.saturating_mul(8)),
        matches: differences.is_empty(),
        detail: if differences.is_empty() {
            "match".to_string()
        } else {
            differences.join("; ")
        },
        host_interface: host,
        qdiscs: state
            .qdiscs
            .iter()
            .map(|q| format!("{} {} {} {}", q.device, q.kind, q.handle, q.parent))
            .collect(),
    }
}

fn failed_verification(detail: String) -> Verification {
    Verification {
        live_ingress: None,
        live_egress: None,
        matches: false,
        detail,
        host_interface: None,
        qdiscs: Vec::new(),
    }
}

fn rate_cell(view: &Option<LimitView>) -> String {
    match view {
        None => "-".to_string(),
        Some(LimitView {
            bits_per_second: Some(bits),
            ..
        }) => format!("{bits} ({})", human_rate(*bits)),
        Some(LimitView { annotation, .. }) => format!("invalid ({annotation})"),
    }
}

fn live_cell(bits: Option<u64>) -> String {
    bits.map_or("-".to_string(), |b| format!("{b} ({})", human_rate(b)))
}

/// Renders the rows as a kubectl-style table.
pub fn render_table(rows: &[PodLimits], all_namespaces: bool, verify: bool, wide: bool) -> String {
    let mut headers = Vec::new();
    if all_namespaces {
        headers.push("namespace");
    }
    headers.extend(["name", "node", "ingress", "egress"]);
    if verify {
        headers.extend(["live-ingress", "live-egress", "verify"]);
    }
    let mut table = Table::new(&headers).with_wide_columns(&["host-interface", "qdiscs"]);
    for row in rows {
        let mut cells = Vec::new();
        if all_namespaces {
            cells.push(row.namespace.clone());
        }
        cells.push(row.name.clone());
        cells.push(row.node.clone().unwrap_or_default());
        cells.push(rate_cell(&row.ingress));
        cells.push(rate_cell(&row.egress));
        if let Some(verification) = &row.verify {
            cells.push(live_cell(verification.live_ingress));
            cells.push(live_cell(verification.live_egress));
            cells.push(verification.detail.clone());
        }
        let host = row
            .verify
            .as_ref()
            .and_then(|v| v.host_interface.clone())
            .unwrap_or_default();
        cells.push(host);
        let qdiscs = row
            .verify
            .as_ref()
            .map(|v| v.qdiscs.join(", "))
            .unwrap_or_default();
        cells.push(qdiscs);
        table.add_row(cells);
    }
    table.render(wide)
}

/// Runs `get`.
pub async fn get(kube: &KubeArgs, args: GetArgs) -> Result<()> {
    let cluster = kube.load().await?;
    let client = cluster.client()?;
    let namespace = (!args.all_namespaces).then_some(cluster.namespace.as_str());
    let pods = pods::list_pods(&client, namespace, args.selector.as_deref()).await?;
    let limited: Vec<&PodInfo> = pods.iter().filter(|p| p.limits().is_set()).collect();

    let mut rows = Vec::new();
    for pod in &limited {
        let mut row = row_for(pod);
        if args.verify {
            row.verify = Some(verify_pod(&client, pod, &args).await);
        }
        rows.push(row);
    }

    print_rows(&rows, &args, namespace)?;
    if rows
        .iter()
        .any(|r| r.verify.as_ref().is_some_and(|v| !v.matches))
    {
        return Err(Error::Exit(1));
    }
    Ok(())
}

async fn verify_pod(client: &kube::Client, pod: &PodInfo, args: &GetArgs) -> Verification {
    if let Err(reason) = pods::check_shapeable(pod, true) {
        return failed_verification(format!("not verified: {reason}"));
    }
    let node = pod.node.clone().unwrap_or_default();
    let settings = AgentPodSettings::new(&args.agent, &pod.namespace, &node, &pod.uid);
    let report: Result<AgentReport> = live::run_agent(
        client,
        &settings,
        &AgentAction::Show,
        args.agent.agent_timeout,
    )
    .await;
    match report {
        Ok(report) => {
            let host = report.host_interface.as_ref().map(|i| i.name.clone());
            match &report.state {
                Some(state) => compare(&row_for(pod), state, host),
                None => failed_verification("the agent reported no state".to_string()),
            }
        }
        Err(error) => failed_verification(format!("not verified: {error}")),
    }
}

fn print_rows(rows: &[PodLimits], args: &GetArgs, namespace: Option<&str>) -> Result<()> {
    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&rows, args.output.output)
        }
        OutputFormat::Name => {
            let text: String = rows.iter().map(|r| format!("pod/{}\n", r.name)).collect();
            shared::output::print(&text)
        }
        OutputFormat::Table | OutputFormat::Wide => {
            if rows.is_empty() {
                let place =
                    namespace.map_or("any namespace".to_string(), |n| format!("namespace {n}"));
                eprintln!("No pods with bandwidth limits found in {place}.");
                return Ok(());
            }
            let wide = args.output.output == OutputFormat::Wide;
            shared::output::print(&render_table(rows, args.all_namespaces, args.verify, wide))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tbf::TbfParams;
    use std::collections::BTreeMap;

    fn pod(ingress: Option<&str>, egress: Option<&str>) -> PodInfo {
        let mut annotations = BTreeMap::new();
        if let Some(value) = ingress {
            annotations.insert(
                crate::target::INGRESS_ANNOTATION.to_string(),
                value.to_string(),
            );
        }
        if let Some(value) = egress {
            annotations.insert(
                crate::target::EGRESS_ANNOTATION.to_string(),
                value.to_string(),
            );
        }
        PodInfo {
            namespace: "shop".into(),
            name: "web-0".into(),
            uid: "u".into(),
            node: Some("node-1".into()),
            phase: "Running".into(),
            host_network: false,
            annotations,
        }
    }

    fn state(ingress: Option<u64>, egress: Option<u64>) -> ShapingState {
        let params = |rate_bytes| TbfParams {
            rate_bytes,
            burst_bytes: 10_000,
            limit_bytes: 50_000,
        };
        ShapingState {
            ingress: ingress.map(params),
            egress: egress.map(params),
            ifb: None,
            qdiscs: vec![],
            filters: vec![],
        }
    }

    #[test]
    fn table_shows_bits_and_units() {
        let rows = vec![row_for(&pod(Some("20M"), Some("fast")))];
        assert_eq!(
            render_table(&rows, false, false, false),
            "NAME    NODE     INGRESS               EGRESS\n\
             web-0   node-1   20000000 (20Mbit/s)   invalid (fast)\n"
        );
    }

    #[test]
    fn verify_matches_equal_rates() {
        let row = row_for(&pod(Some("20M"), Some("10M")));
        let verification = compare(&row, &state(Some(2_500_000), Some(1_250_000)), None);
        assert!(verification.matches);
        assert_eq!(verification.detail, "match");
        assert_eq!(verification.live_ingress, Some(20_000_000));
    }

    #[test]
    fn verify_reports_differences() {
        let row = row_for(&pod(Some("20M"), None));
        let verification = compare(&row, &state(Some(1_250_000), Some(1_250_000)), None);
        assert!(!verification.matches);
        assert_eq!(
            verification.detail,
            "ingress: annotation 20M, programmed 10Mbit/s; egress: annotation none, programmed 10Mbit/s"
        );
    }

    #[test]
    fn verify_rounds_bits_down_to_bytes() {
        let row = row_for(&pod(Some("1001"), None));
        assert!(compare(&row, &state(Some(125), None), None).matches);
    }

    #[test]
    fn json_has_real_numbers_and_null() {
        let row = row_for(&pod(Some("20M"), Some("fast")));
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["ingress"]["bitsPerSecond"], 20_000_000);
        assert!(json["egress"]["bitsPerSecond"].is_null());
        assert!(json.get("verify").is_none());
    }
}
