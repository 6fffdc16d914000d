//! Restore mappings: `--namespace-mappings old:new`, `--storage-class-mappings old:new` and
//! `--image-mappings old-prefix=new-prefix`, parsed and applied to objects.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::workload::{CONTAINER_LISTS, pod_specs_mut};

/// All mappings of one restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mappings {
    /// Old namespace to new namespace.
    pub namespaces: BTreeMap<String, String>,
    /// Old StorageClass name to new name.
    pub storage_classes: BTreeMap<String, String>,
    /// Image prefix pairs, longest old prefix first.
    pub images: Vec<(String, String)>,
}

/// Parses `old:new,old2:new2` as given to `flag`.
pub fn parse_pairs(flag: &str, value: &str) -> Result<BTreeMap<String, String>, String> {
    let mut pairs = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (old, new) = item
            .split_once(':')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains(':'))
            .ok_or_else(|| {
                format!("invalid {flag} entry {item:?}: use old:new, separated by commas")
            })?;
        if pairs.insert(old.to_string(), new.to_string()).is_some() {
            return Err(format!("invalid {flag}: {old:?} is mapped twice"));
        }
    }
    Ok(pairs)
}

/// Parses `--image-mappings old-registry/prefix=new-registry/prefix,...`.
pub fn parse_image_mappings(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (old, new) = item
            .split_once('=')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('='))
            .ok_or_else(|| {
                format!(
                    "invalid --image-mappings entry {item:?}: use old-registry/prefix=new-registry/prefix, separated by commas"
                )
            })?;
        pairs.push((
            old.trim_end_matches('/').to_string(),
            new.trim_end_matches('/').to_string(),
        ));
    }
    pairs.sort_by_key(|pair| std::cmp::Reverse(pair.0.len()));
    Ok(pairs)
}

impl Mappings {
    /// Returns the namespace objects of `namespace` go to.
    pub fn namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.namespaces
            .get(namespace)
            .map(String::as_str)
            .unwrap_or(namespace)
    }

    /// Rewrites an image reference whose repository starts with a mapped prefix at a path
    /// boundary; other images are returned unchanged.
    pub fn map_image(&self, image: &str) -> String {
        for (old, new) in &self.images {
            if let Some(rest) = image.strip_prefix(old.as_str())
                && (rest.is_empty() || rest.starts_with(['/', ':', '@']))
            {
                return format!("{new}{rest}");
            }
        }
        image.to_string()
    }

    /// Applies every mapping to `object` (already sanitized).
    pub fn apply(&self, object: &mut Value) {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        self.apply_namespaces(&kind, object);
        self.apply_storage_classes(&kind, object);
        if !self.images.is_empty() {
            for spec in pod_specs_mut(object) {
                for list in CONTAINER_LISTS {
                    // `get_mut`, because indexing a missing list would insert a null field.
                    let containers = spec.get_mut(list).and_then(Value::as_array_mut);
                    for container in containers.into_iter().flatten() {
                        if let Some(image) = container["image"].as_str() {
                            container["image"] = Value::String(self.map_image(image));
                        }
                    }
                }
            }
        }
    }

    fn apply_namespaces(&self, kind: &str, object: &mut Value) {
        if self.namespaces.is_empty() {
            return;
        }
        let map = |value: &mut Value| {
            if let Some(new) = value.as_str().and_then(|old| self.namespaces.get(old)) {
                *value = Value::String(new.clone());
            }
        };

        if let Some(namespace) = object.pointer_mut("/metadata/namespace") {
            map(namespace);
        }
        match kind {
            "Namespace" => {
                if let Some(name) = object.pointer_mut("/metadata/name") {
                    map(name);
                }
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                for subject in object["subjects"].as_array_mut().into_iter().flatten() {
                    if let Some(namespace) = subject.get_mut("namespace") {
                        map(namespace);
                    }
                }
            }
            "PersistentVolume" => {
                if let Some(namespace) = object.pointer_mut("/spec/claimRef/namespace") {
                    map(namespace);
                }
            }
            _ => {}
        }
    }

    fn apply_storage_classes(&self, kind: &str, object: &mut Value) {
        if self.storage_classes.is_empty() {
            return;
        }
        let map = |value: &mut Value| {
            if let Some(new) = value.as_str().and_then(|old| self.storage_classes.get(old)) {
                *value = Value::String(new.clone());
            }
        };
        match kind {
            "PersistentVolume" | "PersistentVolumeClaim" => {
                if let Some(class) = object.pointer_mut("/spec/storageClassName") {
                    map(class);
                }
            }
            "StatefulSet" => {
                let templates = object.pointer_mut("/spec/volumeClaimTemplates");
                for template in templates
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(class) = template.pointer_mut("/spec/storageClassName") {
                        map(class);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mappings() -> Mappings {
        Mappings {
            namespaces: parse_pairs("--namespace-mappings", "shop:shop-new").unwrap(),
            storage_classes: parse_pairs("--storage-class-mappings", "standard:fast").unwrap(),
            images: parse_image_mappings(
                "docker.io/library=registry.local/mirror,gcr.io/google-samples=registry.local/gs",
            )
            .unwrap(),
        }
    }

    #[test]
    fn pairs_parse_and_reject_bad_entries() {
        let pairs = parse_pairs("--namespace-mappings", "a:b, c:d").unwrap();
        assert_eq!(pairs["a"], "b");
        assert_eq!(pairs["c"], "d");
        for bad in ["a", "a:", ":b", "a:b:c", "a:b,a:c"] {
            assert!(parse_pairs("--namespace-mappings", bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_pairs("--namespace-mappings", "shop").unwrap_err(),
            "invalid --namespace-mappings entry \"shop\": use old:new, separated by commas"
        );
    }

    #[test]
    fn image_mappings_reject_bad_entries() {
        assert!(parse_image_mappings("registry.local").is_err());
        assert!(parse_image_mappings("a=b=c").is_err());
    }

    #[test]
    fn images_map_at_path_boundaries() {
        let mappings = mappings();
        assert_eq!(
            mappings.map_image("docker.io/library/nginx:1.27"),
            "registry.local/mirror/nginx:1.27"
        );
        assert_eq!(
            mappings.map_image("gcr.io/google-samples/hello-app:1.0"),
            "registry.local/gs/hello-app:1.0"
        );
        assert_eq!(
            mappings.map_image("gcr.io/google-samples-other/x:1"),
            "gcr.io/google-samples-other/x:1"
        );
        assert_eq!(mappings.map_image("quay.io/x/y"), "quay.io/x/y");
    }

    #[test]
    fn image_mappings_add_no_container_lists() {
        let mut pod = json!({"kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "docker.io/library/nginx:1"}]}});
        mappings().apply(&mut pod);
        assert_eq!(
            pod["spec"],
            json!({"containers": [{"name": "app", "image": "registry.local/mirror/nginx:1"}]})
        );
    }

    #[test]
    fn namespaces_map_in_metadata_subjects_and_claim_refs() {
        let mappings = mappings();
        let mut binding = json!({"kind": "RoleBinding", "metadata": {"namespace": "shop", "name": "b"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "shop"}, {"kind": "User", "name": "u"}]});
        mappings.apply(&mut binding);
        assert_eq!(binding["metadata"]["namespace"], "shop-new");
        assert_eq!(binding["subjects"][0]["namespace"], "shop-new");
        assert_eq!(binding["subjects"][1].get("namespace"), None);

        let mut namespace = json!({"kind": "Namespace", "metadata": {"name": "shop"}});
        mappings.apply(&mut namespace);
        assert_eq!(namespace["metadata"]["name"], "shop-new");

        let mut volume = json!({"kind": "PersistentVolume", "metadata": {"name": "pv"},
            "spec": {"storageClassName": "standard", "claimRef": {"namespace": "shop", "name": "data"}}});
        mappings.apply(&mut volume);
        assert_eq!(volume["spec"]["claimRef"]["namespace"], "shop-new");
        assert_eq!(volume["spec"]["storageClassName"], "fast");
    }

    #[test]
    fn storage_classes_map_in_claim_templates() {
        let mut statefulset = json!({"kind": "StatefulSet", "metadata": {"namespace": "db", "name": "pg"},
            "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "standard"}}],
                     "template": {"spec": {"containers": [{"image": "docker.io/library/postgres:16"}]}}}});
        mappings().apply(&mut statefulset);
        assert_eq!(
            statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
            "fast"
        );
        assert_eq!(
            statefulset["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.local/mirror/postgres:16"
        );
    }
}
