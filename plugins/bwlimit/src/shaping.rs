//! Programs and reads the shaping of one pod on its host-side veth, with the scheme of the CNI
//! bandwidth plugin. A TBF root qdisc on the veth limits traffic into the pod. An ingress qdisc
//! on the veth redirects every packet to an ifb device whose TBF root limits traffic out of
//! the pod.

use serde::{Deserialize, Serialize};

use crate::netlink::{
    FILTER_PRIORITY, INGRESS_HANDLE, INGRESS_PARENT, Link, Netlink, NetlinkError, Qdisc,
    ROOT_PARENT, TBF_HANDLE,
};
use crate::tbf::TbfParams;

/// Root qdisc kinds that are a kernel default rather than someone's configuration, so
/// replacing them loses nothing.
const DEFAULT_ROOT_KINDS: [&str; 5] = ["noqueue", "pfifo_fast", "fq_codel", "mq", "pfifo"];

/// Limits to program; `None` leaves that direction as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Traffic into the pod: TBF at the root of the host-side veth.
    pub ingress: Option<TbfParams>,
    /// Traffic out of the pod: TBF at the root of the ifb device.
    pub egress: Option<TbfParams>,
}

/// A qdisc as reported in the agent's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QdiscReport {
    /// Interface name.
    pub device: String,
    /// Qdisc kind.
    pub kind: String,
    /// Handle as tc prints it, such as `1:` or `ffff:`.
    pub handle: String,
    /// `root`, `ingress` or the parent handle.
    pub parent: String,
    /// TBF settings when the kind is `tbf`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tbf: Option<TbfParams>,
}

/// Shaping found on a pod's host-side veth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapingState {
    /// TBF at the root of the host-side veth (traffic into the pod), if any.
    pub ingress: Option<TbfParams>,
    /// TBF at the root of the ifb device the veth redirects to (traffic out of the pod).
    pub egress: Option<TbfParams>,
    /// Name of the ifb device the redirect filter points to.
    pub ifb: Option<String>,
    /// Every qdisc on the veth and the ifb device.
    pub qdiscs: Vec<QdiscReport>,
    /// Filter kinds under the veth's ingress qdisc, such as `matchall`.
    pub filters: Vec<String>,
}

/// Returns the name of the ifb device this plugin creates for a host-side veth:
/// `bwl` and eight hex digits of the FNV-1a hash of the veth name (11 characters, within
/// the 15 Linux allows).
pub fn ifb_name(veth_name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in veth_name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("bwl{hash:08x}")
}

/// Formats a tc handle the way tc prints it (`1:`, `ffff:`, `1:2`).
pub fn format_handle(handle: u32) -> String {
    let (major, minor) = (handle >> 16, handle & 0xffff);
    if minor == 0 {
        format!("{major:x}:")
    } else {
        format!("{major:x}:{minor:x}")
    }
}

fn format_parent(parent: u32) -> String {
    match parent {
        ROOT_PARENT => "root".to_string(),
        INGRESS_PARENT => "ingress".to_string(),
        other => format_handle(other),
    }
}

fn report(device: &str, qdisc: &Qdisc) -> QdiscReport {
    QdiscReport {
        device: device.to_string(),
        kind: qdisc.kind.clone(),
        handle: format_handle(qdisc.handle),
        parent: format_parent(qdisc.parent),
        tbf: qdisc.tbf,
    }
}

fn root_tbf(qdiscs: &[Qdisc]) -> Option<TbfParams> {
    qdiscs
        .iter()
        .find(|q| q.parent == ROOT_PARENT && q.kind == "tbf")
        .and_then(|q| q.tbf)
}

/// Reads the shaping state of a host-side veth.
pub async fn read_state(netlink: &Netlink, veth: &Link) -> Result<ShapingState, NetlinkError> {
    let veth_qdiscs = netlink.qdiscs(veth.index).await?;
    let mut qdiscs: Vec<QdiscReport> = veth_qdiscs.iter().map(|q| report(&veth.name, q)).collect();

    let has_ingress = veth_qdiscs.iter().any(|q| q.parent == INGRESS_PARENT);
    let filters = if has_ingress {
        netlink.ingress_filters(veth.index).await?
    } else {
        Vec::new()
    };

    let mut ifb = None;
    let mut egress = None;
    if let Some(target) = filters.iter().find_map(|f| f.redirect_to)
        && let Some(link) = netlink.link_by_index(target).await?
    {
        let ifb_qdiscs = netlink.qdiscs(link.index).await?;
        qdiscs.extend(ifb_qdiscs.iter().map(|q| report(&link.name, q)));
        egress = root_tbf(&ifb_qdiscs);
        ifb = Some(link.name);
    }

    Ok(ShapingState {
        ingress: root_tbf(&veth_qdiscs),
        egress,
        ifb,
        qdiscs,
        filters: filters.into_iter().map(|f| f.kind).collect(),
    })
}

/// Checks that programming the veth overwrites nobody's configuration: the root qdisc must be
/// a kernel default or a TBF, and the ingress hook must not hold a clsact qdisc, which eBPF
/// datapaths such as Cilium and Calico use.
pub fn check_conflicts(veth: &Link, qdiscs: &[Qdisc], limits: &Limits) -> Result<(), String> {
    if limits.ingress.is_some()
        && let Some(root) = qdiscs
            .iter()
            .find(|q| q.parent == ROOT_PARENT && q.kind != "tbf")
        && !DEFAULT_ROOT_KINDS.contains(&root.kind.as_str())
    {
        return Err(format!(
            "the root qdisc of {} is {} {}, not a default or tbf qdisc: replacing it would remove \
             another tool's configuration",
            veth.name,
            root.kind,
            format_handle(root.handle)
        ));
    }
    if limits.egress.is_some() && qdiscs.iter().any(|q| q.kind == "clsact") {
        return Err(format!(
            "{} has a clsact qdisc, which an eBPF datapath (such as Cilium or Calico) owns: \
             egress shaping needs the ingress hook and would conflict; use that datapath's \
             bandwidth manager instead",
            veth.name
        ));
    }
    Ok(())
}

/// State of the veth before programming, to roll back to when a later step fails.
#[derive(Debug, Clone)]
struct Snapshot {
    root_tbf: Option<TbfParams>,
    had_ingress_qdisc: bool,
    had_redirect: bool,
    ifb_existed: bool,
    ifb_tbf: Option<TbfParams>,
}

/// Programs the limits on a host-side veth and returns the state read back. When egress
/// programming fails after ingress succeeded, ingress is rolled back, so that the veth is
/// left as it was.
pub async fn apply(
    netlink: &Netlink,
    veth: &Link,
    limits: &Limits,
) -> Result<ShapingState, String> {
    let qdiscs = netlink
        .qdiscs(veth.index)
        .await
        .map_err(|e| e.to_string())?;
    check_conflicts(veth, &qdiscs, limits)?;
    let current = read_state(netlink, veth).await.map_err(|e| e.to_string())?;

    // Reuse the ifb an existing redirect points to (set up by the CNI plugin or an earlier
    // apply), so that a change replaces the TBF in place.
    let ifb = current.ifb.clone().unwrap_or_else(|| ifb_name(&veth.name));
    let snapshot = Snapshot {
        root_tbf: current.ingress,
        had_ingress_qdisc: qdiscs.iter().any(|q| q.parent == INGRESS_PARENT),
        had_redirect: current.ifb.is_some(),
        ifb_existed: netlink
            .link_by_name(&ifb)
            .await
            .map_err(|e| e.to_string())?
            .is_some(),
        ifb_tbf: current.egress,
    };

    if let Some(params) = &limits.ingress {
        netlink
            .replace_root_tbf(veth.index, params)
            .await
            .map_err(|e| format!("ingress limit on {}: {e}", veth.name))?;
    }
    if let Some(params) = &limits.egress
        && let Err(error) = program_egress(netlink, veth, &ifb, params, &snapshot).await
    {
        let rollback = roll_back(netlink, veth, &ifb, &snapshot, limits).await;
        let mut message = format!("egress limit on {}: {error}", veth.name);
        match rollback {
            Ok(()) => message.push_str(" (rolled back: the interface is as it was)"),
            Err(rollback_error) => {
                message.push_str(&format!("; rollback also failed: {rollback_error}"))
            }
        }
        return Err(message);
    }

    read_state(netlink, veth).await.map_err(|e| e.to_string())
}

async fn program_egress(
    netlink: &Netlink,
    veth: &Link,
    ifb: &str,
    params: &TbfParams,
    snapshot: &Snapshot,
) -> Result<(), NetlinkError> {
    // Shape the ifb before redirecting to it, so that no packet passes unshaped.
    // NOTE: the ifb outlives the pod. Deleting the pod removes the veth with its qdiscs and
    // filter, but not this device, unless `clear --live` ran before; no agent removes orphans.
    let ifb_index = netlink.ensure_ifb(ifb).await?;
    netlink.replace_root_tbf(ifb_index, params).await?;
    if snapshot.had_redirect {
        return Ok(());
    }
    if !snapshot.had_ingress_qdisc {
        netlink.ensure_ingress_qdisc(veth.index).await?;
    }
    netlink.add_redirect_filter(veth.index, ifb_index).await?;
    Ok(())
}

async fn roll_back(
    netlink: &Netlink,
    veth: &Link,
    ifb: &str,
    snapshot: &Snapshot,
    limits: &Limits,
) -> Result<(), NetlinkError> {
    if limits.ingress.is_some() {
        match &snapshot.root_tbf {
            Some(previous) => netlink.replace_root_tbf(veth.index, previous).await?,
            None => {
                netlink
                    .delete_qdisc(veth.index, ROOT_PARENT, TBF_HANDLE)
                    .await?
            }
        }
    }
    if !snapshot.had_ingress_qdisc {
        netlink
            .delete_qdisc(veth.index, INGRESS_PARENT, INGRESS_HANDLE)
            .await?;
    } else if !snapshot.had_redirect {
        let filters = netlink.ingress_filters(veth.index).await?;
        if filters.iter().any(|f| f.priority == FILTER_PRIORITY) {
            netlink
                .delete_ingress_filters(veth.index, FILTER_PRIORITY)
                .await?;
        }
    }
    if let Some(link) = netlink.link_by_name(ifb).await? {
        if !snapshot.ifb_existed {
            netlink.delete_link(link.index, &link.name).await?;
        } else if let Some(previous) = &snapshot.ifb_tbf {
            netlink.replace_root_tbf(link.index, previous).await?;
        }
    }
    Ok(())
}

/// Removes the shaping from a host-side veth: its root TBF, its ingress qdisc (which takes the
/// redirect filter along) and the ifb device the filter pointed to. Returns the state before.
pub async fn clear(netlink: &Netlink, veth: &Link) -> Result<ShapingState, String> {
    let before = read_state(netlink, veth).await.map_err(|e| e.to_string())?;
    let qdiscs = netlink
        .qdiscs(veth.index)
        .await
        .map_err(|e| e.to_string())?;

    if let Some(root) = qdiscs
        .iter()
        .find(|q| q.parent == ROOT_PARENT && q.kind == "tbf")
    {
        netlink
            .delete_qdisc(veth.index, ROOT_PARENT, root.handle)
            .await
            .map_err(|e| e.to_string())?;
    }
    if qdiscs
        .iter()
        .any(|q| q.parent == INGRESS_PARENT && q.kind == "ingress")
    {
        netlink
            .delete_qdisc(veth.index, INGRESS_PARENT, INGRESS_HANDLE)
            .await
            .map_err(|e| e.to_string())?;
    }
    let ifb = before.ifb.clone().unwrap_or_else(|| ifb_name(&veth.name));
    if let Some(link) = netlink
        .link_by_name(&ifb)
        .await
        .map_err(|e| e.to_string())?
        && link.kind == "ifb"
    {
        netlink
            .delete_link(link.index, &link.name)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth() -> Link {
        Link {
            index: 7,
            name: "veth1234".to_string(),
            kind: "veth".to_string(),
            peer_index: Some(2),
            peer_netns_id: Some(0),
        }
    }

    fn qdisc(kind: &str, handle: u32, parent: u32) -> Qdisc {
        Qdisc {
            ifindex: 7,
            kind: kind.to_string(),
            handle,
            parent,
            tbf: None,
        }
    }

    fn both() -> Limits {
        let params = TbfParams {
            rate_bytes: 1_000_000,
            burst_bytes: 10_000,
            limit_bytes: 40_000,
        };
        Limits {
            ingress: Some(params),
            egress: Some(params),
        }
    }

    #[test]
    fn ifb_names_fit_and_differ() {
        let a = ifb_name("veth1234");
        assert_eq!(a.len(), 11);
        assert!(a.starts_with("bwl"));
        assert_ne!(a, ifb_name("veth1235"));
        assert_eq!(a, ifb_name("veth1234"));
    }

    #[test]
    fn handles_print_like_tc() {
        assert_eq!(format_handle(0x0001_0000), "1:");
        assert_eq!(format_handle(0xffff_0000), "ffff:");
        assert_eq!(format_handle(0x0001_0002), "1:2");
        assert_eq!(format_parent(ROOT_PARENT), "root");
        assert_eq!(format_parent(INGRESS_PARENT), "ingress");
    }

    #[test]
    fn default_root_is_no_conflict() {
        let qdiscs = [qdisc("noqueue", 0, ROOT_PARENT)];
        assert_eq!(check_conflicts(&veth(), &qdiscs, &both()), Ok(()));
        let qdiscs = [
            qdisc("tbf", TBF_HANDLE, ROOT_PARENT),
            qdisc("ingress", INGRESS_HANDLE, INGRESS_PARENT),
        ];
        assert_eq!(check_conflicts(&veth(), &qdiscs, &both()), Ok(()));
    }

    #[test]
    fn foreign_root_qdisc_rejected() {
        let qdiscs = [qdisc("htb", TBF_HANDLE, ROOT_PARENT)];
        let error = check_conflicts(&veth(), &qdiscs, &both()).unwrap_err();
        assert!(
            error.starts_with("the root qdisc of veth1234 is htb 1:"),
            "{error}"
        );
        let egress_only = Limits {
            ingress: None,
            ..both()
        };
        assert_eq!(check_conflicts(&veth(), &qdiscs, &egress_only), Ok(()));
    }

    #[test]
    fn clsact_rejected_for_egress() {
        let qdiscs = [qdisc("clsact", INGRESS_HANDLE, INGRESS_PARENT)];
        let error = check_conflicts(&veth(), &qdiscs, &both()).unwrap_err();
        assert!(error.starts_with("veth1234 has a clsact qdisc"), "{error}");
    }
}
