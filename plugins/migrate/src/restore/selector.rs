//! Label selectors (`-l`) evaluated on backed-up objects, with kubectl's syntax: `k=v`, `k==v`,
//! `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, requirements separated by commas.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector; every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a selector as given to `-l`.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part).ok_or_else(|| {
                format!("invalid label selector {text:?} at {part:?}: use key=value, key!=value, key, !key, key in (a,b) or key notin (a,b)")
            })?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Reports whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => labels.get(key) == Some(value),
                Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
                Requirement::Exists(key) => labels.contains_key(key),
                Requirement::NotExists(key) => !labels.contains_key(key),
                Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
                Requirement::NotIn(key, values) => {
                    labels.get(key).is_none_or(|v| !values.contains(v))
                }
            })
    }
}

/// Splits at commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Option<Requirement> {
    if let Some(key) = part.strip_prefix('!') {
        return valid_key(key.trim()).then(|| Requirement::NotExists(key.trim().to_string()));
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, values)) = part.split_once(operator) {
            let values = values.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
            let key = key.trim().to_string();
            if !valid_key(&key) {
                return None;
            }
            return Some(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    if let Some((key, value)) = part.split_once("!=") {
        return valid_key(key.trim())
            .then(|| Requirement::NotEquals(key.trim().into(), value.trim().into()));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return valid_key(key.trim())
            .then(|| Requirement::Equals(key.trim().into(), value.trim().into()));
    }
    valid_key(part).then(|| Requirement::Exists(part.to_string()))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Returns the labels of an object.
pub fn labels_of(object: &serde_json::Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_existence() {
        let selector = LabelSelector::parse("app=web,tier!=cache,!legacy,env").unwrap();
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!selector.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("tier", "cache")
        ])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
    }

    #[test]
    fn set_based_requirements() {
        let selector = LabelSelector::parse("app in (web, api),track notin (canary)").unwrap();
        assert!(selector.matches(&labels(&[("app", "api")])));
        assert!(!selector.matches(&labels(&[("app", "api"), ("track", "canary")])));
        assert!(!selector.matches(&labels(&[("app", "db")])));
    }

    #[test]
    fn invalid_selector_is_named() {
        let error = LabelSelector::parse("app in web").unwrap_err();
        assert!(error.contains("invalid label selector"), "{error}");
    }
}
