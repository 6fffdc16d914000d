//! `kubectl crimap docker|crictl|table`: translations checked word for word through the real
//! binary, the mapping table, and bad input.

use testkit::plugins::{plugin, run, stderr, stdout};

/// One translation: the arguments after the tool name and the exact output lines.
struct Case {
    args: &'static [&'static str],
    output: &'static [&'static str],
}

fn check_cases(tool: &str, cases: &[Case]) {
    for case in cases {
        let output = run(plugin("crimap").arg(tool).args(case.args));
        let command_line = format!("{tool} {}", case.args.join(" "));
        assert!(
            output.status.success(),
            "kubectl crimap {command_line} failed: {}",
            stderr(&output)
        );
        let mut expected = case.output.join("\n");
        expected.push('\n');
        assert_eq!(
            stdout(&output),
            expected,
            "output of kubectl crimap {command_line}"
        );
    }
}

#[test]
fn docker_to_crictl_table() {
    assert!(DOCKER_CASES.len() >= 40);
    check_cases("docker", DOCKER_CASES);
}

#[test]
fn crictl_to_docker_table() {
    assert!(CRICTL_CASES.len() >= 40);
    check_cases("crictl", CRICTL_CASES);
}

/// Runs the plugin and returns (exit code, stderr).
fn fails(args: &[&str]) -> (Option<i32>, String) {
    let output = run(plugin("crimap").args(args));
    assert!(
        stdout(&output).is_empty(),
        "kubectl crimap {} printed to stdout: {}",
        args.join(" "),
        stdout(&output)
    );
    (output.status.code(), stderr(&output))
}

#[test]
fn bad_input_exits_two_with_value_named() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["docker", "frobnicate"],
            "kubectl-crimap: error: unknown docker command \"frobnicate\": run kubectl crimap table to list the docker commands this plugin translates\n",
        ),
        (
            &["docker", "ps", "--bogus"],
            "kubectl-crimap: error: unknown flag --bogus for docker ps: known flags are --format, --no-trunc, -a/--all, -f/--filter, -l/--latest, -n/--last, -q/--quiet, -s/--size\n",
        ),
        (
            &["docker", "logs", "-x", "web"],
            "kubectl-crimap: error: unknown flag -x for docker logs: known flags are --details, --since, --until, -f/--follow, -n/--tail, -t/--timestamps\n",
        ),
        (
            &["docker", "logs", "--tail"],
            "kubectl-crimap: error: missing value for --tail of docker logs: pass it as --tail VALUE\n",
        ),
        (
            &["docker", "logs", "--tail", "many", "web"],
            "kubectl-crimap: error: invalid --tail value \"many\" for docker logs: use a number of lines or all\n",
        ),
        (
            &["docker", "logs"],
            "kubectl-crimap: error: missing container for docker logs: pass it as docker logs [FLAGS] CONTAINER\n",
        ),
        (
            &["docker", "ps", "--filter", "colour=red"],
            "kubectl-crimap: error: unknown docker ps filter \"colour\": docker ps filters are ancestor, before, exited, expose, health, id, isolation, is-task, label, name, network, publish, since, status and volume\n",
        ),
        (
            &["docker", "ps", "--filter", "name"],
            "kubectl-crimap: error: invalid filter \"name\" for docker ps: use KEY=VALUE, e.g. --filter name=web\n",
        ),
        (
            &["docker", "inspect", "--type", "gadget", "x"],
            "kubectl-crimap: error: invalid --type \"gadget\" for docker inspect: use container or image\n",
        ),
        (
            &["docker", "exec", "web"],
            "kubectl-crimap: error: missing container or command for docker exec: pass them as docker exec [FLAGS] CONTAINER COMMAND [ARG...]\n",
        ),
        (
            &["docker", "update", "-m", "lots", "web"],
            "kubectl-crimap: error: invalid --memory value \"lots\" for docker update: use a size such as 512m or 2g\n",
        ),
        (
            &["docker", "stats", "a", "b"],
            "kubectl-crimap: error: too many containers for docker stats: crictl stats takes one container ID, so translate one container at a time\n",
        ),
        (
            &["docker", "container", "explode"],
            "kubectl-crimap: error: unknown docker command \"container explode\": use a docker CLI command such as docker container ls\n",
        ),
        (
            &["docker", "--host", "tcp://x", "ps"],
            "kubectl-crimap: error: unsupported docker global flag --host: give the command without global flags, e.g. kubectl crimap docker ps -a\n",
        ),
        (
            &["crictl", "frobnicate"],
            "kubectl-crimap: error: unknown crictl command \"frobnicate\": run kubectl crimap table to list the crictl commands this plugin translates\n",
        ),
        (
            &["crictl", "images", "-a"],
            "kubectl-crimap: error: unknown flag -a for crictl images: known flags are --digests, --no-trunc, --pinned, -f/--filter, -o/--output, -q/--quiet, -v/--verbose\n",
        ),
        (
            &["crictl", "ps", "--state", "paused"],
            "kubectl-crimap: error: invalid container state \"paused\": crictl states are created, running, exited and unknown\n",
        ),
        (
            &["crictl", "pods", "--state", "sleepy"],
            "kubectl-crimap: error: invalid pod state \"sleepy\": crictl pod states are ready and notready\n",
        ),
        (
            &["crictl", "stop", "-a", "web"],
            "kubectl-crimap: error: crictl stop --all takes no container IDs: drop either --all or the IDs\n",
        ),
        (
            &["crictl", "stop", "--timeout", "soon", "web"],
            "kubectl-crimap: error: invalid --timeout value \"soon\" for crictl stop: use a number of seconds\n",
        ),
        (
            &["crictl", "port-forward", "5f2e"],
            "kubectl-crimap: error: crictl port-forward takes a pod ID and a port: pass them as crictl port-forward POD-ID [LOCAL_PORT:]REMOTE_PORT\n",
        ),
        (
            &["table", "-o", "name"],
            "kubectl-crimap: error: invalid output format name for kubectl crimap table: use table, json or yaml\n",
        ),
    ];
    for (args, expected) in cases {
        let (code, text) = fails(args);
        assert_eq!(
            code,
            Some(2),
            "exit code of kubectl crimap {}",
            args.join(" ")
        );
        assert_eq!(
            &text,
            expected,
            "stderr of kubectl crimap {}",
            args.join(" ")
        );
    }
}

#[test]
fn missing_arguments_rejected_by_parser() {
    let (code, text) = fails(&["docker"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("<ARGS>..."), "{text}");
}

#[test]
fn translation_as_json() {
    let output = run(plugin("crimap").args(["docker", "-o", "json", "kill", "-s", "HUP", "web"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["input"], "docker kill -s HUP web");
    assert_eq!(value["equivalent"], true);
    assert_eq!(
        value["commands"],
        serde_json::json!(["crictl stop --timeout 0 web"])
    );
    assert_eq!(value["notes"].as_array().unwrap().len(), 1);
}

#[test]
fn unsupported_command_not_equivalent() {
    let output = run(plugin("crimap").args(["docker", "-o", "yaml", "build", "-t", "app", "."]));
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_yaml::Value = serde_yaml::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["equivalent"], serde_yaml::Value::Bool(false));
    assert_eq!(
        value["commands"][0].as_str(),
        Some("nerdctl --namespace k8s.io build -t app .")
    );
}

#[test]
fn table_shows_crictl_names() {
    let output = run(plugin("crimap").arg("table"));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for name in [
        "crictl runp",
        "crictl stopp",
        "crictl rmp",
        "crictl pods",
        "crictl inspectp",
        "crictl inspecti",
        "crictl imagefsinfo",
        "crictl statsp",
        "crictl port-forward",
        "nerdctl --namespace k8s.io build",
        "ctr -n k8s.io images import",
    ] {
        assert!(text.contains(name), "table lacks {name}:\n{text}");
    }
    assert!(text.starts_with('┌'), "table is not boxed:\n{text}");
}

#[test]
fn table_category_as_json() {
    let output = run(plugin("crimap").args(["table", "--category", "image", "-o", "json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(rows.len(), 12);
    for row in &rows {
        assert_eq!(row["category"], "image", "row {row}");
    }
    let pull = rows
        .iter()
        .find(|row| row["docker"] == "docker pull")
        .unwrap();
    assert_eq!(pull["crictl"], "crictl pull");
    let build = rows
        .iter()
        .find(|row| row["docker"] == "docker build")
        .unwrap();
    assert_eq!(build["crictl"], serde_json::Value::Null);
}

#[test]
fn table_category_rejects_unknown() {
    let (code, text) = fails(&["table", "--category", "network"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("invalid value 'network'"), "{text}");
}

const DOCKER_CASES: &[Case] = &[
    Case {
        args: &["ps"],
        output: &["crictl ps"],
    },
    Case {
        args: &["ps", "-a"],
        output: &["crictl ps -a"],
    },
    Case {
        args: &["ps", "-aq"],
        output: &["crictl ps -a -q"],
    },
    Case {
        args: &["ps", "-q", "--no-trunc"],
        output: &["crictl ps -q --no-trunc"],
    },
    Case {
        args: &["ps", "-n", "5"],
        output: &["crictl ps -n 5"],
    },
    Case {
        args: &["ps", "-l"],
        output: &["crictl ps -l"],
    },
    Case {
        args: &["ps", "--filter", "name=web"],
        output: &[
            "crictl ps --name web",
            "# crictl --name is a regular expression over the container name from the pod spec; docker matched a substring of the docker container name",
        ],
    },
    Case {
        args: &["ps", "-f", "status=running"],
        output: &["crictl ps --state running"],
    },
    Case {
        args: &["ps", "--filter", "label=app=web"],
        output: &["crictl ps --label app=web"],
    },
    Case {
        args: &["ps", "--filter", "id=abc123"],
        output: &["crictl ps --id abc123"],
    },
    Case {
        args: &["ps", "--filter", "ancestor=nginx:1.25"],
        output: &["crictl ps --image nginx:1.25"],
    },
    Case {
        args: &["ps", "--filter", "status=paused"],
        output: &[
            "crictl ps",
            "# CRI containers are created, running, exited or unknown: the filter status=paused is dropped",
        ],
    },
    Case {
        args: &["ps", "--format", "{{json .}}"],
        output: &["crictl ps -o json"],
    },
    Case {
        args: &["ps", "--format", "table {{.ID}}"],
        output: &[
            "crictl ps",
            "# crictl prints json, yaml or table with -o; docker's Go template in --format is lost",
        ],
    },
    Case {
        args: &["ps", "-s"],
        output: &[
            "crictl ps",
            "# crictl ps has no size column: -s is dropped; crictl stats shows the writable layer size",
        ],
    },
    Case {
        args: &["container", "ls", "-a"],
        output: &["crictl ps -a"],
    },
    Case {
        args: &["images"],
        output: &["crictl images"],
    },
    Case {
        args: &["images", "-q"],
        output: &["crictl images -q"],
    },
    Case {
        args: &["images", "--digests"],
        output: &["crictl images --digests"],
    },
    Case {
        args: &["images", "-a"],
        output: &[
            "crictl images",
            "# crictl lists every image the runtime stores and CRI has no intermediate build images, so -a is not needed",
        ],
    },
    Case {
        args: &["images", "--no-trunc", "nginx"],
        output: &["crictl images --no-trunc nginx"],
    },
    Case {
        args: &["images", "--filter", "dangling=true"],
        output: &["crictl images --filter dangling=true"],
    },
    Case {
        args: &["images", "--filter", "reference=nginx*"],
        output: &[
            "crictl images --filter 'reference=nginx*'",
            "# crictl reads reference=nginx* as a regular expression; docker read it as a glob",
        ],
    },
    Case {
        args: &["image", "ls", "--format", "json"],
        output: &["crictl images -o json"],
    },
    Case {
        args: &["logs", "web"],
        output: &["crictl logs web"],
    },
    Case {
        args: &["logs", "-f", "web"],
        output: &["crictl logs -f web"],
    },
    Case {
        args: &["logs", "--tail", "100", "web"],
        output: &["crictl logs --tail 100 web"],
    },
    Case {
        args: &["logs", "-f", "--tail", "100", "web"],
        output: &["crictl logs -f --tail 100 web"],
    },
    Case {
        args: &["logs", "-n", "20", "web"],
        output: &["crictl logs --tail 20 web"],
    },
    Case {
        args: &["logs", "--since", "10m", "-t", "web"],
        output: &["crictl logs --since 10m -t web"],
    },
    Case {
        args: &["logs", "--timestamps", "--until", "5m", "web"],
        output: &[
            "crictl logs -t web",
            "# crictl logs has no --until: the end time is dropped",
        ],
    },
    Case {
        args: &["logs", "--details", "web"],
        output: &[
            "crictl logs web",
            "# crictl logs has no --details: extra attributes are dropped",
        ],
    },
    Case {
        args: &["logs", "--tail", "all", "web"],
        output: &["crictl logs web"],
    },
    Case {
        args: &["container", "logs", "-f", "web"],
        output: &["crictl logs -f web"],
    },
    Case {
        args: &["inspect", "web"],
        output: &[
            "crictl inspect web",
            "# web may name a container or an image: read as a container; pass --type image for crictl inspecti",
        ],
    },
    Case {
        args: &["inspect", "nginx:1.25"],
        output: &["crictl inspecti nginx:1.25"],
    },
    Case {
        args: &["inspect", "sha256:4f2a"],
        output: &["crictl inspecti sha256:4f2a"],
    },
    Case {
        args: &["inspect", "--type", "image", "web"],
        output: &["crictl inspecti web"],
    },
    Case {
        args: &["inspect", "--type", "container", "web"],
        output: &["crictl inspect web"],
    },
    Case {
        args: &["inspect", "-f", "{{.State.Status}}", "web"],
        output: &[
            "crictl inspect -o go-template --template '{{.State.Status}}' web",
            "# the template runs over crictl's CRI status JSON, whose field names differ from docker's",
            "# web may name a container or an image: read as a container; pass --type image for crictl inspecti",
        ],
    },
    Case {
        args: &["inspect", "web", "nginx:1.25"],
        output: &[
            "crictl inspect web",
            "crictl inspecti nginx:1.25",
            "# web may name a container or an image: read as a container; pass --type image for crictl inspecti",
        ],
    },
    Case {
        args: &["image", "inspect", "nginx"],
        output: &["crictl inspecti nginx"],
    },
    Case {
        args: &["container", "inspect", "web"],
        output: &["crictl inspect web"],
    },
    Case {
        args: &["inspect", "-s", "web"],
        output: &[
            "crictl inspect web",
            "# crictl has no size in inspect output: -s is dropped",
            "# web may name a container or an image: read as a container; pass --type image for crictl inspecti",
        ],
    },
    Case {
        args: &["inspect", "--type", "volume", "data"],
        output: &[
            "nerdctl volume inspect data",
            "# crictl has no volume objects: Kubernetes manages them; nerdctl inspects containerd's own",
        ],
    },
    Case {
        args: &["exec", "-it", "web", "sh"],
        output: &["crictl exec -it web sh"],
    },
    Case {
        args: &["exec", "-i", "web", "cat"],
        output: &["crictl exec -i web cat"],
    },
    Case {
        args: &["exec", "-t", "web", "top"],
        output: &[
            "crictl exec -it web top",
            "# crictl exec -t requires -i, so -i is added",
        ],
    },
    Case {
        args: &["exec", "web", "ls", "-l", "/"],
        output: &["crictl exec web ls -l /"],
    },
    Case {
        args: &["exec", "-e", "A=1", "-e", "B=2", "web", "printenv"],
        output: &[
            "crictl exec web env A=1 B=2 printenv",
            "# crictl exec has no --env: the variables are set with env(1), which the image must contain",
        ],
    },
    Case {
        args: &["exec", "-u", "root", "-w", "/tmp", "web", "id"],
        output: &[
            "crictl exec web id",
            "# crictl exec has no --user: the command runs as the container's user",
            "# crictl exec has no --workdir: the command starts in the container's working directory",
        ],
    },
    Case {
        args: &["exec", "-d", "web", "sleep", "100"],
        output: &[
            "crictl exec web sleep 100",
            "# crictl exec has no detach: -d is dropped; start the command in the background inside the container instead",
        ],
    },
    Case {
        args: &["attach", "web"],
        output: &[
            "crictl attach -i web",
            "# add -t when the container was started with a TTY: crictl does not read that from the container",
        ],
    },
    Case {
        args: &["attach", "--no-stdin", "web"],
        output: &[
            "crictl attach web",
            "# add -t when the container was started with a TTY: crictl does not read that from the container",
        ],
    },
    Case {
        args: &["kill", "web"],
        output: &[
            "crictl stop --timeout 0 web",
            "# with --timeout 0 the runtime sends SIGKILL at once, as docker kill does; CRI cannot send other signals",
        ],
    },
    Case {
        args: &["kill", "-s", "SIGKILL", "web"],
        output: &[
            "crictl stop --timeout 0 web",
            "# with --timeout 0 the runtime sends SIGKILL at once, as docker kill does; CRI cannot send other signals",
        ],
    },
    Case {
        args: &["kill", "--signal", "HUP", "web"],
        output: &[
            "crictl stop --timeout 0 web",
            "# CRI cannot send HUP: with --timeout 0 the runtime sends SIGKILL at once; crictl stop --timeout N sends the image's stop signal first",
        ],
    },
    Case {
        args: &["stop", "web"],
        output: &[
            "crictl stop --timeout 10 web",
            "# docker stop waits 10 seconds by default and crictl stop 0 (SIGKILL at once), so --timeout 10 keeps docker's grace period",
        ],
    },
    Case {
        args: &["stop", "-t", "30", "web"],
        output: &["crictl stop --timeout 30 web"],
    },
    Case {
        args: &["stop", "--time", "5", "a", "b"],
        output: &["crictl stop --timeout 5 a b"],
    },
    Case {
        args: &["rm", "web"],
        output: &["crictl rm web"],
    },
    Case {
        args: &["rm", "-f", "web"],
        output: &["crictl rm -f web"],
    },
    Case {
        args: &["rm", "-fv", "web"],
        output: &[
            "crictl rm -f web",
            "# crictl rm has no -v: volumes belong to the pod and are removed with it",
        ],
    },
    Case {
        args: &["rmi", "nginx:1.25"],
        output: &["crictl rmi nginx:1.25"],
    },
    Case {
        args: &["rmi", "-f", "nginx"],
        output: &[
            "crictl rmi nginx",
            "# crictl rmi has no --force: remove the containers that use the image first",
        ],
    },
    Case {
        args: &["pull", "nginx:1.25"],
        output: &[
            "crictl pull nginx:1.25",
            "# crictl does not read docker login's credentials: pass --creds USER:PASSWORD or --auth BASE64 for a private registry",
        ],
    },
    Case {
        args: &["pull", "--platform", "linux/arm64", "nginx"],
        output: &[
            "crictl pull nginx",
            "# crictl does not read docker login's credentials: pass --creds USER:PASSWORD or --auth BASE64 for a private registry",
            "# crictl pulls the node's platform: --platform is dropped",
        ],
    },
    Case {
        args: &["start", "web"],
        output: &[
            "crictl start web",
            "# CRI starts only created containers; an exited container is replaced by the kubelet, not restarted",
        ],
    },
    Case {
        args: &["start", "-a", "web"],
        output: &[
            "crictl start web",
            "# CRI starts only created containers; an exited container is replaced by the kubelet, not restarted",
            "# crictl start does not attach: -a and -i are dropped; run crictl attach afterwards",
        ],
    },
    Case {
        args: &["stats"],
        output: &[
            "crictl stats -w",
            "# docker stats streams by default; crictl stats prints one sample unless -w is given, so -w is added",
        ],
    },
    Case {
        args: &["stats", "--no-stream"],
        output: &["crictl stats"],
    },
    Case {
        args: &["stats", "-a", "--no-stream", "web"],
        output: &["crictl stats -a web"],
    },
    Case {
        args: &["update", "-m", "512m", "web"],
        output: &[
            "crictl update --memory 536870912 web",
            "# crictl --memory takes bytes: 512m is 536870912 bytes",
            "# the kubelet resets container resources from the pod spec; change the pod's resources for a lasting change",
        ],
    },
    Case {
        args: &["update", "--cpus", "1.5", "web"],
        output: &[
            "crictl update --cpu-period 100000 --cpu-quota 150000 web",
            "# crictl has no --cpus: 1.5 CPUs is a CFS quota of 150000 us per 100000 us period",
            "# the kubelet resets container resources from the pod spec; change the pod's resources for a lasting change",
        ],
    },
    Case {
        args: &[
            "update",
            "--cpu-shares",
            "512",
            "--restart",
            "always",
            "web",
        ],
        output: &[
            "crictl update --cpu-share 512 web",
            "# crictl update has no --restart: it is dropped",
            "# the kubelet resets container resources from the pod spec; change the pod's resources for a lasting change",
        ],
    },
    Case {
        args: &["version"],
        output: &["crictl version"],
    },
    Case {
        args: &["info"],
        output: &[
            "crictl info",
            "# crictl info prints the CRI runtime's status and config as JSON, not the docker daemon's",
        ],
    },
    Case {
        args: &["info", "--format", "{{json .}}"],
        output: &[
            "crictl info -o json",
            "# crictl info prints the CRI runtime's status and config as JSON, not the docker daemon's",
        ],
    },
    Case {
        args: &["events"],
        output: &[
            "crictl events",
            "# crictl events streams CRI container events; the runtime must support the CRI event stream (containerd 1.7+, CRI-O 1.26+)",
        ],
    },
    Case {
        args: &["system", "df"],
        output: &[
            "crictl imagefsinfo",
            "# crictl imagefsinfo reports the runtime's image and container filesystems as JSON; docker's per-image and per-volume breakdown is lost",
        ],
    },
    Case {
        args: &["image", "prune", "-a"],
        output: &["crictl rmi --prune"],
    },
    Case {
        args: &["image", "prune"],
        output: &[
            "crictl rmi --prune",
            "# crictl rmi --prune removes every image no container uses, like docker image prune -a, not only dangling ones",
        ],
    },
    Case {
        args: &["container", "prune", "-f"],
        output: &[
            "crictl rm $(crictl ps -a -q --state exited)",
            "# crictl has no prune for containers: this removes the exited ones; the kubelet also garbage-collects them",
        ],
    },
    Case {
        args: &["top", "web"],
        output: &[
            "crictl exec web ps",
            "# crictl has no top: this runs ps inside the container, which the image must contain; ps options after the container are dropped",
        ],
    },
    Case {
        args: &["create", "nginx"],
        output: &[
            "crictl create POD-ID container-config.json pod-config.json",
            "# crictl create makes a container inside an existing pod sandbox (crictl runp) from a container config and a pod config in JSON or YAML; the image, command and docker flags become fields of container-config.json",
            "# on containerd nodes nerdctl takes docker's flags as they are: nerdctl --namespace k8s.io create nginx",
        ],
    },
    Case {
        args: &["run", "-d", "--name", "web", "nginx:1.25"],
        output: &[
            "crictl run container-config.json pod-config.json",
            "# crictl run starts a new pod sandbox and a container from a container config and a pod config in JSON or YAML; the image, command and docker flags become fields of those files",
            "# on containerd nodes nerdctl takes docker's flags as they are: nerdctl --namespace k8s.io run -d --name web nginx:1.25",
        ],
    },
    Case {
        args: &["build", "-t", "app:1", "."],
        output: &[
            "nerdctl --namespace k8s.io build -t app:1 .",
            "# crictl cannot build images: nerdctl build needs a running BuildKit daemon (buildkitd); buildctl build is the lower-level client",
            "# --namespace k8s.io is the containerd namespace the kubelet uses, so the kubelet sees the result",
        ],
    },
    Case {
        args: &["push", "registry.local/app:1"],
        output: &[
            "nerdctl --namespace k8s.io push registry.local/app:1",
            "# crictl cannot push images; the ctr equivalent is ctr -n k8s.io images push registry.local/app:1",
        ],
    },
    Case {
        args: &["tag", "nginx:1.25", "registry.local/nginx:1.25"],
        output: &[
            "nerdctl --namespace k8s.io tag nginx:1.25 registry.local/nginx:1.25",
            "# crictl cannot tag images; the ctr equivalent, which needs full references, is ctr -n k8s.io images tag docker.io/library/nginx:1.25 registry.local/nginx:1.25",
            "# --namespace k8s.io is the containerd namespace the kubelet uses, so the kubelet sees the result",
        ],
    },
    Case {
        args: &["save", "-o", "nginx.tar", "nginx:1.25"],
        output: &[
            "nerdctl --namespace k8s.io save -o nginx.tar nginx:1.25",
            "# crictl cannot export images; the ctr equivalent is ctr -n k8s.io images export FILE REF...",
        ],
    },
    Case {
        args: &["load", "-i", "nginx.tar"],
        output: &[
            "nerdctl --namespace k8s.io load -i nginx.tar",
            "# crictl cannot import images; the ctr equivalent is ctr -n k8s.io images import FILE",
            "# --namespace k8s.io is the containerd namespace the kubelet uses, so the kubelet sees the result",
        ],
    },
    Case {
        args: &["commit", "web", "app:snapshot"],
        output: &[
            "nerdctl --namespace k8s.io commit web app:snapshot",
            "# crictl has no commit: nerdctl runs it on containerd nodes",
        ],
    },
    Case {
        args: &["cp", "web:/etc/hosts", "./hosts"],
        output: &[
            "nerdctl --namespace k8s.io cp web:/etc/hosts ./hosts",
            "# crictl has no cp: nerdctl runs it on containerd nodes",
            "# for a pod's container, kubectl cp POD:PATH DEST works without node access",
        ],
    },
    Case {
        args: &["network", "ls"],
        output: &[
            "nerdctl network ls",
            "# crictl has no networks: pods get theirs from the CNI plugin",
        ],
    },
    Case {
        args: &["volume", "create", "data"],
        output: &[
            "nerdctl volume create data",
            "# crictl has no volumes: pods get theirs from Kubernetes volumes and PersistentVolumes",
        ],
    },
    Case {
        args: &["compose", "up", "-d"],
        output: &[
            "nerdctl compose up -d",
            "# crictl has no compose: Kubernetes manifests replace compose files",
        ],
    },
    Case {
        args: &["login", "registry.local"],
        output: &[
            "nerdctl login registry.local",
            "# crictl has no login: pass --creds or --auth to crictl pull, and give pods an imagePullSecret",
        ],
    },
    Case {
        args: &["restart", "web"],
        output: &[
            "nerdctl --namespace k8s.io restart web",
            "# crictl has no restart: nerdctl runs it on containerd nodes",
            "# the kubelet restarts containers by the pod's restartPolicy; deleting the pod makes its controller create a new one",
        ],
    },
    Case {
        args: &["pause", "web"],
        output: &[
            "nerdctl --namespace k8s.io pause web",
            "# crictl has no pause: nerdctl runs it on containerd nodes",
        ],
    },
    Case {
        args: &["system", "prune", "-a"],
        output: &[
            "crictl rmi --prune",
            "crictl rm $(crictl ps -a -q --state exited)",
            "# crictl has no system prune: these remove unused images and exited containers; networks and volumes belong to Kubernetes",
        ],
    },
];

const CRICTL_CASES: &[Case] = &[
    Case {
        args: &["ps"],
        output: &["docker ps"],
    },
    Case {
        args: &["ps", "-a"],
        output: &["docker ps -a"],
    },
    Case {
        args: &["ps", "-aq"],
        output: &["docker ps -a -q"],
    },
    Case {
        args: &["ps", "-q", "--no-trunc"],
        output: &["docker ps -q --no-trunc"],
    },
    Case {
        args: &["ps", "--last", "3"],
        output: &["docker ps -n 3"],
    },
    Case {
        args: &["ps", "-l"],
        output: &["docker ps -l"],
    },
    Case {
        args: &["ps", "--name", "web"],
        output: &[
            "docker ps --filter label=io.kubernetes.container.name=web",
            "# crictl --name is a regular expression; the docker label filter matches the container name exactly",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
        ],
    },
    Case {
        args: &["ps", "--state", "running"],
        output: &["docker ps --filter status=running"],
    },
    Case {
        args: &["ps", "-s", "Exited"],
        output: &["docker ps --filter status=exited"],
    },
    Case {
        args: &["ps", "--state", "unknown"],
        output: &[
            "docker ps",
            "# docker has no unknown state: --state unknown is dropped",
        ],
    },
    Case {
        args: &["ps", "--label", "app=web"],
        output: &["docker ps --filter label=app=web"],
    },
    Case {
        args: &["ps", "--id", "abc"],
        output: &["docker ps --filter id=abc"],
    },
    Case {
        args: &["ps", "--image", "nginx"],
        output: &["docker ps --filter ancestor=nginx"],
    },
    Case {
        args: &["ps", "-p", "5f2e"],
        output: &[
            "docker ps --filter label=io.kubernetes.sandbox.id=5f2e",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
        ],
    },
    Case {
        args: &["ps", "--namespace", "shop"],
        output: &[
            "docker ps --filter label=io.kubernetes.pod.namespace=shop",
            "# crictl --namespace is a regular expression; the docker label filter matches the namespace exactly",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
        ],
    },
    Case {
        args: &["ps", "-o", "json"],
        output: &["docker ps --format '{{json .}}'"],
    },
    Case {
        args: &["ps", "-o", "yaml"],
        output: &[
            "docker ps",
            "# docker prints JSON with --format '{{json .}}' and has no yaml output: -o yaml is dropped",
        ],
    },
    Case {
        args: &["ps", "-v"],
        output: &[
            "docker ps",
            "# docker ps has no verbose listing: -v is dropped; docker inspect shows the details",
        ],
    },
    Case {
        args: &["images"],
        output: &["docker images"],
    },
    Case {
        args: &["image", "-q"],
        output: &["docker images -q"],
    },
    Case {
        args: &["img", "--digests"],
        output: &["docker images --digests"],
    },
    Case {
        args: &["images", "--no-trunc", "nginx"],
        output: &["docker images --no-trunc nginx"],
    },
    Case {
        args: &["images", "--filter", "dangling=true"],
        output: &["docker images --filter dangling=true"],
    },
    Case {
        args: &["images", "-f", "reference=nginx"],
        output: &[
            "docker images --filter reference=nginx",
            "# docker reads the reference filter as a glob; crictl read it as a regular expression",
        ],
    },
    Case {
        args: &["images", "-o", "json"],
        output: &["docker images --format '{{json .}}'"],
    },
    Case {
        args: &["images", "--pinned"],
        output: &[
            "docker images",
            "# docker has no pinned images: --pinned is dropped",
        ],
    },
    Case {
        args: &["logs", "web"],
        output: &["docker logs web"],
    },
    Case {
        args: &["logs", "-f", "web"],
        output: &["docker logs -f web"],
    },
    Case {
        args: &["logs", "--tail", "100", "web"],
        output: &["docker logs --tail 100 web"],
    },
    Case {
        args: &["logs", "--tail=-1", "web"],
        output: &["docker logs web"],
    },
    Case {
        args: &["logs", "--since", "10m", "-t", "web"],
        output: &["docker logs --since 10m -t web"],
    },
    Case {
        args: &["logs", "-p", "web"],
        output: &[
            "docker logs web",
            "# docker logs has no --previous: the previous instance is an exited container; find it with docker ps -a --filter label=io.kubernetes.container.name=NAME",
        ],
    },
    Case {
        args: &["logs", "--limit-bytes", "1024", "web"],
        output: &[
            "docker logs web",
            "# docker logs has no --limit-bytes: it is dropped",
        ],
    },
    Case {
        args: &["inspect", "web"],
        output: &["docker inspect --type container web"],
    },
    Case {
        args: &[
            "inspect",
            "-o",
            "go-template",
            "--template",
            "{{.status.state}}",
            "web",
        ],
        output: &[
            "docker inspect --type container --format '{{.status.state}}' web",
            "# the template runs over docker's inspect JSON, whose field names differ from CRI's",
        ],
    },
    Case {
        args: &["inspect", "-o", "yaml", "web"],
        output: &[
            "docker inspect --type container web",
            "# docker inspect prints JSON only: -o yaml is dropped",
        ],
    },
    Case {
        args: &["inspect", "--state", "running"],
        output: &["docker inspect --type container $(docker ps -q --filter status=running)"],
    },
    Case {
        args: &["inspecti", "nginx:1.25"],
        output: &["docker image inspect nginx:1.25"],
    },
    Case {
        args: &["inspectp", "5f2e"],
        output: &[
            "docker inspect --type container 5f2e",
            "# under dockershim and cri-dockerd a pod sandbox ID is the ID of its pause container, which this inspects",
        ],
    },
    Case {
        args: &["exec", "-it", "web", "sh"],
        output: &["docker exec -it web sh"],
    },
    Case {
        args: &["exec", "-i", "web", "cat"],
        output: &["docker exec -i web cat"],
    },
    Case {
        args: &["exec", "web", "ls", "-l", "/"],
        output: &["docker exec web ls -l /"],
    },
    Case {
        args: &["exec", "-s", "--timeout", "5", "web", "date"],
        output: &[
            "docker exec web date",
            "# docker exec always waits for the command: -s is dropped",
            "# docker exec has no --timeout: wrap the command in timeout 5 if the image has it",
        ],
    },
    Case {
        args: &["exec", "--name", "web", "ls"],
        output: &[
            r#"for c in $(docker ps -q --filter label=io.kubernetes.container.name=web); do docker exec "$c" ls; done"#,
            "# crictl --name is a regular expression; the docker label filter matches the container name exactly",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
            "# docker exec runs in one container, so a loop runs the command in each selected one",
        ],
    },
    Case {
        args: &["attach", "-it", "web"],
        output: &[
            "docker attach web",
            "# docker attach uses the container's own TTY setting: -t is dropped",
        ],
    },
    Case {
        args: &["attach", "web"],
        output: &["docker attach --no-stdin web"],
    },
    Case {
        args: &["stop", "web"],
        output: &[
            "docker kill web",
            "# crictl stop without a timeout (or --timeout 0) makes the runtime send SIGKILL at once, as docker kill does",
        ],
    },
    Case {
        args: &["stop", "-t", "30", "web"],
        output: &["docker stop -t 30 web"],
    },
    Case {
        args: &["stop", "--timeout", "0", "a", "b"],
        output: &[
            "docker kill a b",
            "# crictl stop without a timeout (or --timeout 0) makes the runtime send SIGKILL at once, as docker kill does",
        ],
    },
    Case {
        args: &["stop", "-a"],
        output: &[
            "docker kill $(docker ps -q)",
            "# crictl stop without a timeout (or --timeout 0) makes the runtime send SIGKILL at once, as docker kill does",
        ],
    },
    Case {
        args: &["start", "web"],
        output: &["docker start web"],
    },
    Case {
        args: &["rm", "web"],
        output: &["docker rm web"],
    },
    Case {
        args: &["rm", "-f", "web"],
        output: &["docker rm -f web"],
    },
    Case {
        args: &["rm", "-a"],
        output: &["docker rm $(docker ps -a -q)"],
    },
    Case {
        args: &["rmi", "nginx:1.25"],
        output: &["docker rmi nginx:1.25"],
    },
    Case {
        args: &["rmi", "-a"],
        output: &["docker rmi $(docker images -q)"],
    },
    Case {
        args: &["rmi", "--prune"],
        output: &[
            "docker image prune -a",
            "# docker image prune -a asks for confirmation; add -f to skip it",
        ],
    },
    Case {
        args: &["pull", "nginx:1.25"],
        output: &["docker pull nginx:1.25"],
    },
    Case {
        args: &["pull", "--creds", "alice:secret", "registry.local/app:1"],
        output: &[
            "docker login -u alice registry.local",
            "docker pull registry.local/app:1",
            "# docker pull takes no credentials: docker login stores them first and prompts for the password, which is not copied onto the command line",
        ],
    },
    Case {
        args: &["pull", "-u", "alice", "ghcr.io/me/app"],
        output: &[
            "docker login -u alice ghcr.io",
            "docker pull ghcr.io/me/app",
            "# docker pull takes no credentials: docker login stores them first and prompts for the password, which is not copied onto the command line",
        ],
    },
    Case {
        args: &["pull", "--auth", "YWxpY2U6c2VjcmV0", "nginx"],
        output: &[
            "docker pull nginx",
            "# docker pull takes no --auth: decode the base64 USER:PASSWORD and run docker login with it",
        ],
    },
    Case {
        args: &["stats"],
        output: &["docker stats --no-stream"],
    },
    Case {
        args: &["stats", "-w"],
        output: &["docker stats"],
    },
    Case {
        args: &["stats", "-a", "web"],
        output: &["docker stats -a --no-stream web"],
    },
    Case {
        args: &["stats", "-p", "5f2e"],
        output: &[
            "docker stats --no-stream $(docker ps -q --filter label=io.kubernetes.sandbox.id=5f2e)",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
        ],
    },
    Case {
        args: &["stats", "-o", "json"],
        output: &["docker stats --no-stream --format '{{json .}}'"],
    },
    Case {
        args: &["statsp", "5f2e"],
        output: &[
            "docker stats --no-stream $(docker ps -q --filter label=io.kubernetes.sandbox.id=5f2e)",
            "# docker has no pod statistics: this lists the pod's containers one by one, without a pod total",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
        ],
    },
    Case {
        args: &["pods"],
        output: &[
            "docker ps -a --filter label=io.kubernetes.docker.type=podsandbox",
            "# docker has no pods: dockershim and cri-dockerd run each pod sandbox as a pause container, which this lists",
        ],
    },
    Case {
        args: &["pods", "-q"],
        output: &[
            "docker ps -a --filter label=io.kubernetes.docker.type=podsandbox -q",
            "# docker has no pods: dockershim and cri-dockerd run each pod sandbox as a pause container, which this lists",
        ],
    },
    Case {
        args: &["pods", "--state", "ready"],
        output: &[
            "docker ps --filter status=running --filter label=io.kubernetes.docker.type=podsandbox",
            "# docker has no pods: dockershim and cri-dockerd run each pod sandbox as a pause container, which this lists",
        ],
    },
    Case {
        args: &["pods", "--state", "notready"],
        output: &[
            "docker ps -a --filter status=exited --filter label=io.kubernetes.docker.type=podsandbox",
            "# docker has no pods: dockershim and cri-dockerd run each pod sandbox as a pause container, which this lists",
        ],
    },
    Case {
        args: &["pods", "--name", "web"],
        output: &[
            "docker ps -a --filter label=io.kubernetes.docker.type=podsandbox --filter label=io.kubernetes.pod.name=web",
            "# crictl --name is a regular expression; the docker label filter matches the pod name exactly",
            "# docker has no pods: dockershim and cri-dockerd run each pod sandbox as a pause container, which this lists",
        ],
    },
    Case {
        args: &["pods", "--label", "app=web"],
        output: &[
            "docker ps -a --filter label=io.kubernetes.docker.type=podsandbox --filter label=app=web",
            "# docker has no pods: dockershim and cri-dockerd run each pod sandbox as a pause container, which this lists",
        ],
    },
    Case {
        args: &["runp", "pod-config.json"],
        output: &[
            "kubectl apply -f pod.yaml",
            "# docker cannot create a pod sandbox: create the pod through the API server and the kubelet makes the sandbox",
        ],
    },
    Case {
        args: &["stopp", "5f2e"],
        output: &[
            "docker stop $(docker ps -q --filter label=io.kubernetes.sandbox.id=5f2e) 5f2e",
            "# docker has no pods: this handles the pod's containers and then its pause container",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
        ],
    },
    Case {
        args: &["rmp", "-f", "5f2e"],
        output: &[
            "docker rm -f $(docker ps -a -q --filter label=io.kubernetes.sandbox.id=5f2e) 5f2e",
            "# docker has no pods: this handles the pod's containers and then its pause container",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
            "# the kubelet recreates pods that still exist in the API server: delete those with kubectl delete pod",
        ],
    },
    Case {
        args: &["rmp", "-a"],
        output: &[
            "docker rm $(docker ps -a -q --filter label=io.kubernetes.pod.uid)",
            "# docker has no pods: this handles the pod's containers and then its pause container",
            "# the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes",
            "# the kubelet recreates pods that still exist in the API server: delete those with kubectl delete pod",
        ],
    },
    Case {
        args: &["port-forward", "5f2e", "8080:80"],
        output: &[
            "kubectl port-forward pod/POD-NAME 8080:80",
            "# docker cannot forward into a running pod: kubectl port-forward takes the pod's name, not its sandbox ID",
        ],
    },
    Case {
        args: &["imagefsinfo"],
        output: &[
            "docker system df",
            "# docker system df reports space per images, containers, volumes and build cache, not per filesystem",
        ],
    },
    Case {
        args: &["create", "5f2e", "container-config.json", "pod-config.json"],
        output: &[
            "docker create IMAGE COMMAND",
            "# docker create takes flags instead of CRI config files: take the image, command, env, mounts and resources from container-config.json",
        ],
    },
    Case {
        args: &["run", "container-config.json", "pod-config.json"],
        output: &[
            "docker run IMAGE COMMAND",
            "# docker run takes flags instead of CRI config files: take the image, command, env, mounts and resources from container-config.json",
        ],
    },
    Case {
        args: &[
            "update",
            "--memory",
            "536870912",
            "--cpu-share",
            "512",
            "web",
        ],
        output: &["docker update --memory 536870912 --cpu-shares 512 web"],
    },
    Case {
        args: &["update", "--oom-score-adj", "100", "web"],
        output: &[
            "docker update web",
            "# docker update has no --oom-score-adj: it is dropped",
        ],
    },
    Case {
        args: &["version"],
        output: &["docker version"],
    },
    Case {
        args: &["info"],
        output: &["docker info"],
    },
    Case {
        args: &["info", "-o", "json"],
        output: &["docker info --format '{{json .}}'"],
    },
    Case {
        args: &["events"],
        output: &[
            "docker events",
            "# docker events also reports image, network and volume events; add --filter type=container for container events only",
        ],
    },
];
