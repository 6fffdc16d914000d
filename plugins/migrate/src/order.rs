//! Restore order: dependency phases by resource type, and owner-first waves inside a phase.

use std::collections::HashMap;

/// The phases of a restore, created in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Phase {
    /// CustomResourceDefinitions; the restore waits until they are Established.
    CustomResourceDefinitions,
    /// Namespaces.
    Namespaces,
    /// StorageClasses, IngressClasses, PriorityClasses, RuntimeClasses.
    ClusterPrerequisites,
    /// PersistentVolumes and PersistentVolumeClaims; volume data is restored after this phase.
    Storage,
    /// ServiceAccounts.
    ServiceAccounts,
    /// Secrets.
    Secrets,
    /// ConfigMaps.
    ConfigMaps,
    /// Roles, ClusterRoles and their bindings.
    Rbac,
    /// Services.
    Services,
    /// Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Pods.
    Workloads,
    /// Every other type, custom resources included.
    Other,
    /// Validating and mutating webhook configurations, last so that no webhook whose backend
    /// does not run yet blocks the objects before it.
    Webhooks,
}

impl Phase {
    /// Returns the phase name shown in plans and results.
    pub fn name(self) -> &'static str {
        match self {
            Phase::CustomResourceDefinitions => "crds",
            Phase::Namespaces => "namespaces",
            Phase::ClusterPrerequisites => "cluster-prerequisites",
            Phase::Storage => "storage",
            Phase::ServiceAccounts => "service-accounts",
            Phase::Secrets => "secrets",
            Phase::ConfigMaps => "config-maps",
            Phase::Rbac => "rbac",
            Phase::Services => "services",
            Phase::Workloads => "workloads",
            Phase::Other => "other",
            Phase::Webhooks => "webhooks",
        }
    }
}

/// Returns the phase of a resource type given as API group and plural resource name.
pub fn phase_of(group: &str, resource: &str) -> Phase {
    match (group, resource) {
        ("apiextensions.k8s.io", "customresourcedefinitions") => Phase::CustomResourceDefinitions,
        ("", "namespaces") => Phase::Namespaces,
        ("storage.k8s.io", "storageclasses")
        | ("networking.k8s.io", "ingressclasses")
        | ("scheduling.k8s.io", "priorityclasses")
        | ("node.k8s.io", "runtimeclasses") => Phase::ClusterPrerequisites,
        ("", "persistentvolumes") | ("", "persistentvolumeclaims") => Phase::Storage,
        ("", "serviceaccounts") => Phase::ServiceAccounts,
        ("", "secrets") => Phase::Secrets,
        ("", "configmaps") => Phase::ConfigMaps,
        ("rbac.authorization.k8s.io", _) => Phase::Rbac,
        ("", "services") => Phase::Services,
        ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets")
        | ("batch", "jobs" | "cronjobs")
        | ("", "pods" | "replicationcontrollers") => Phase::Workloads,
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => Phase::Webhooks,
        _ => Phase::Other,
    }
}

/// Splits the objects of one phase into waves so that every owner is created before the
/// objects it owns. `items[i]` is the object's source UID and the UIDs of its owners; the
/// result gives each object's wave, starting at 0.
pub fn owner_waves(items: &[(String, Vec<String>)]) -> Vec<usize> {
    let index: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (uid, _))| !uid.is_empty())
        .map(|(i, (uid, _))| (uid.as_str(), i))
        .collect();
    let mut waves: Vec<Option<usize>> = vec![None; items.len()];

    for start in 0..items.len() {
        // Walk up the owner chain; its length is bounded by the item count, which also ends
        // ownership cycles (which the API server does not prevent).
        let mut chain = vec![start];
        let mut current = start;
        while chain.len() <= items.len() {
            let owner = items[current]
                .1
                .iter()
                .filter_map(|uid| index.get(uid.as_str()).copied())
                .find(|&owner| owner != current && !chain.contains(&owner));
            match owner {
                Some(owner) if waves[owner].is_none() => {
                    chain.push(owner);
                    current = owner;
                }
                _ => break,
            }
        }
        // Assign waves from the top of the chain down.
        let mut wave = match items[current]
            .1
            .iter()
            .filter_map(|uid| index.get(uid.as_str()))
            .filter_map(|&owner| waves[owner])
            .max()
        {
            Some(owner_wave) => owner_wave + 1,
            None => 0,
        };
        for &member in chain.iter().rev() {
            if waves[member].is_none() {
                waves[member] = Some(wave);
            }
            wave = waves[member].unwrap_or(wave) + 1;
        }
    }
    waves.into_iter().map(|w| w.unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_dependencies() {
        let order = [
            phase_of("apiextensions.k8s.io", "customresourcedefinitions"),
            phase_of("", "namespaces"),
            phase_of("storage.k8s.io", "storageclasses"),
            phase_of("", "persistentvolumeclaims"),
            phase_of("", "serviceaccounts"),
            phase_of("", "secrets"),
            phase_of("", "configmaps"),
            phase_of("rbac.authorization.k8s.io", "rolebindings"),
            phase_of("", "services"),
            phase_of("apps", "deployments"),
            phase_of("gateway.networking.k8s.io", "httproutes"),
            phase_of(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
        ];
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    }

    fn item(uid: &str, owners: &[&str]) -> (String, Vec<String>) {
        (
            uid.to_string(),
            owners.iter().map(|o| o.to_string()).collect(),
        )
    }

    #[test]
    fn owners_come_in_earlier_waves() {
        let items = [
            item("pod", &["rs"]),
            item("rs", &["deploy"]),
            item("deploy", &[]),
            item("other", &["not-restored"]),
        ];
        assert_eq!(owner_waves(&items), [2, 1, 0, 0]);
    }

    #[test]
    fn ownership_cycles_end() {
        let items = [item("a", &["b"]), item("b", &["a"])];
        let waves = owner_waves(&items);
        assert_eq!(waves.len(), 2);
        assert_ne!(waves[0], waves[1]);
    }
}
