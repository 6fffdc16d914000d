//! rtnetlink requests of the node agent: links (veth lookup, ifb devices), qdiscs and filters,
//! sent on a socket of the network namespace the calling thread was in when it connected.

use std::num::NonZeroI32;

use futures::{Stream, StreamExt};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAttribute, RouteMessage};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirror, TcActionMirrorOption,
    TcActionOption, TcActionType, TcAttribute, TcFilterMatchAll, TcFilterMatchAllOption,
    TcFilterU32, TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption,
    TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};

use crate::tbf::{self, TbfParams};

/// Handle of the root qdiscs this plugin installs (`1:`).
pub const TBF_HANDLE: u32 = 0x0001_0000;
/// Handle of the ingress qdisc (`ffff:`), which is also the parent of its filters.
pub const INGRESS_HANDLE: u32 = 0xffff_0000;
/// Parent value of the ingress qdisc (`TC_H_INGRESS`).
pub const INGRESS_PARENT: u32 = 0xffff_fff1;
/// Parent value of a root qdisc (`TC_H_ROOT`).
pub const ROOT_PARENT: u32 = 0xffff_ffff;
/// Priority of the redirect filter.
pub const FILTER_PRIORITY: u16 = 1;
/// `ETH_P_ALL` in network byte order, as the filter's protocol field takes it.
const ETH_P_ALL_BE: u16 = 0x0003u16.to_be();

/// Failure of a netlink request.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened.
    #[error("failed to open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel rejected a request (`errno` set) or the reply was unusable.
    #[error("failed to {operation}: {reason}")]
    Request {
        operation: String,
        reason: String,
        errno: Option<i32>,
    },
}

impl NetlinkError {
    fn request(operation: impl Into<String>, reason: impl Into<String>) -> NetlinkError {
        NetlinkError::Request {
            operation: operation.into(),
            reason: reason.into(),
            errno: None,
        }
    }

    fn rejected(operation: &str, code: NonZeroI32) -> NetlinkError {
        let errno = -code.get();
        NetlinkError::Request {
            operation: operation.to_string(),
            reason: std::io::Error::from_raw_os_error(errno).to_string(),
            errno: Some(errno),
        }
    }

    /// Returns the kernel's errno when the kernel rejected the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { errno, .. } => *errno,
            NetlinkError::Socket(_) => None,
        }
    }
}

/// Result of this module.
pub type Result<T, E = NetlinkError> = std::result::Result<T, E>;

/// A link as the agent needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND`, such as `veth` or `ifb`; empty for physical devices.
    pub kind: String,
    /// `IFLA_LINK`: for a veth, the peer's index in the peer's namespace.
    pub peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when the peer lives in another namespace.
    pub peer_netns_id: Option<i32>,
}

/// A qdisc from a dump, with TBF settings decoded when its kind is `tbf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    /// Interface index.
    pub ifindex: u32,
    /// Qdisc kind, such as `tbf`, `ingress` or `clsact`.
    pub kind: String,
    /// Handle (`major << 16 | minor`).
    pub handle: u32,
    /// Parent handle; [`ROOT_PARENT`] for a root qdisc.
    pub parent: u32,
    /// TBF settings when `kind` is `tbf`.
    pub tbf: Option<TbfParams>,
}

/// A filter from a dump: its kind and, for a mirred redirect, the target interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Filter kind, such as `matchall` or `u32`.
    pub kind: String,
    /// Priority.
    pub priority: u16,
    /// Target index of a mirred egress redirect action, when the filter has one.
    pub redirect_to: Option<u32>,
}

/// An rtnetlink connection bound to the network namespace of the thread that opened it.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a connection in the calling thread's network namespace. Needs a tokio runtime,
    /// which drives the connection until the last handle is dropped.
    pub fn connect() -> Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// Sends one request and collects the reply messages, turning an error reply into
    /// [`NetlinkError::Request`] named after `operation`.
    async fn send(
        &self,
        operation: &str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | flags;
        let responses = self
            .handle
            .clone()
            .request(request)
            .map_err(|e| NetlinkError::request(operation, e.to_string()))?;
        collect_replies(operation, responses).await
    }

    /// Lists all links of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let replies = self
            .send(
                "list links",
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_DUMP,
            )
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(message) => Some(link_from_message(&message)),
                _ => None,
            })
            .collect())
    }

    /// Returns the link with this name, if any.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        Ok(self.links().await?.into_iter().find(|l| l.name == name))
    }

    /// Returns the link with this index, if any.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        Ok(self.links().await?.into_iter().find(|l| l.index == index))
    }

    /// Returns the output interface index of the IPv4 default route, else of the IPv6 one.
    pub async fn default_route_ifindex(&self) -> Result<Option<u32>> {
        let replies = self
            .send(
                "list routes",
                RouteNetlinkMessage::GetRoute(RouteMessage::default()),
                NLM_F_DUMP,
            )
            .await?;
        let mut routes: Vec<RouteMessage> = replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewRoute(message) => Some(message),
                _ => None,
            })
            .filter(|route| route.header.destination_prefix_length == 0)
            .collect();
        routes.sort_by_key(|route| u8::from(route.header.address_family));
        Ok(routes.iter().find_map(|route| {
            route
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    RouteAttribute::Oif(index) => Some(*index),
                    _ => None,
                })
        }))
    }

    /// Creates an ifb device named `name` and sets it up, or sets up the existing one.
    /// Returns its index.
    pub async fn ensure_ifb(&self, name: &str) -> Result<u32> {
        if let Some(link) = self.link_by_name(name).await? {
            if link.kind != "ifb" {
                return Err(NetlinkError::request(
                    format!("create ifb device {name}"),
                    format!("a {} link of that name exists", display_kind(&link.kind)),
                ));
            }
            self.set_up(link.index, name).await?;
            return Ok(link.index);
        }

        let mut message = LinkMessage::default();
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]));
        let operation = format!("create ifb device {name}");
        self.send(
            &operation,
            RouteNetlinkMessage::NewLink(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;

        match self.link_by_name(name).await? {
            Some(link) => Ok(link.index),
            None => Err(NetlinkError::request(
                operation,
                "the device is missing right after its creation",
            )),
        }
    }

    async fn set_up(&self, index: u32, name: &str) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.send(
            &format!("set {name} up"),
            RouteNetlinkMessage::SetLink(message),
            NLM_F_ACK,
        )
        .await?;
        Ok(())
    }

    /// Deletes a link.
    pub async fn delete_link(&self, index: u32, name: &str) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.send(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(message),
            NLM_F_ACK,
        )
        .await?;
        Ok(())
    }

    /// Lists the qdiscs of one interface.
    pub async fn qdiscs(&self, ifindex: u32) -> Result<Vec<Qdisc>> {
        let mut request = TcMessage::default();
        request.header.index = ifindex as i32;
        let replies = self
            .send(
                "list qdiscs",
                RouteNetlinkMessage::GetQueueDiscipline(request),
                NLM_F_DUMP,
            )
            .await?;
        let mut qdiscs = Vec::new();
        for reply in replies {
            if let RouteNetlinkMessage::NewQueueDiscipline(message) = reply
                && message.header.index == ifindex as i32
            {
                qdiscs.push(qdisc_from_message(&message)?);
            }
        }
        Ok(qdiscs)
    }

    /// Installs a TBF qdisc as the root of an interface, replacing whatever root qdisc is
    /// there (`tc qdisc replace dev DEV root handle 1: tbf ...`).
    pub async fn replace_root_tbf(&self, ifindex: u32, params: &TbfParams) -> Result<()> {
        let mut message = TcMessage::with_index(ifindex as i32);
        message.header.parent = TcHandle::from(ROOT_PARENT);
        message.header.handle = TcHandle::from(TBF_HANDLE);
        message
            .attributes
            .push(TcAttribute::Kind("tbf".to_string()));
        message.attributes.push(TcAttribute::Options(
            tbf::encode_options(params)
                .into_iter()
                .map(TcOption::Other)
                .collect(),
        ));
        self.send(
            &format!("replace the root qdisc of interface {ifindex} with tbf"),
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await?;
        Ok(())
    }

    /// Installs the ingress qdisc (`ffff:`) on an interface; an existing one is kept.
    pub async fn ensure_ingress_qdisc(&self, ifindex: u32) -> Result<()> {
        let mut message = TcMessage::with_index(ifindex as i32);
        message.header.parent = TcHandle::from(INGRESS_PARENT);
        message.header.handle = TcHandle::from(INGRESS_HANDLE);
        message
            .attributes
            .push(TcAttribute::Kind("ingress".to_string()));
        self.send(
            &format!("add the ingress qdisc to interface {ifindex}"),
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await?;
        Ok(())
    }

    /// Deletes a qdisc by parent and handle. A qdisc that is already gone is not an error: the
    /// kernel returns ENOENT, or EINVAL when a qdisc with another handle is at that parent.
    pub async fn delete_qdisc(&self, ifindex: u32, parent: u32, handle: u32) -> Result<()> {
        let mut message = TcMessage::with_index(ifindex as i32);
        message.header.parent = TcHandle::from(parent);
        message.header.handle = TcHandle::from(handle);
        let result = self
            .send(
                &format!("delete qdisc {:x}: of interface {ifindex}", handle >> 16),
                RouteNetlinkMessage::DelQueueDiscipline(message),
                NLM_F_ACK,
            )
            .await;
        match result {
            Err(error)
                if matches!(error.errno(), Some(libc_errno::ENOENT | libc_errno::EINVAL)) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Adds a filter under the ingress qdisc of `ifindex` that redirects every packet to the
    /// egress of `target_ifindex`, and returns the classifier used. That is `matchall`, or a
    /// `u32` filter on kernels built without it (`CONFIG_NET_CLS_MATCHALL` unset). The u32
    /// filter's only key has a zero mask, so it also matches every packet.
    pub async fn add_redirect_filter(&self, ifindex: u32, target_ifindex: u32) -> Result<String> {
        let operation = format!("add the redirect filter to interface {ifindex}");
        let matchall = vec![TcOption::MatchAll(TcFilterMatchAllOption::Action(vec![
            mirred_redirect(target_ifindex),
        ]))];
        let result = self
            .send(
                &operation,
                RouteNetlinkMessage::NewTrafficFilter(filter_message(
                    ifindex,
                    TcFilterMatchAll::KIND,
                    matchall,
                )),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await;
        match result {
            Ok(_) => return Ok(TcFilterMatchAll::KIND.to_string()),
            Err(error) if error.errno() == Some(libc_errno::ENOENT) => {
                tracing::info!("the kernel has no matchall classifier, using u32");
            }
            Err(error) => return Err(error),
        }

        let mut selector = TcU32Selector::default();
        selector.flags = TcU32SelectorFlags::Terminal;
        selector.nkeys = 1;
        selector.keys = vec![TcU32Key::default()];
        let u32_options = vec![
            TcOption::U32(TcFilterU32Option::Selector(selector)),
            TcOption::U32(TcFilterU32Option::Action(vec![mirred_redirect(
                target_ifindex,
            )])),
        ];
        self.send(
            &operation,
            RouteNetlinkMessage::NewTrafficFilter(filter_message(
                ifindex,
                TcFilterU32::KIND,
                u32_options,
            )),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        Ok(TcFilterU32::KIND.to_string())
    }

    /// Deletes the filters of one priority under the ingress qdisc of an interface.
    pub async fn delete_ingress_filters(&self, ifindex: u32, priority: u16) -> Result<()> {
        let mut message = TcMessage::with_index(ifindex as i32);
        message.header.parent = TcHandle::from(INGRESS_HANDLE);
        message.header.info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL_BE);
        self.send(
            &format!("delete the filters of priority {priority} on interface {ifindex}"),
            RouteNetlinkMessage::DelTrafficFilter(message),
            NLM_F_ACK,
        )
        .await?;
        Ok(())
    }

    /// Lists the filters attached to the ingress qdisc of an interface.
    pub async fn ingress_filters(&self, ifindex: u32) -> Result<Vec<Filter>> {
        let mut request = TcMessage::with_index(ifindex as i32);
        request.header.parent = TcHandle::from(INGRESS_HANDLE);
        let replies = self
            .send(
                "list filters",
                RouteNetlinkMessage::GetTrafficFilter(request),
                NLM_F_DUMP,
            )
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewTrafficFilter(message) => filter_from_message(&message),
                _ => None,
            })
            .collect())
    }
}

/// Builds a filter request for the ingress qdisc (`parent ffff:`) of `ifindex`, matching
/// every protocol, with priority [`FILTER_PRIORITY`].
fn filter_message(ifindex: u32, kind: &str, options: Vec<TcOption>) -> TcMessage {
    let mut message = TcMessage::with_index(ifindex as i32);
    message.header.parent = TcHandle::from(INGRESS_HANDLE);
    message.header.info = (u32::from(FILTER_PRIORITY) << 16) | u32::from(ETH_P_ALL_BE);
    message.attributes.push(TcAttribute::Kind(kind.to_string()));
    message.attributes.push(TcAttribute::Options(options));
    message
}

/// Builds a mirred action that steals each packet and sends it out of `target_ifindex`.
fn mirred_redirect(target_ifindex: u32) -> TcAction {
    let mut mirror = TcMirror::default();
    mirror.generic = TcActionGeneric::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = target_ifindex;
    let mut action = TcAction::default();
    action.tab = 1;
    action.attributes = vec![
        TcActionAttribute::Kind(TcActionMirror::KIND.to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    action
}

/// errno values the agent handles, as Linux defines them on every architecture.
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const EINVAL: i32 = 22;
}

async fn collect_replies(
    operation: &str,
    mut responses: impl Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin,
) -> Result<Vec<RouteNetlinkMessage>> {
    let mut replies = Vec::new();
    while let Some(message) = responses.next().await {
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => replies.push(inner),
            NetlinkPayload::Error(error) => {
                if let Some(code) = error.code {
                    return Err(NetlinkError::rejected(operation, code));
                }
            }
            _ => {}
        }
    }
    Ok(replies)
}

fn display_kind(kind: &str) -> &str {
    if kind.is_empty() { "physical" } else { kind }
}

fn link_from_message(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: String::new(),
        peer_index: None,
        peer_netns_id: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Link(index) => link.peer_index = Some(*index),
            LinkAttribute::LinkNetNsId(id) => link.peer_netns_id = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = kind.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn qdisc_from_message(message: &TcMessage) -> Result<Qdisc> {
    let mut qdisc = Qdisc {
        ifindex: message.header.index as u32,
        kind: String::new(),
        handle: message.header.handle.into(),
        parent: message.header.parent.into(),
        tbf: None,
    };
    for attribute in &message.attributes {
        if let TcAttribute::Kind(kind) = attribute {
            qdisc.kind = kind.clone();
        }
    }
    if qdisc.kind != "tbf" {
        return Ok(qdisc);
    }

    // netlink-packet-route keeps the options of kinds it does not know as one raw attribute
    // holding the nested TCA_OPTIONS payload.
    for attribute in &message.attributes {
        if let TcAttribute::Options(options) = attribute {
            for option in options {
                if let TcOption::Other(raw) = option {
                    let params = tbf::decode_options(&tbf::nla_value(raw))
                        .map_err(|reason| NetlinkError::request("decode the tbf qdisc", reason))?;
                    qdisc.tbf = Some(params);
                }
            }
        }
    }
    Ok(qdisc)
}

fn filter_from_message(message: &TcMessage) -> Option<Filter> {
    let mut kind = String::new();
    let mut actions: Option<&[TcAction]> = None;
    for attribute in &message.attributes {
        match attribute {
            TcAttribute::Kind(name) => kind = name.clone(),
            TcAttribute::Options(options) => {
                for option in options {
                    match option {
                        TcOption::MatchAll(TcFilterMatchAllOption::Action(list))
                        | TcOption::U32(TcFilterU32Option::Action(list)) => actions = Some(list),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // A dump also lists entries without actions: one per priority, and the hash tables of
    // u32. Only entries with actions are filters that act on packets.
    let actions = actions?;
    Some(Filter {
        kind,
        priority: (message.header.info >> 16) as u16,
        redirect_to: mirred_redirect_target(actions),
    })
}

fn mirred_redirect_target(actions: &[TcAction]) -> Option<u32> {
    actions.iter().find_map(|action| {
        action
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                TcActionAttribute::Options(options) => {
                    options.iter().find_map(|option| match option {
                        TcActionOption::Mirror(TcActionMirrorOption::Parms(parms))
                            if parms.eaction == TcMirrorActionType::EgressRedir =>
                        {
                            Some(parms.ifindex)
                        }
                        _ => None,
                    })
                }
                _ => None,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errno_kept() {
        let error = NetlinkError::rejected("delete qdisc", NonZeroI32::new(-2).unwrap());
        assert_eq!(error.errno(), Some(2));
        assert!(
            error
                .to_string()
                .starts_with("failed to delete qdisc: No such file or directory")
        );
    }

    #[test]
    fn filter_priority_and_protocol_packed() {
        assert_eq!(
            (u32::from(FILTER_PRIORITY) << 16) | u32::from(ETH_P_ALL_BE),
            if cfg!(target_endian = "little") {
                0x0001_0300
            } else {
                0x0001_0003
            }
        );
    }
}
