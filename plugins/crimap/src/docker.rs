//! Translation of docker command lines into crictl, or into nerdctl and ctr where crictl has no
//! equivalent.
//!
//! The crictl flag tables follow the flag definitions in cri-tools' `cmd/crictl` sources of
//! the releases that have `images --pinned` and the exec filters (v1.30 and later); the docker
//! ones follow the docker CLI 24+ reference. Each docker flag is carried over, rewritten, or
//! dropped with a note that gives the reason.

use shared::{Error, Result};

use crate::argv::{
    CarriedFlags, FlagSpec, ParsedArgs, carry_over, owned_words, parse, push_filter, shell_quote,
    split_filter, switch, valued,
};
use crate::translation::Translation;

/// containerd namespace of the kubelet's images and containers.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// Translates `args`, the words after `docker`, into crictl (or nerdctl/ctr).
pub fn translate(args: &[String]) -> Result<Translation> {
    let Some(first) = args.first() else {
        return Err(Error::usage(
            "missing docker command: pass one, e.g. kubectl crimap docker ps -a",
        ));
    };
    if first.starts_with('-') {
        return Err(Error::usage(format!(
            "unsupported docker global flag {first}: give the command without global flags, e.g. kubectl crimap docker ps -a"
        )));
    }

    let (command, rest) = canonical_command(args)?;
    let mut input = vec!["docker".to_string()];
    input.extend(args.iter().cloned());
    let name = format!("docker {}", command.replace('-', " "));
    match command {
        "ps" => ps(&input, &name, rest),
        "images" => images(&input, &name, rest),
        "logs" => logs(&input, &name, rest),
        "inspect" => inspect(&input, &name, rest, None),
        "container-inspect" => inspect(&input, "docker container inspect", rest, Some("container")),
        "image-inspect" => inspect(&input, "docker image inspect", rest, Some("image")),
        "exec" => exec(&input, &name, rest),
        "attach" => attach(&input, &name, rest),
        "kill" => kill(&input, &name, rest),
        "stop" => stop(&input, &name, rest),
        "start" => start(&input, &name, rest),
        "rm" => rm(&input, &name, rest),
        "rmi" => rmi(&input, &name, rest),
        "pull" => pull(&input, &name, rest),
        "stats" => stats(&input, &name, rest),
        "update" => update(&input, &name, rest),
        "create" | "run" => create_or_run(&input, command, rest),
        "version" | "info" => version_or_info(&input, &name, command, rest),
        "events" => events(&input, &name, rest),
        "system-df" => no_flags(
            &input,
            "docker system df",
            rest,
            &["crictl", "imagefsinfo"],
            &[
                "crictl imagefsinfo reports the runtime's image and container filesystems as JSON; docker's per-image and per-volume breakdown is lost",
            ],
        ),
        "image-prune" => image_prune(&input, rest),
        "container-prune" => container_prune(&input, rest),
        "top" => top(&input, rest),
        other => without_crictl(&input, other, rest),
    }
}

/// Resolves management commands (`docker container ls`, `docker image rm`) to one name.
/// Returns the name and the words after the command.
fn canonical_command(args: &[String]) -> Result<(&'static str, &[String])> {
    let first = args[0].as_str();
    let second = args.get(1).map(String::as_str);
    let rest_after = |count: usize| &args[count.min(args.len())..];

    let pair: Option<&'static str> = match (first, second) {
        ("container", Some("ls" | "list" | "ps")) => Some("ps"),
        ("container", Some("inspect")) => Some("container-inspect"),
        ("container", Some("prune")) => Some("container-prune"),
        ("container", Some(sub)) => {
            single_command(sub).filter(|name| CONTAINER_SUBCOMMANDS.contains(name))
        }
        ("image", Some("ls" | "list")) => Some("images"),
        ("image", Some("rm" | "remove")) => Some("rmi"),
        ("image", Some("inspect")) => Some("image-inspect"),
        ("image", Some("prune")) => Some("image-prune"),
        ("image", Some(sub)) => single_command(sub).filter(|name| IMAGE_SUBCOMMANDS.contains(name)),
        ("system", Some("df")) => Some("system-df"),
        ("system", Some("info")) => Some("info"),
        ("system", Some("events")) => Some("events"),
        ("system", Some("prune")) => Some("system-prune"),
        _ => None,
    };
    if let Some(name) = pair {
        return Ok((name, rest_after(2)));
    }
    if matches!(first, "container" | "image" | "system") {
        return Err(Error::usage(format!(
            "unknown docker command {:?}: use a docker CLI command such as docker {first} ls",
            format!("{first} {}", second.unwrap_or_default()).trim_end()
        )));
    }
    match single_command(first) {
        Some(name) => Ok((name, rest_after(1))),
        None => Err(Error::usage(format!(
            "unknown docker command {first:?}: run kubectl crimap table to list the docker commands this plugin translates"
        ))),
    }
}

const CONTAINER_SUBCOMMANDS: &[&str] = &[
    "attach", "commit", "cp", "create", "diff", "exec", "export", "kill", "logs", "pause", "port",
    "rename", "restart", "rm", "run", "start", "stats", "stop", "top", "unpause", "update", "wait",
];
const IMAGE_SUBCOMMANDS: &[&str] = &[
    "build", "history", "import", "load", "pull", "push", "save", "tag",
];

fn single_command(word: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "attach", "build", "commit", "compose", "cp", "create", "diff", "events", "exec", "export",
        "history", "images", "import", "info", "inspect", "kill", "load", "login", "logout",
        "logs", "network", "pause", "port", "ps", "pull", "push", "rename", "restart", "rm", "rmi",
        "run", "save", "start", "stats", "stop", "tag", "top", "unpause", "update", "version",
        "volume", "wait", "buildx", "builder",
    ];
    NAMES.iter().copied().find(|name| *name == word)
}

const FORMAT_NOTE: &str =
    "crictl prints json, yaml or table with -o; docker's Go template in --format is lost";

/// Maps docker's `--format` to crictl's `-o`: only the JSON forms carry over.
fn format_flag(parsed: &ParsedArgs, out: &mut Translation, words: &mut Vec<String>) {
    if let Some(format) = parsed.value("format") {
        if matches!(format, "json" | "{{json .}}") {
            words.extend(["-o".to_string(), "json".to_string()]);
        } else {
            out.note(FORMAT_NOTE);
        }
    }
}

const PS_FLAGS: &[FlagSpec] = &[
    switch("all", Some('a')),
    valued("filter", Some('f')),
    valued("format", None),
    valued("last", Some('n')),
    switch("latest", Some('l')),
    switch("no-trunc", None),
    switch("quiet", Some('q')),
    switch("size", Some('s')),
];

/// docker ps flags that crictl ps has too, in crictl's spelling.
const PS_CARRIED: &CarriedFlags = &[
    ("all", "-a"),
    ("last", "-n"),
    ("latest", "-l"),
    ("no-trunc", "--no-trunc"),
    ("quiet", "-q"),
];

fn ps(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, PS_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "ps"]);
    for flag in &parsed.flags {
        if carry_over(flag, PS_CARRIED, &mut words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "filter" => ps_filter(&value, &mut words, &mut out)?,
            "size" => {
                out.note("crictl ps has no size column: -s is dropped; crictl stats shows the writable layer size");
            }
            _ => {}
        }
    }
    format_flag(&parsed, &mut out, &mut words);
    out.command(&words);
    Ok(out)
}

fn ps_filter(filter: &str, words: &mut Vec<String>, out: &mut Translation) -> Result<()> {
    let (key, value) = split_filter(filter, "docker ps", "name=web")?;
    match key {
        "name" => {
            words.extend(["--name".to_string(), value.to_string()]);
            out.note("crictl --name is a regular expression over the container name from the pod spec; docker matched a substring of the docker container name");
        }
        "id" => words.extend(["--id".to_string(), value.to_string()]),
        "ancestor" => words.extend(["--image".to_string(), value.to_string()]),
        "label" => {
            if value.contains('=') {
                words.extend(["--label".to_string(), value.to_string()]);
            } else {
                out.note(format!(
                    "crictl --label needs KEY=VALUE: the filter label={value} (label present) is dropped"
                ));
            }
        }
        "status" => match value {
            "created" | "running" | "exited" => {
                words.extend(["--state".to_string(), value.to_string()]);
            }
            "paused" | "restarting" | "removing" | "dead" => {
                out.note(format!(
                    "CRI containers are created, running, exited or unknown: the filter status={value} is dropped"
                ));
            }
            _ => {
                return Err(Error::usage(format!(
                    "invalid status {value:?} in the docker ps filter: use created, restarting, running, removing, paused, exited or dead"
                )));
            }
        },
        "before" | "since" | "exited" | "health" | "isolation" | "is-task" | "network"
        | "publish" | "expose" | "volume" => {
            out.note(format!(
                "crictl ps has no filter like {key}=: the filter {filter} is dropped"
            ));
        }
        _ => {
            return Err(Error::usage(format!(
                "unknown docker ps filter {key:?}: docker ps filters are ancestor, before, exited, expose, health, id, isolation, is-task, label, name, network, publish, since, status and volume"
            )));
        }
    }
    Ok(())
}

const IMAGES_FLAGS: &[FlagSpec] = &[
    switch("all", Some('a')),
    switch("digests", None),
    valued("filter", Some('f')),
    valued("format", None),
    switch("no-trunc", None),
    switch("quiet", Some('q')),
];

/// docker images flags that crictl images has too, in crictl's spelling.
const IMAGES_CARRIED: &CarriedFlags = &[
    ("digests", "--digests"),
    ("no-trunc", "--no-trunc"),
    ("quiet", "-q"),
];

fn images(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, IMAGES_FLAGS, None)?;
    parsed.limit_positionals(name, 1, "at most one REPOSITORY[:TAG]")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "images"]);
    for flag in &parsed.flags {
        if carry_over(flag, IMAGES_CARRIED, &mut words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "all" => {
                out.note("crictl lists every image the runtime stores and CRI has no intermediate build images, so -a is not needed");
            }
            "filter" => images_filter(&value, &mut words, &mut out)?,
            _ => {}
        }
    }
    format_flag(&parsed, &mut out, &mut words);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

fn images_filter(filter: &str, words: &mut Vec<String>, out: &mut Translation) -> Result<()> {
    let (key, value) = split_filter(filter, "docker images", "dangling=true")?;
    match key {
        "dangling" | "before" | "since" => push_filter(words, filter),
        "reference" => {
            push_filter(words, filter);
            out.note(format!(
                "crictl reads reference={value} as a regular expression; docker read it as a glob"
            ));
        }
        "label" | "until" => {
            out.note(format!(
                "crictl images has no filter like {key}=: the filter {filter} is dropped"
            ));
        }
        _ => {
            return Err(Error::usage(format!(
                "unknown docker images filter {key:?}: docker images filters are before, dangling, label, reference, since and until"
            )));
        }
    }
    Ok(())
}

const LOGS_FLAGS: &[FlagSpec] = &[
    switch("details", None),
    switch("follow", Some('f')),
    valued("since", None),
    FlagSpec {
        long: "tail",
        aliases: &[],
        short: Some('n'),
        takes_value: true,
    },
    switch("timestamps", Some('t')),
    valued("until", None),
];

/// docker logs flags that crictl logs has too, in crictl's spelling.
const LOGS_CARRIED: &CarriedFlags = &[("follow", "-f"), ("since", "--since"), ("timestamps", "-t")];

fn logs(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, LOGS_FLAGS, None)?;
    parsed.require_positional(name, "container")?;
    parsed.limit_positionals(name, 1, "one container")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "logs"]);
    for flag in &parsed.flags {
        if carry_over(flag, LOGS_CARRIED, &mut words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "tail" if value == "all" => {}
            "tail" => {
                if value.parse::<i64>().is_err() {
                    return Err(Error::usage(format!(
                        "invalid --tail value {value:?} for {name}: use a number of lines or all"
                    )));
                }
                words.extend(["--tail".to_string(), value]);
            }
            "until" => {
                out.note("crictl logs has no --until: the end time is dropped");
            }
            "details" => {
                out.note("crictl logs has no --details: extra attributes are dropped");
            }
            _ => {}
        }
    }
    words.push(parsed.positionals[0].clone());
    out.command(&words);
    Ok(out)
}

const INSPECT_FLAGS: &[FlagSpec] = &[
    valued("format", Some('f')),
    switch("size", Some('s')),
    valued("type", None),
];

/// Reading of a `docker inspect` argument when `--type` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectGuess {
    /// `repo:tag`, `registry/repo`, `name@sha256:...` or `sha256:...`: an image.
    Image,
    /// A plain name or ID that docker accepts for both containers and images.
    Ambiguous,
}

/// Guesses whether a `docker inspect` argument is an image. Container names cannot contain
/// `/`, `:` or `@`, so any of those marks an image reference.
pub fn guess_object(argument: &str) -> ObjectGuess {
    if argument.starts_with("sha256:") || argument.contains(['/', ':', '@']) {
        ObjectGuess::Image
    } else {
        ObjectGuess::Ambiguous
    }
}

fn inspect(
    input: &[String],
    name: &str,
    args: &[String],
    forced_type: Option<&str>,
) -> Result<Translation> {
    let parsed = parse(name, args, INSPECT_FLAGS, None)?;
    parsed.require_positional(name, "name or id")?;
    let object_type = forced_type.or(parsed.value("type"));
    let mut out = Translation::new(input, true);

    let mut extra = Vec::new();
    if let Some(template) = parsed.value("format") {
        extra.extend([
            "-o".to_string(),
            "go-template".to_string(),
            "--template".to_string(),
            template.to_string(),
        ]);
        out.note("the template runs over crictl's CRI status JSON, whose field names differ from docker's");
    }
    if parsed.has("size") {
        out.note("crictl has no size in inspect output: -s is dropped");
    }

    let (images, containers): (Vec<String>, Vec<String>) = match object_type {
        Some("image") => (parsed.positionals.clone(), Vec::new()),
        Some("container") => (Vec::new(), parsed.positionals.clone()),
        Some(
            other @ ("network" | "volume" | "node" | "service" | "task" | "secret" | "config"
            | "plugin"),
        ) => {
            let mut out = Translation::new(input, false);
            if matches!(other, "network" | "volume") {
                out.command(&nerdctl_words(
                    false,
                    &[other, "inspect"],
                    &parsed.positionals,
                ));
            } else {
                out.command(&nerdctl_words(true, &["inspect"], &parsed.positionals));
            }
            out.note(format!(
                "crictl has no {other} objects: Kubernetes manages them; nerdctl inspects containerd's own"
            ));
            return Ok(out);
        }
        Some(other) => {
            return Err(Error::usage(format!(
                "invalid --type {other:?} for {name}: use container or image"
            )));
        }
        None => {
            let mut images = Vec::new();
            let mut containers = Vec::new();
            for argument in &parsed.positionals {
                match guess_object(argument) {
                    ObjectGuess::Image => images.push(argument.clone()),
                    ObjectGuess::Ambiguous => {
                        out.note(format!(
                            "{argument} may name a container or an image: read as a container; pass --type image for crictl inspecti"
                        ));
                        containers.push(argument.clone());
                    }
                }
            }
            (images, containers)
        }
    };

    if !containers.is_empty() {
        let mut words = owned_words(&["crictl", "inspect"]);
        words.extend(extra.iter().cloned());
        words.extend(containers);
        out.command(&words);
    }
    if !images.is_empty() {
        let mut words = owned_words(&["crictl", "inspecti"]);
        words.extend(extra.iter().cloned());
        words.extend(images);
        out.command(&words);
    }
    Ok(out)
}

/// Builds the nerdctl command line `nerdctl [--namespace k8s.io] COMMAND... ARGS...`. The
/// namespace goes in when `namespaced` is set, so that the kubelet sees the containers and
/// images the command works on.
fn nerdctl_words(namespaced: bool, command: &[&str], args: &[String]) -> Vec<String> {
    let mut words = vec!["nerdctl".to_string()];
    if namespaced {
        words.extend(["--namespace".to_string(), K8S_NAMESPACE.to_string()]);
    }
    words.extend(owned_words(command));
    words.extend(args.iter().cloned());
    words
}

const EXEC_FLAGS: &[FlagSpec] = &[
    switch("detach", Some('d')),
    valued("detach-keys", None),
    valued("env", Some('e')),
    valued("env-file", None),
    switch("interactive", Some('i')),
    switch("privileged", None),
    switch("tty", Some('t')),
    valued("user", Some('u')),
    valued("workdir", Some('w')),
];

fn exec(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, EXEC_FLAGS, Some(1))?;
    if parsed.positionals.len() < 2 {
        return Err(Error::usage(format!(
            "missing container or command for {name}: pass them as {name} [FLAGS] CONTAINER COMMAND [ARG...]"
        )));
    }
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "exec"]);
    let interactive = parsed.has("interactive");
    let tty = parsed.has("tty");
    match (interactive, tty) {
        (true, true) => words.push("-it".into()),
        (true, false) => words.push("-i".into()),
        (false, true) => {
            words.push("-it".into());
            out.note("crictl exec -t requires -i, so -i is added");
        }
        (false, false) => {}
    }

    let mut environment = Vec::new();
    for flag in &parsed.flags {
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "env" => environment.push(value),
            "detach" => {
                out.note("crictl exec has no detach: -d is dropped; start the command in the background inside the container instead");
            }
            "detach-keys" => {
                out.note("crictl exec detaches with ctrl-p,ctrl-q only: --detach-keys is dropped");
            }
            "env-file" => {
                out.note("crictl exec has no --env-file: the file's variables are not set");
            }
            "privileged" => {
                out.note("crictl exec has no --privileged: the command runs with the container's privileges");
            }
            "user" => {
                out.note("crictl exec has no --user: the command runs as the container's user");
            }
            "workdir" => {
                out.note("crictl exec has no --workdir: the command starts in the container's working directory");
            }
            _ => {}
        }
    }

    words.push(parsed.positionals[0].clone());
    if !environment.is_empty() {
        words.push("env".into());
        words.extend(environment);
        out.note("crictl exec has no --env: the variables are set with env(1), which the image must contain");
    }
    words.extend(parsed.positionals[1..].iter().cloned());
    out.command(&words);
    Ok(out)
}

const ATTACH_FLAGS: &[FlagSpec] = &[
    valued("detach-keys", None),
    switch("no-stdin", None),
    valued("sig-proxy", None),
];

fn attach(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, ATTACH_FLAGS, None)?;
    parsed.require_positional(name, "container")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "attach"]);
    if !parsed.has("no-stdin") {
        words.push("-i".into());
    }
    words.push(parsed.positionals[0].clone());
    out.command(&words);
    out.note("add -t when the container was started with a TTY: crictl does not read that from the container");
    if parsed.has("detach-keys") {
        out.note("crictl attach detaches with ctrl-p,ctrl-q only: --detach-keys is dropped");
    }
    if parsed.has("sig-proxy") {
        out.note("crictl attach does not proxy signals: --sig-proxy is dropped");
    }
    Ok(out)
}

const KILL_FLAGS: &[FlagSpec] = &[valued("signal", Some('s'))];

fn kill(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, KILL_FLAGS, None)?;
    parsed.require_positional(name, "container")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "stop", "--timeout", "0"]);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    match parsed.value("signal") {
        Some(signal) if !is_sigkill(signal) => {
            out.note(format!(
                "CRI cannot send {signal}: with --timeout 0 the runtime sends SIGKILL at once; crictl stop --timeout N sends the image's stop signal first"
            ));
        }
        _ => {
            out.note("with --timeout 0 the runtime sends SIGKILL at once, as docker kill does; CRI cannot send other signals");
        }
    }
    Ok(out)
}

fn is_sigkill(signal: &str) -> bool {
    matches!(signal.to_uppercase().as_str(), "KILL" | "SIGKILL" | "9")
}

const STOP_FLAGS: &[FlagSpec] = &[
    valued("signal", Some('s')),
    FlagSpec {
        long: "timeout",
        aliases: &["time"],
        short: Some('t'),
        takes_value: true,
    },
];

fn stop(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, STOP_FLAGS, None)?;
    parsed.require_positional(name, "container")?;
    let mut out = Translation::new(input, true);
    let timeout = match parsed.value("timeout") {
        Some(value) => {
            if value.parse::<i64>().is_err() {
                return Err(Error::usage(format!(
                    "invalid --timeout value {value:?} for {name}: use a number of seconds"
                )));
            }
            value.to_string()
        }
        None => {
            out.note("docker stop waits 10 seconds by default and crictl stop 0 (SIGKILL at once), so --timeout 10 keeps docker's grace period");
            "10".to_string()
        }
    };
    let mut words = owned_words(&["crictl", "stop", "--timeout", &timeout]);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    if parsed.has("signal") {
        out.note("crictl stop uses the image's stop signal: --signal is dropped");
    }
    Ok(out)
}

const START_FLAGS: &[FlagSpec] = &[
    switch("attach", Some('a')),
    valued("checkpoint", None),
    valued("checkpoint-dir", None),
    valued("detach-keys", None),
    switch("interactive", Some('i')),
];

fn start(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, START_FLAGS, None)?;
    parsed.require_positional(name, "container")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "start"]);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    out.note("CRI starts only created containers; an exited container is replaced by the kubelet, not restarted");
    if parsed.has("attach") || parsed.has("interactive") {
        out.note(
            "crictl start does not attach: -a and -i are dropped; run crictl attach afterwards",
        );
    }
    if parsed.has("checkpoint") || parsed.has("checkpoint-dir") {
        out.note("crictl start cannot restore a checkpoint: --checkpoint is dropped");
    }
    Ok(out)
}

const RM_FLAGS: &[FlagSpec] = &[
    switch("force", Some('f')),
    switch("link", Some('l')),
    switch("volumes", Some('v')),
];

fn rm(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, RM_FLAGS, None)?;
    parsed.require_positional(name, "container")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "rm"]);
    if parsed.has("force") {
        words.push("-f".into());
    }
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    if parsed.has("volumes") {
        out.note("crictl rm has no -v: volumes belong to the pod and are removed with it");
    }
    if parsed.has("link") {
        out.note("CRI has no container links: -l is dropped");
    }
    Ok(out)
}

const RMI_FLAGS: &[FlagSpec] = &[switch("force", Some('f')), switch("no-prune", None)];

fn rmi(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, RMI_FLAGS, None)?;
    parsed.require_positional(name, "image")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "rmi"]);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    if parsed.has("force") {
        out.note("crictl rmi has no --force: remove the containers that use the image first");
    }
    if parsed.has("no-prune") {
        out.note("crictl rmi has no --no-prune: untagged parents are handled by the runtime");
    }
    Ok(out)
}

const PULL_FLAGS: &[FlagSpec] = &[
    switch("all-tags", Some('a')),
    switch("disable-content-trust", None),
    valued("platform", None),
    switch("quiet", Some('q')),
];

fn pull(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, PULL_FLAGS, None)?;
    parsed.require_positional(name, "image")?;
    let mut out = Translation::new(input, true);
    out.command(&["crictl", "pull", parsed.positionals[0].as_str()]);
    out.note("crictl does not read docker login's credentials: pass --creds USER:PASSWORD or --auth BASE64 for a private registry");
    if parsed.has("all-tags") {
        out.note("crictl pull takes one reference: -a is dropped");
    }
    if parsed.has("platform") {
        out.note("crictl pulls the node's platform: --platform is dropped");
    }
    if parsed.has("quiet") {
        out.note("crictl pull prints one line anyway: -q is dropped");
    }
    if parsed.has("disable-content-trust") {
        out.note("content trust is a docker feature: --disable-content-trust is dropped");
    }
    Ok(out)
}

const STATS_FLAGS: &[FlagSpec] = &[
    switch("all", Some('a')),
    valued("format", None),
    switch("no-stream", None),
    switch("no-trunc", None),
];

fn stats(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, STATS_FLAGS, None)?;
    if parsed.positionals.len() > 1 {
        return Err(Error::usage(format!(
            "too many containers for {name}: crictl stats takes one container ID, so translate one container at a time"
        )));
    }
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "stats"]);
    if parsed.has("all") {
        words.push("-a".into());
    }
    if !parsed.has("no-stream") {
        words.push("-w".into());
        out.note("docker stats streams by default; crictl stats prints one sample unless -w is given, so -w is added");
    }
    if parsed.has("no-trunc") {
        out.note("crictl stats has no --no-trunc: IDs stay truncated in the table");
    }
    format_flag(&parsed, &mut out, &mut words);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

const UPDATE_FLAGS: &[FlagSpec] = &[
    valued("blkio-weight", None),
    valued("cpu-period", None),
    valued("cpu-quota", None),
    valued("cpu-rt-period", None),
    valued("cpu-rt-runtime", None),
    valued("cpu-shares", Some('c')),
    valued("cpus", None),
    valued("cpuset-cpus", None),
    valued("cpuset-mems", None),
    valued("kernel-memory", None),
    valued("memory", Some('m')),
    valued("memory-reservation", None),
    valued("memory-swap", None),
    valued("pids-limit", None),
    valued("restart", None),
];

/// CFS period crictl gets when `docker update --cpus` is translated, in microseconds; docker
/// uses the same 100 ms period for `--cpus`.
const CFS_PERIOD_MICROS: u64 = 100_000;

/// docker update flags that crictl update has too, in crictl's spelling.
const UPDATE_CARRIED: &CarriedFlags = &[
    ("cpu-period", "--cpu-period"),
    ("cpu-quota", "--cpu-quota"),
    ("cpu-shares", "--cpu-share"),
    ("cpuset-cpus", "--cpuset-cpus"),
    ("cpuset-mems", "--cpuset-mems"),
];

fn update(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, UPDATE_FLAGS, None)?;
    parsed.require_positional(name, "container")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "update"]);
    for flag in &parsed.flags {
        if carry_over(flag, UPDATE_CARRIED, &mut words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "memory" => {
                let bytes = parse_docker_size(&value).ok_or_else(|| {
                    Error::usage(format!(
                        "invalid --memory value {value:?} for {name}: use a size such as 512m or 2g"
                    ))
                })?;
                words.extend(["--memory".to_string(), bytes.to_string()]);
                if bytes.to_string() != value {
                    out.note(format!(
                        "crictl --memory takes bytes: {value} is {bytes} bytes"
                    ));
                }
            }
            "cpus" => {
                let cpus: f64 = value.parse().ok().filter(|cpus: &f64| *cpus > 0.0).ok_or_else(|| {
                    Error::usage(format!(
                        "invalid --cpus value {value:?} for {name}: use a positive number such as 1.5"
                    ))
                })?;
                let quota = (cpus * CFS_PERIOD_MICROS as f64).round() as u64;
                words.extend([
                    "--cpu-period".to_string(),
                    CFS_PERIOD_MICROS.to_string(),
                    "--cpu-quota".to_string(),
                    quota.to_string(),
                ]);
                out.note(format!(
                    "crictl has no --cpus: {value} CPUs is a CFS quota of {quota} us per {CFS_PERIOD_MICROS} us period"
                ));
            }
            other => {
                out.note(format!("crictl update has no --{other}: it is dropped"));
            }
        }
    }
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    out.note("the kubelet resets container resources from the pod spec; change the pod's resources for a lasting change");
    Ok(out)
}

/// Parses docker's size notation (`512m`, `2g`, `1024`, `64k`, with an optional `b`) into bytes.
pub fn parse_docker_size(value: &str) -> Option<u64> {
    let lower = value.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, multiplier) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1u64 << 10),
        'm' => (&lower[..lower.len() - 1], 1u64 << 20),
        'g' => (&lower[..lower.len() - 1], 1u64 << 30),
        't' => (&lower[..lower.len() - 1], 1u64 << 40),
        _ => (lower, 1),
    };
    let number: f64 = digits.parse().ok()?;
    if !(number.is_finite() && number >= 0.0) {
        return None;
    }
    Some((number * multiplier as f64) as u64)
}

fn create_or_run(input: &[String], command: &str, args: &[String]) -> Result<Translation> {
    if args.is_empty() {
        return Err(Error::usage(format!(
            "missing image for docker {command}: pass it as docker {command} [FLAGS] IMAGE [COMMAND]"
        )));
    }
    let mut out = Translation::new(input, true);
    if command == "create" {
        out.command(&[
            "crictl",
            "create",
            "POD-ID",
            "container-config.json",
            "pod-config.json",
        ]);
        out.note("crictl create makes a container inside an existing pod sandbox (crictl runp) from a container config and a pod config in JSON or YAML; the image, command and docker flags become fields of container-config.json");
    } else {
        out.command(&["crictl", "run", "container-config.json", "pod-config.json"]);
        out.note("crictl run starts a new pod sandbox and a container from a container config and a pod config in JSON or YAML; the image, command and docker flags become fields of those files");
    }
    let nerdctl = nerdctl_words(true, &[command], args);
    out.note(format!(
        "on containerd nodes nerdctl takes docker's flags as they are: {}",
        crate::argv::join_quoted(&nerdctl)
    ));
    Ok(out)
}

const VERSION_FLAGS: &[FlagSpec] = &[valued("format", Some('f'))];

fn version_or_info(
    input: &[String],
    name: &str,
    command: &str,
    args: &[String],
) -> Result<Translation> {
    let parsed = parse(name, args, VERSION_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", command]);
    format_flag(&parsed, &mut out, &mut words);
    out.command(&words);
    if command == "info" {
        out.note("crictl info prints the CRI runtime's status and config as JSON, not the docker daemon's");
    }
    Ok(out)
}

const EVENTS_FLAGS: &[FlagSpec] = &[
    valued("filter", Some('f')),
    valued("format", None),
    valued("since", None),
    valued("until", None),
];

fn events(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, EVENTS_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["crictl", "events"]);
    format_flag(&parsed, &mut out, &mut words);
    out.command(&words);
    out.note("crictl events streams CRI container events; the runtime must support the CRI event stream (containerd 1.7+, CRI-O 1.26+)");
    for dropped in ["filter", "since", "until"] {
        if parsed.has(dropped) {
            out.note(format!("crictl events has no --{dropped}: it is dropped"));
        }
    }
    Ok(out)
}

fn no_flags(
    input: &[String],
    name: &str,
    args: &[String],
    words: &[&str],
    notes: &[&str],
) -> Result<Translation> {
    let parsed = parse(name, args, &[], None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    out.command(words);
    for note in notes {
        out.note(*note);
    }
    Ok(out)
}

const PRUNE_FLAGS: &[FlagSpec] = &[
    switch("all", Some('a')),
    valued("filter", None),
    switch("force", Some('f')),
];

/// crictl command that removes the images no container uses.
const PRUNE_IMAGES: &[&str] = &["crictl", "rmi", "--prune"];

/// Command line that removes the exited containers, for docker's prune commands.
const REMOVE_EXITED_CONTAINERS: &str = "crictl rm $(crictl ps -a -q --state exited)";

fn image_prune(input: &[String], args: &[String]) -> Result<Translation> {
    let name = "docker image prune";
    let parsed = parse(name, args, PRUNE_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    out.command(PRUNE_IMAGES);
    if !parsed.has("all") {
        out.note("crictl rmi --prune removes every image no container uses, like docker image prune -a, not only dangling ones");
    }
    if parsed.has("filter") {
        out.note("crictl rmi --prune has no filter: --filter is dropped");
    }
    Ok(out)
}

fn container_prune(input: &[String], args: &[String]) -> Result<Translation> {
    let name = "docker container prune";
    let parsed = parse(name, args, PRUNE_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    out.raw_command(REMOVE_EXITED_CONTAINERS);
    out.note("crictl has no prune for containers: this removes the exited ones; the kubelet also garbage-collects them");
    if parsed.has("filter") {
        out.note("--filter is dropped");
    }
    Ok(out)
}

fn top(input: &[String], args: &[String]) -> Result<Translation> {
    let Some(container) = args.first() else {
        return Err(Error::usage(
            "missing container for docker top: pass it as docker top CONTAINER",
        ));
    };
    let mut out = Translation::new(input, false);
    out.command(&["crictl", "exec", container.as_str(), "ps"]);
    out.note("crictl has no top: this runs ps inside the container, which the image must contain; ps options after the container are dropped");
    Ok(out)
}

/// Translates commands crictl lacks into nerdctl, and names the ctr command where one exists.
fn without_crictl(input: &[String], command: &str, args: &[String]) -> Result<Translation> {
    let mut out = Translation::new(input, false);
    let nerdctl = |namespaced: bool| nerdctl_words(namespaced, &[command], args);
    // These commands are passed on unparsed, so the words that do not start with `-` are
    // taken as the image references.
    // NOTE: a flag value given as its own word (`--platform linux/amd64`) is taken for a
    // reference too.
    let references: Vec<&String> = args.iter().filter(|arg| !arg.starts_with('-')).collect();
    let namespace_note = "--namespace k8s.io is the containerd namespace the kubelet uses, so the kubelet sees the result";

    match command {
        "build" | "buildx" | "builder" => {
            out.command(&nerdctl(true));
            out.note("crictl cannot build images: nerdctl build needs a running BuildKit daemon (buildkitd); buildctl build is the lower-level client");
            out.note(namespace_note);
        }
        "push" => {
            out.command(&nerdctl(true));
            if let Some(reference) = references.first() {
                out.note(format!(
                    "crictl cannot push images; the ctr equivalent is ctr -n k8s.io images push {}",
                    shell_quote(reference)
                ));
            } else {
                out.note("crictl cannot push images; the ctr equivalent is ctr -n k8s.io images push REF");
            }
        }
        "tag" => {
            out.command(&nerdctl(true));
            if let [source, target] = references.as_slice() {
                out.note(format!(
                    "crictl cannot tag images; the ctr equivalent, which needs full references, is ctr -n k8s.io images tag {} {}",
                    shell_quote(&full_reference(source)),
                    shell_quote(&full_reference(target))
                ));
            }
            out.note(namespace_note);
        }
        "save" => {
            out.command(&nerdctl(true));
            out.note(
                "crictl cannot export images; the ctr equivalent is ctr -n k8s.io images export FILE REF...",
            );
        }
        "load" => {
            out.command(&nerdctl(true));
            out.note("crictl cannot import images; the ctr equivalent is ctr -n k8s.io images import FILE");
            out.note(namespace_note);
        }
        "commit" | "cp" | "diff" | "export" | "history" | "import" | "pause" | "unpause"
        | "port" | "rename" | "restart" | "wait" => {
            out.command(&nerdctl(true));
            out.note(format!(
                "crictl has no {command}: nerdctl runs it on containerd nodes"
            ));
            match command {
                "cp" => {
                    out.note(
                        "for a pod's container, kubectl cp POD:PATH DEST works without node access",
                    );
                }
                "restart" => {
                    out.note("the kubelet restarts containers by the pod's restartPolicy; deleting the pod makes its controller create a new one");
                }
                _ => {}
            }
        }
        "network" | "volume" | "compose" | "login" | "logout" => {
            out.command(&nerdctl(false));
            match command {
                "network" => out.note("crictl has no networks: pods get theirs from the CNI plugin"),
                "volume" => out.note("crictl has no volumes: pods get theirs from Kubernetes volumes and PersistentVolumes"),
                "compose" => out.note("crictl has no compose: Kubernetes manifests replace compose files"),
                _ => out.note("crictl has no login: pass --creds or --auth to crictl pull, and give pods an imagePullSecret"),
            };
        }
        "system-prune" => {
            out.command(PRUNE_IMAGES);
            out.raw_command(REMOVE_EXITED_CONTAINERS);
            out.note("crictl has no system prune: these remove unused images and exited containers; networks and volumes belong to Kubernetes");
        }
        other => {
            return Err(Error::usage(format!(
                "unknown docker command {other:?}: run kubectl crimap table to list the docker commands this plugin translates"
            )));
        }
    }
    Ok(out)
}

/// Expands a short image reference the way docker does (`nginx:1.25` to
/// `docker.io/library/nginx:1.25`), because ctr takes only full references.
pub fn full_reference(reference: &str) -> String {
    let first = reference.split('/').next().unwrap_or(reference);
    let has_registry = reference.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        reference.to_string()
    } else if reference.contains('/') {
        format!("docker.io/{reference}")
    } else {
        format!("docker.io/library/{reference}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        full.push_str(":latest");
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_docker_size("512m"), Some(512 * 1024 * 1024));
        assert_eq!(parse_docker_size("2G"), Some(2 << 30));
        assert_eq!(parse_docker_size("1024"), Some(1024));
        assert_eq!(parse_docker_size("64kb"), Some(64 * 1024));
        assert_eq!(parse_docker_size("lots"), None);
    }

    #[test]
    fn references_expand_for_ctr() {
        assert_eq!(full_reference("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(full_reference("me/app:1"), "docker.io/me/app:1");
        assert_eq!(
            full_reference("registry.local:5000/app"),
            "registry.local:5000/app:latest"
        );
        assert_eq!(
            full_reference("ghcr.io/a/b@sha256:00"),
            "ghcr.io/a/b@sha256:00"
        );
    }

    #[test]
    fn inspect_guess_reads_references() {
        assert_eq!(guess_object("nginx:1.25"), ObjectGuess::Image);
        assert_eq!(guess_object("sha256:abc"), ObjectGuess::Image);
        assert_eq!(guess_object("quay.io/app"), ObjectGuess::Image);
        assert_eq!(guess_object("web"), ObjectGuess::Ambiguous);
    }

    #[test]
    fn container_subcommand_resolves() {
        let args: Vec<String> = ["container", "ls", "-a"].map(String::from).to_vec();
        let (name, rest) = canonical_command(&args).unwrap();
        assert_eq!(name, "ps");
        assert_eq!(rest, &args[2..]);
    }
}
