//! The docker-to-crictl mapping table that `kubectl crimap table` prints.
//!
//! Rows follow the "Mapping from dockercli to crictl" page of the Kubernetes v1.24
//! documentation (docker CLI 1.40, crictl 1.19), updated to current crictl, with nerdctl and
//! ctr commands for what crictl lacks. The translators in `docker.rs` and
//! `crictl.rs` implement each row; a test checks that both agree with this table.

use serde::Serialize;

/// Group of a mapping row, for `--category`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Listing, pulling, removing and moving images.
    Image,
    /// Container lifecycle and debugging.
    Container,
    /// Pod sandboxes, which only crictl has.
    Pod,
    /// Runtime information and everything else.
    Other,
}

impl Category {
    /// Returns the lowercase name printed in the table.
    pub fn name(self) -> &'static str {
        match self {
            Category::Image => "image",
            Category::Container => "container",
            Category::Pod => "pod",
            Category::Other => "other",
        }
    }
}

/// One row of the mapping.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mapping {
    /// Group of the row.
    pub category: Category,
    /// docker form, `None` for commands only crictl has.
    pub docker: Option<&'static str>,
    /// crictl form, `None` when crictl has no equivalent.
    pub crictl: Option<&'static str>,
    /// nerdctl or ctr command for what crictl lacks.
    pub alternative: Option<&'static str>,
    /// Flags that differ or are lost, and other differences.
    pub notes: &'static str,
}

const fn row(
    category: Category,
    docker: Option<&'static str>,
    crictl: Option<&'static str>,
    alternative: Option<&'static str>,
    notes: &'static str,
) -> Mapping {
    Mapping {
        category,
        docker,
        crictl,
        alternative,
        notes,
    }
}

use Category::{Container, Image, Other, Pod};

/// The whole mapping, grouped by category.
pub const MAPPINGS: &[Mapping] = &[
    // Images.
    row(
        Image,
        Some("docker images"),
        Some("crictl images"),
        None,
        "-q, --digests, --no-trunc and --filter dangling|reference|before|since carry over; -a is not needed (no intermediate images); reference= becomes a regular expression",
    ),
    row(
        Image,
        Some("docker inspect IMAGE"),
        Some("crictl inspecti"),
        None,
        "docker inspect reads repo:tag, registry/repo and sha256: arguments as images; a plain name is ambiguous, --type image settles it",
    ),
    row(
        Image,
        Some("docker pull"),
        Some("crictl pull"),
        None,
        "credentials per call with --creds USER:PASSWORD or --auth BASE64, not from docker login; -a, --platform lost",
    ),
    row(
        Image,
        Some("docker rmi"),
        Some("crictl rmi"),
        None,
        "-f and --no-prune lost; crictl rmi -a removes all images, --prune the unused ones",
    ),
    row(
        Image,
        Some("docker image prune"),
        Some("crictl rmi --prune"),
        None,
        "removes every unused image, like docker image prune -a",
    ),
    row(
        Image,
        Some("docker build"),
        None,
        Some("nerdctl --namespace k8s.io build"),
        "needs BuildKit (buildkitd); buildctl build is the lower-level client",
    ),
    row(
        Image,
        Some("docker push"),
        None,
        Some("nerdctl --namespace k8s.io push | ctr -n k8s.io images push"),
        "crictl cannot push",
    ),
    row(
        Image,
        Some("docker tag"),
        None,
        Some("nerdctl --namespace k8s.io tag | ctr -n k8s.io images tag"),
        "ctr takes full references such as docker.io/library/nginx:1.25",
    ),
    row(
        Image,
        Some("docker save"),
        None,
        Some("nerdctl --namespace k8s.io save | ctr -n k8s.io images export"),
        "crictl cannot export images",
    ),
    row(
        Image,
        Some("docker load"),
        None,
        Some("nerdctl --namespace k8s.io load | ctr -n k8s.io images import"),
        "import into k8s.io so that the kubelet sees the image",
    ),
    row(
        Image,
        Some("docker history"),
        None,
        Some("nerdctl --namespace k8s.io history"),
        "crictl shows no layer history",
    ),
    row(
        Image,
        Some("docker login"),
        None,
        Some("nerdctl login"),
        "for the kubelet use an imagePullSecret; for crictl pull use --creds or --auth",
    ),
    // Containers.
    row(
        Container,
        Some("docker ps"),
        Some("crictl ps"),
        None,
        "-a, -q, -l, -n, --no-trunc carry over; --filter name|id|label|status|ancestor become --name (a regular expression), --id, --label, --state, --image; -s and Go templates lost",
    ),
    row(
        Container,
        Some("docker inspect CONTAINER"),
        Some("crictl inspect"),
        None,
        "-f TEMPLATE becomes -o go-template --template over CRI status JSON; -s lost",
    ),
    row(
        Container,
        Some("docker logs"),
        Some("crictl logs"),
        None,
        "-f, -t, --tail and --since carry over; --until and --details lost; crictl adds -p/--previous",
    ),
    row(
        Container,
        Some("docker exec"),
        Some("crictl exec"),
        None,
        "-it carries over and crictl needs -i with -t; -e becomes env(1) in the command; -d, -u, -w, --privileged lost",
    ),
    row(
        Container,
        Some("docker attach"),
        Some("crictl attach"),
        None,
        "stdin needs -i, a TTY needs -t; --detach-keys and --sig-proxy lost",
    ),
    row(
        Container,
        Some("docker create"),
        Some("crictl create"),
        Some("nerdctl --namespace k8s.io create"),
        "crictl create takes POD-ID container-config.json pod-config.json instead of flags",
    ),
    row(
        Container,
        Some("docker run"),
        Some("crictl run"),
        Some("nerdctl --namespace k8s.io run"),
        "crictl run takes container-config.json pod-config.json and starts a new pod sandbox",
    ),
    row(
        Container,
        Some("docker start"),
        Some("crictl start"),
        None,
        "only created containers start; -a and -i lost",
    ),
    row(
        Container,
        Some("docker stop"),
        Some("crictl stop"),
        None,
        "-t/--time becomes --timeout; docker waits 10 s by default, crictl 0 s (SIGKILL at once, so crictl stop without a timeout maps back to docker kill); --signal lost",
    ),
    row(
        Container,
        Some("docker kill"),
        Some("crictl stop --timeout 0"),
        None,
        "with timeout 0 the runtime sends SIGKILL at once; signals other than SIGKILL are lost",
    ),
    row(
        Container,
        Some("docker rm"),
        Some("crictl rm"),
        None,
        "-f stops a running container first in both; -v and -l lost",
    ),
    row(
        Container,
        Some("docker stats"),
        Some("crictl stats"),
        None,
        "docker streams by default and crictl needs -w; --no-stream is crictl's default; one container ID at a time",
    ),
    row(
        Container,
        Some("docker update"),
        Some("crictl update"),
        None,
        "--cpu-shares becomes --cpu-share, --memory takes bytes, --cpus becomes --cpu-period/--cpu-quota; --restart, --pids-limit, swap and blkio lost",
    ),
    row(
        Container,
        Some("docker container prune"),
        Some("crictl rm $(crictl ps -a -q --state exited)"),
        None,
        "crictl has no prune; the kubelet garbage-collects exited containers",
    ),
    row(
        Container,
        Some("docker top"),
        None,
        Some("crictl exec CONTAINER ps"),
        "needs ps in the image",
    ),
    row(
        Container,
        Some("docker cp"),
        None,
        Some("nerdctl --namespace k8s.io cp | kubectl cp"),
        "kubectl cp works without node access",
    ),
    row(
        Container,
        Some("docker commit"),
        None,
        Some("nerdctl --namespace k8s.io commit"),
        "crictl cannot commit containers",
    ),
    row(
        Container,
        Some("docker restart"),
        None,
        Some("nerdctl --namespace k8s.io restart"),
        "the kubelet restarts containers by the pod's restartPolicy",
    ),
    row(
        Container,
        Some("docker pause"),
        None,
        Some("nerdctl --namespace k8s.io pause"),
        "CRI has no paused state",
    ),
    // Pod sandboxes, crictl only.
    row(
        Pod,
        None,
        Some("crictl pods"),
        None,
        "on dockershim and cri-dockerd nodes: docker ps --filter label=io.kubernetes.docker.type=podsandbox",
    ),
    row(
        Pod,
        None,
        Some("crictl runp"),
        None,
        "runs a pod sandbox from pod-config.json; docker has none, pods come from the API server",
    ),
    row(
        Pod,
        None,
        Some("crictl stopp"),
        None,
        "stops every container of the pod and its sandbox",
    ),
    row(
        Pod,
        None,
        Some("crictl rmp"),
        None,
        "-f stops running pods first, -a removes all pods",
    ),
    row(
        Pod,
        None,
        Some("crictl inspectp"),
        None,
        "pod status; under dockershim the sandbox is the pause container",
    ),
    row(Pod, None, Some("crictl statsp"), None, "pod resource usage"),
    row(
        Pod,
        None,
        Some("crictl port-forward"),
        None,
        "forwards a local port to a pod sandbox; kubectl port-forward does the same through the API server",
    ),
    // Runtime information and the rest.
    row(
        Other,
        Some("docker version"),
        Some("crictl version"),
        None,
        "reports the CRI runtime's name and version",
    ),
    row(
        Other,
        Some("docker info"),
        Some("crictl info"),
        None,
        "prints the runtime's status and config as JSON",
    ),
    row(
        Other,
        Some("docker events"),
        Some("crictl events"),
        None,
        "CRI container events only; --filter, --since and --until lost",
    ),
    row(
        Other,
        Some("docker system df"),
        Some("crictl imagefsinfo"),
        None,
        "filesystem usage of images and containers, not per object",
    ),
    row(
        Other,
        Some("docker network"),
        None,
        Some("nerdctl network"),
        "pods get networks from the CNI plugin",
    ),
    row(
        Other,
        Some("docker volume"),
        None,
        Some("nerdctl volume"),
        "pods get volumes from Kubernetes volumes",
    ),
    row(
        Other,
        Some("docker compose"),
        None,
        Some("nerdctl compose"),
        "Kubernetes manifests replace compose files",
    ),
];

/// Returns the rows of `category`, or all rows.
pub fn rows(category: Option<Category>) -> Vec<Mapping> {
    MAPPINGS
        .iter()
        .filter(|mapping| category.is_none_or(|wanted| mapping.category == wanted))
        .copied()
        .collect()
}

/// Renders rows as a boxed comfy-table with wrapped notes.
pub fn render(rows: &[Mapping], width: Option<u16>) -> String {
    use comfy_table::{ContentArrangement, presets};

    let mut table = comfy_table::Table::new();
    table.load_preset(presets::UTF8_FULL).set_header([
        "CATEGORY",
        "DOCKER",
        "CRICTL",
        "ALTERNATIVE",
        "NOTES",
    ]);
    match width {
        Some(width) => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(width);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    for mapping in rows {
        table.add_row([
            mapping.category.name(),
            mapping.docker.unwrap_or("-"),
            mapping.crictl.unwrap_or("-"),
            mapping.alternative.unwrap_or("-"),
            mapping.notes,
        ]);
    }
    let mut text = table.to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    /// Example arguments that make each docker row's command valid.
    fn docker_example(form: &str) -> Vec<String> {
        let mut args = words(form.trim_start_matches("docker "));
        match args.last().map(String::as_str) {
            Some("IMAGE") => {
                args.pop();
                args.push("nginx:1.25".into());
            }
            Some("CONTAINER") => {
                args.pop();
                args.extend([
                    "--type".to_string(),
                    "container".to_string(),
                    "web".to_string(),
                ]);
            }
            _ => {}
        }
        let needs: &[&str] = match args[0].as_str() {
            "pull" | "rmi" | "push" | "history" | "create" | "run" => &["nginx:1.25"],
            "tag" => &["nginx:1.25", "registry.local/nginx:1.25"],
            "exec" => &["web", "sh"],
            "logs" | "attach" | "start" | "stop" | "kill" | "rm" | "update" | "top" | "commit"
            | "restart" | "pause" => &["web"],
            "cp" => &["web:/etc/hosts", "."],
            "network" | "volume" => &["ls"],
            "compose" => &["up"],
            _ => &[],
        };
        if args.len() == 1 || args[0] == "image" || args[0] == "container" || args[0] == "system" {
            args.extend(needs.iter().map(|word| word.to_string()));
        }
        args
    }

    #[test]
    fn docker_rows_match_translator() {
        for mapping in MAPPINGS {
            let Some(form) = mapping.docker else { continue };
            let args = docker_example(form);
            let translation =
                crate::docker::translate(&args).unwrap_or_else(|error| panic!("{form}: {error}"));
            let first = &translation.commands[0];
            let expected = mapping
                .crictl
                .or(mapping
                    .alternative
                    .map(|alt| alt.split(" | ").next().unwrap_or(alt)))
                .unwrap();
            let expected_words: Vec<&str> = expected
                .split_whitespace()
                .take_while(|word| !word.chars().all(|c| c.is_ascii_uppercase() || c == '-'))
                .collect();
            assert!(
                first.starts_with(&expected_words.join(" ")),
                "{form}: translator gives {first:?}, table says {expected:?}"
            );
            assert_eq!(
                translation.equivalent,
                mapping.crictl.is_some(),
                "{form}: equivalence differs from the table"
            );
        }
    }

    #[test]
    fn crictl_rows_known_to_translator() {
        for mapping in MAPPINGS {
            let Some(form) = mapping.crictl else { continue };
            let command = form.split_whitespace().nth(1).unwrap();
            if command == "rm" && form.contains('$') {
                continue;
            }
            let args = vec![command.to_string()];
            if let Err(error) = crate::crictl::translate(&args) {
                assert!(
                    error.to_string().starts_with("missing")
                        || error.to_string().contains(" takes "),
                    "crictl {command} is not translated: {error}"
                );
            }
        }
    }

    #[test]
    fn category_filter_keeps_only_that_category() {
        let pods = rows(Some(Category::Pod));
        assert_eq!(pods.len(), 7);
        assert!(pods.iter().all(|mapping| mapping.category == Category::Pod));
        assert_eq!(rows(None).len(), MAPPINGS.len());
    }

    #[test]
    fn table_names_runp() {
        let text = render(&rows(Some(Category::Pod)), None);
        assert!(text.contains("crictl runp"));
        assert!(text.starts_with('┌'));
    }
}
