//! Translation of crictl command lines into docker, for nodes that still run Docker Engine
//! (dockershim before Kubernetes 1.24, cri-dockerd after).
//!
//! dockershim and cri-dockerd run each pod sandbox as a `pause` container labelled
//! `io.kubernetes.docker.type=podsandbox`. They label the app containers with
//! `io.kubernetes.sandbox.id`, and all of them with `io.kubernetes.pod.name`,
//! `io.kubernetes.pod.namespace` and `io.kubernetes.pod.uid`. The pod filters below rely on
//! those labels, so they work only on such nodes.

use shared::{Error, Result};

use crate::argv::{
    CarriedFlags, FlagSpec, ParsedArgs, carry_over, join_quoted, owned_words, parse, push_filter,
    split_filter, switch, valued,
};
use crate::translation::Translation;

const SANDBOX_LABEL: &str = "io.kubernetes.sandbox.id";
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
const SANDBOX_TYPE_FILTER: &str = "label=io.kubernetes.docker.type=podsandbox";
const LABELS_NOTE: &str = "the pod filters use the labels dockershim and cri-dockerd put on containers, so they work only on such nodes";

/// Translates `args`, the words after `crictl`, into docker commands.
pub fn translate(args: &[String]) -> Result<Translation> {
    let Some(command) = args.first() else {
        return Err(Error::usage(
            "missing crictl command: pass one, e.g. kubectl crimap crictl ps -a",
        ));
    };
    if command.starts_with('-') {
        return Err(Error::usage(format!(
            "unsupported crictl global flag {command}: give the command without global flags, e.g. kubectl crimap crictl ps -a"
        )));
    }
    let rest = &args[1..];
    let mut input = vec!["crictl".to_string()];
    input.extend(args.iter().cloned());
    let name = format!("crictl {command}");

    match command.as_str() {
        "ps" => ps(&input, &name, rest),
        "images" | "image" | "img" => images(&input, &name, rest),
        "logs" => logs(&input, &name, rest),
        "inspect" => inspect(&input, &name, rest),
        "inspecti" => inspecti(&input, &name, rest),
        "inspectp" => inspectp(&input, &name, rest),
        "exec" => exec(&input, &name, rest),
        "attach" => attach(&input, &name, rest),
        "stop" => stop(&input, &name, rest),
        "start" => start(&input, &name, rest),
        "rm" => rm(&input, &name, rest),
        "rmi" => rmi(&input, &name, rest),
        "pull" => pull(&input, &name, rest),
        "stats" => stats(&input, &name, rest),
        "statsp" => statsp(&input, &name, rest),
        "pods" => pods(&input, &name, rest),
        "runp" => runp(&input, &name, rest),
        "stopp" | "rmp" => stop_or_remove_pods(&input, &name, command, rest),
        "port-forward" => port_forward(&input, &name, rest),
        "imagefsinfo" => imagefsinfo(&input, &name, rest),
        "create" | "run" => create_or_run(&input, command, rest),
        "update" => update(&input, &name, rest),
        "version" | "info" => version_or_info(&input, &name, command, rest),
        "events" => events(&input, &name, rest),
        other => Err(Error::usage(format!(
            "unknown crictl command {other:?}: run kubectl crimap table to list the crictl commands this plugin translates"
        ))),
    }
}

/// Maps crictl's `-o json` to docker's `--format '{{json .}}'`.
fn output_flag(parsed: &ParsedArgs, out: &mut Translation, words: &mut Vec<String>) {
    match parsed.value("output") {
        Some("json") => words.extend(["--format".to_string(), "{{json .}}".to_string()]),
        Some("table") | None => {}
        Some(other) => {
            out.note(format!(
                "docker prints JSON with --format '{{{{json .}}}}' and has no {other} output: -o {other} is dropped"
            ));
        }
    }
}

/// Builds the shell command line `WORDS $(LIST)`, which runs `words` with the container IDs
/// that the command `list` prints as arguments.
fn on_listed_ids<S: AsRef<str>>(words: &[String], list: &[S]) -> String {
    format!("{} $({})", join_quoted(words), join_quoted(list))
}

/// Container filter flags that `ps`, `inspect` and `exec` share.
const FILTER_FLAGS: &[FlagSpec] = &[
    valued("id", None),
    valued("name", None),
    valued("pod", Some('p')),
    valued("image", None),
    valued("state", Some('s')),
    valued("label", None),
    valued("namespace", None),
    switch("latest", Some('l')),
    valued("last", Some('n')),
    switch("all", Some('a')),
];

/// Container filter flags that docker ps has too, in docker's spelling.
const FILTER_CARRIED: &CarriedFlags = &[("all", "-a"), ("last", "-n"), ("latest", "-l")];

/// Translates crictl's container filters into `docker ps` flags.
fn container_filters(
    parsed: &ParsedArgs,
    out: &mut Translation,
    words: &mut Vec<String>,
) -> Result<()> {
    let mut uses_labels = false;
    for flag in &parsed.flags {
        if carry_over(flag, FILTER_CARRIED, words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "id" => push_filter(words, format!("id={value}")),
            "image" => push_filter(words, format!("ancestor={value}")),
            "label" => {
                if !value.contains('=') {
                    return Err(Error::usage(format!(
                        "invalid --label {value:?}: crictl labels are KEY=VALUE"
                    )));
                }
                push_filter(words, format!("label={value}"));
            }
            "name" => {
                push_filter(words, format!("label=io.kubernetes.container.name={value}"));
                out.note("crictl --name is a regular expression; the docker label filter matches the container name exactly");
                uses_labels = true;
            }
            "pod" => {
                push_filter(words, format!("label={SANDBOX_LABEL}={value}"));
                uses_labels = true;
            }
            "namespace" => {
                push_filter(words, format!("label={POD_NAMESPACE_LABEL}={value}"));
                out.note("crictl --namespace is a regular expression; the docker label filter matches the namespace exactly");
                uses_labels = true;
            }
            "state" => {
                let state = crictl_state(&value)?;
                match state {
                    "unknown" => {
                        out.note("docker has no unknown state: --state unknown is dropped");
                    }
                    _ => push_filter(words, format!("status={state}")),
                }
            }
            _ => {}
        }
    }
    if uses_labels {
        out.note(LABELS_NOTE);
    }
    Ok(())
}

/// Normalizes a crictl container state (`running`, `Running`, `CONTAINER_RUNNING`).
fn crictl_state(value: &str) -> Result<&'static str> {
    let lower = value.to_ascii_lowercase();
    let lower = lower.strip_prefix("container_").unwrap_or(&lower);
    match lower {
        "created" => Ok("created"),
        "running" => Ok("running"),
        "exited" => Ok("exited"),
        "unknown" => Ok("unknown"),
        _ => Err(Error::usage(format!(
            "invalid container state {value:?}: crictl states are created, running, exited and unknown"
        ))),
    }
}

fn ps_flags() -> Vec<FlagSpec> {
    let mut flags = FILTER_FLAGS.to_vec();
    flags.extend([
        switch("verbose", Some('v')),
        switch("quiet", Some('q')),
        valued("output", Some('o')),
        switch("no-trunc", None),
        switch("resolve-image-path", Some('r')),
    ]);
    flags
}

fn ps(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, &ps_flags(), None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "ps"]);
    container_filters(&parsed, &mut out, &mut words)?;
    if parsed.has("quiet") {
        words.push("-q".into());
    }
    if parsed.has("no-trunc") {
        words.push("--no-trunc".into());
    }
    output_flag(&parsed, &mut out, &mut words);
    if parsed.has("verbose") {
        out.note(
            "docker ps has no verbose listing: -v is dropped; docker inspect shows the details",
        );
    }
    if parsed.has("resolve-image-path") {
        out.note("docker ps shows the image as given: -r is dropped");
    }
    out.command(&words);
    Ok(out)
}

const IMAGES_FLAGS: &[FlagSpec] = &[
    switch("verbose", Some('v')),
    switch("quiet", Some('q')),
    valued("filter", Some('f')),
    valued("output", Some('o')),
    switch("digests", None),
    switch("no-trunc", None),
    switch("pinned", None),
];

/// crictl images flags that docker images has too, in docker's spelling.
const IMAGES_CARRIED: &CarriedFlags = &[
    ("digests", "--digests"),
    ("no-trunc", "--no-trunc"),
    ("quiet", "-q"),
];

fn images(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, IMAGES_FLAGS, None)?;
    parsed.limit_positionals(name, 1, "at most one REPOSITORY[:TAG]")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "images"]);
    for flag in &parsed.flags {
        if carry_over(flag, IMAGES_CARRIED, &mut words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "filter" => {
                let (key, _) = split_filter(&value, name, "dangling=true")?;
                match key {
                    "dangling" | "before" | "since" => push_filter(&mut words, value.clone()),
                    "reference" => {
                        push_filter(&mut words, value.clone());
                        out.note("docker reads the reference filter as a glob; crictl read it as a regular expression");
                    }
                    _ => {
                        return Err(Error::usage(format!(
                            "unknown crictl images filter {key:?}: crictl images filters are before, dangling, reference and since"
                        )));
                    }
                }
            }
            "verbose" => {
                out.note("docker images has no verbose listing: -v is dropped; docker image inspect shows the details");
            }
            "pinned" => {
                out.note("docker has no pinned images: --pinned is dropped");
            }
            _ => {}
        }
    }
    output_flag(&parsed, &mut out, &mut words);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

const LOGS_FLAGS: &[FlagSpec] = &[
    switch("follow", Some('f')),
    valued("tail", None),
    valued("limit-bytes", None),
    valued("since", None),
    switch("timestamps", Some('t')),
    switch("previous", Some('p')),
    switch("reverse", Some('r')),
    valued("stream", None),
];

/// crictl logs flags that docker logs has too, in docker's spelling.
const LOGS_CARRIED: &CarriedFlags = &[("follow", "-f"), ("since", "--since"), ("timestamps", "-t")];

fn logs(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, LOGS_FLAGS, None)?;
    parsed.require_positional(name, "container id")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "logs"]);
    for flag in &parsed.flags {
        if carry_over(flag, LOGS_CARRIED, &mut words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "tail" => {
                if value.parse::<i64>().is_err() {
                    return Err(Error::usage(format!(
                        "invalid --tail value {value:?} for {name}: use a number of lines"
                    )));
                }
                if value != "-1" {
                    words.extend(["--tail".to_string(), value]);
                }
            }
            "previous" => {
                out.note("docker logs has no --previous: the previous instance is an exited container; find it with docker ps -a --filter label=io.kubernetes.container.name=NAME");
            }
            "limit-bytes" => {
                out.note("docker logs has no --limit-bytes: it is dropped");
            }
            "reverse" => {
                out.note("docker logs has no --reverse: it is dropped");
            }
            "stream" => {
                out.note("docker logs writes both streams; redirect 1> or 2> to keep one: --stream is dropped");
            }
            _ => {}
        }
    }
    words.push(parsed.positionals[0].clone());
    out.command(&words);
    Ok(out)
}

const STATUS_FLAGS: &[FlagSpec] = &[
    valued("output", Some('o')),
    switch("quiet", Some('q')),
    valued("template", None),
];

/// Maps crictl's status output flags to `docker inspect --format`.
fn status_flags(parsed: &ParsedArgs, out: &mut Translation, words: &mut Vec<String>) {
    match (parsed.value("output"), parsed.value("template")) {
        (Some("go-template"), Some(template)) => {
            words.extend(["--format".to_string(), template.to_string()]);
            out.note(
                "the template runs over docker's inspect JSON, whose field names differ from CRI's",
            );
        }
        (Some("json") | None, _) => {}
        (Some(other), _) => {
            out.note(format!(
                "docker inspect prints JSON only: -o {other} is dropped"
            ));
        }
    }
    if parsed.has("quiet") {
        out.note("docker inspect has no -q: it is dropped");
    }
}

/// The docker command that inspects containers, which under dockershim and cri-dockerd include
/// the pause containers of pod sandboxes.
const INSPECT_CONTAINERS: &[&str] = &["docker", "inspect", "--type", "container"];

fn inspect(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let mut flags = STATUS_FLAGS.to_vec();
    flags.extend(FILTER_FLAGS.iter().copied());
    let parsed = parse(name, args, &flags, None)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(INSPECT_CONTAINERS);
    status_flags(&parsed, &mut out, &mut words);

    if parsed.positionals.is_empty() {
        let mut select = owned_words(&["docker", "ps", "-q"]);
        container_filters(&parsed, &mut out, &mut select)?;
        out.raw_command(on_listed_ids(&words, &select));
        return Ok(out);
    }
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

fn inspecti(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    inspect_ids(
        input,
        name,
        args,
        "image id",
        &["docker", "image", "inspect"],
    )
}

fn inspectp(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let mut out = inspect_ids(input, name, args, "pod id", INSPECT_CONTAINERS)?;
    out.note("under dockershim and cri-dockerd a pod sandbox ID is the ID of its pause container, which this inspects");
    Ok(out)
}

/// Translates a crictl status command that takes IDs into the docker command `target` followed
/// by those IDs. The error for a missing ID calls it `argument`.
fn inspect_ids(
    input: &[String],
    name: &str,
    args: &[String],
    argument: &str,
    target: &[&str],
) -> Result<Translation> {
    let parsed = parse(name, args, STATUS_FLAGS, None)?;
    parsed.require_positional(name, argument)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(target);
    status_flags(&parsed, &mut out, &mut words);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

fn exec_flags() -> Vec<FlagSpec> {
    let mut flags: Vec<FlagSpec> = FILTER_FLAGS
        .iter()
        .copied()
        .filter(|flag| !matches!(flag.long, "all" | "namespace" | "id"))
        .collect();
    flags.extend([
        switch("sync", Some('s')),
        valued("timeout", None),
        switch("tty", Some('t')),
        switch("interactive", Some('i')),
        valued("transport", Some('r')),
        switch("quiet", Some('q')),
        switch("ignore-errors", Some('e')),
        switch("parallel", Some('x')),
        FlagSpec {
            long: "tls-sni",
            aliases: &["tls-server-name"],
            short: None,
            takes_value: true,
        },
        valued("tls-ca", None),
        valued("tls-cert", None),
        valued("tls-key", None),
    ]);
    // `-s` is --sync for exec, so the state filter has no short name here.
    for flag in &mut flags {
        if flag.long == "state" {
            flag.short = None;
        }
    }
    flags
}

fn exec(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, &exec_flags(), Some(1))?;
    let selects = ["name", "pod", "image", "state", "label", "latest", "last"]
        .iter()
        .any(|flag| parsed.has(flag));
    let needed = if selects { 1 } else { 2 };
    if parsed.positionals.len() < needed {
        return Err(Error::usage(format!(
            "missing container or command for {name}: pass them as {name} [FLAGS] CONTAINER-ID COMMAND [ARG...]"
        )));
    }

    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "exec"]);
    match (parsed.has("interactive"), parsed.has("tty")) {
        (true, true) => words.push("-it".into()),
        (true, false) => words.push("-i".into()),
        (false, true) => words.push("-t".into()),
        (false, false) => {}
    }
    if parsed.has("sync") {
        out.note("docker exec always waits for the command: -s is dropped");
    }
    if let Some(seconds) = parsed.value("timeout") {
        out.note(format!(
            "docker exec has no --timeout: wrap the command in timeout {seconds} if the image has it"
        ));
    }
    for dropped in ["transport", "tls-sni", "tls-ca", "tls-cert", "tls-key"] {
        if parsed.has(dropped) {
            out.note(format!(
                "docker exec talks to the Docker daemon, not the kubelet's streaming server: --{dropped} is dropped"
            ));
        }
    }

    if !selects {
        words.extend(parsed.positionals.iter().cloned());
        out.command(&words);
        return Ok(out);
    }

    // Filter flags select the containers, and all positionals are the command.
    let mut select = owned_words(&["docker", "ps", "-q"]);
    container_filters(&parsed, &mut out, &mut select)?;
    words.push("\"$c\"".to_string());
    let command = join_quoted(&words[..words.len() - 1]);
    out.raw_command(format!(
        "for c in $({}); do {command} \"$c\" {}; done",
        join_quoted(&select),
        join_quoted(&parsed.positionals)
    ));
    out.note("docker exec runs in one container, so a loop runs the command in each selected one");
    Ok(out)
}

const ATTACH_FLAGS: &[FlagSpec] = &[
    switch("stdin", Some('i')),
    switch("tty", Some('t')),
    valued("transport", Some('r')),
];

fn attach(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, ATTACH_FLAGS, None)?;
    parsed.require_positional(name, "container id")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "attach"]);
    if !parsed.has("stdin") {
        words.push("--no-stdin".into());
    }
    words.push(parsed.positionals[0].clone());
    out.command(&words);
    if parsed.has("tty") {
        out.note("docker attach uses the container's own TTY setting: -t is dropped");
    }
    Ok(out)
}

const STOP_FLAGS: &[FlagSpec] = &[valued("timeout", Some('t')), switch("all", Some('a'))];

fn stop(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, STOP_FLAGS, None)?;
    let mut out = Translation::new(input, true);
    let timeout = parsed.value("timeout").unwrap_or("0");
    if timeout.parse::<u32>().is_err() {
        return Err(Error::usage(format!(
            "invalid --timeout value {timeout:?} for {name}: use a number of seconds"
        )));
    }
    // With a zero timeout containerd and CRI-O send SIGKILL without the stop signal, which is
    // what docker kill does.
    let words: Vec<String> = if timeout == "0" {
        out.note("crictl stop without a timeout (or --timeout 0) makes the runtime send SIGKILL at once, as docker kill does");
        owned_words(&["docker", "kill"])
    } else {
        owned_words(&["docker", "stop", "-t", timeout])
    };

    if parsed.has("all") {
        if !parsed.positionals.is_empty() {
            return Err(Error::usage(format!(
                "{name} --all takes no container IDs: drop either --all or the IDs"
            )));
        }
        out.raw_command(on_listed_ids(&words, &["docker", "ps", "-q"]));
        return Ok(out);
    }
    parsed.require_positional(name, "container id")?;
    let mut words = words;
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

fn start(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, &[], None)?;
    parsed.require_positional(name, "container id")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "start"]);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

const RM_FLAGS: &[FlagSpec] = &[
    switch("force", Some('f')),
    switch("keep-logs", Some('k')),
    switch("all", Some('a')),
];

fn rm(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, RM_FLAGS, None)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "rm"]);
    if parsed.has("force") {
        words.push("-f".into());
    }
    if parsed.has("keep-logs") {
        out.note("docker rm deletes the container's log with it: -k is dropped");
    }
    if parsed.has("all") {
        out.raw_command(on_listed_ids(&words, &["docker", "ps", "-a", "-q"]));
        return Ok(out);
    }
    parsed.require_positional(name, "container id")?;
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

const RMI_FLAGS: &[FlagSpec] = &[switch("all", Some('a')), switch("prune", Some('q'))];

fn rmi(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, RMI_FLAGS, None)?;
    let mut out = Translation::new(input, true);
    if parsed.has("prune") {
        out.command(&["docker", "image", "prune", "-a"]);
        out.note("docker image prune -a asks for confirmation; add -f to skip it");
        return Ok(out);
    }
    if parsed.has("all") {
        out.raw_command("docker rmi $(docker images -q)");
        return Ok(out);
    }
    parsed.require_positional(name, "image id")?;
    let mut words = owned_words(&["docker", "rmi"]);
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

const PULL_FLAGS: &[FlagSpec] = &[
    valued("creds", None),
    valued("auth", None),
    valued("username", Some('u')),
    valued("pod-config", None),
    valued("annotation", Some('a')),
    FlagSpec {
        long: "pull-timeout",
        aliases: &["pt"],
        short: None,
        takes_value: true,
    },
];

fn pull(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, PULL_FLAGS, None)?;
    parsed.require_positional(name, "image")?;
    let image = parsed.positionals[0].clone();
    let mut out = Translation::new(input, true);

    let user = parsed
        .value("creds")
        .map(|creds| creds.split(':').next().unwrap_or_default().to_string())
        .or_else(|| parsed.value("username").map(str::to_string));
    if let Some(user) = user {
        out.command(&[
            "docker",
            "login",
            "-u",
            user.as_str(),
            registry_of(&image).as_str(),
        ]);
        out.note("docker pull takes no credentials: docker login stores them first and prompts for the password, which is not copied onto the command line");
    }
    if parsed.has("auth") {
        out.note("docker pull takes no --auth: decode the base64 USER:PASSWORD and run docker login with it");
    }
    out.command(&["docker", "pull", image.as_str()]);
    for dropped in ["pod-config", "annotation", "pull-timeout"] {
        if parsed.has(dropped) {
            out.note(format!("docker pull has no --{dropped}: it is dropped"));
        }
    }
    Ok(out)
}

/// Returns the registry host of an image reference, `docker.io` when it names none.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

const STATS_FLAGS: &[FlagSpec] = &[
    switch("all", Some('a')),
    valued("id", None),
    valued("pod", Some('p')),
    valued("label", None),
    valued("output", Some('o')),
    valued("seconds", Some('s')),
    switch("watch", Some('w')),
];

fn stats(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, STATS_FLAGS, None)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "stats"]);
    if parsed.has("all") {
        words.push("-a".into());
    }
    if !parsed.has("watch") {
        words.push("--no-stream".into());
    }
    output_flag(&parsed, &mut out, &mut words);
    if parsed.has("seconds") {
        out.note("docker stats samples on its own: -s is dropped");
    }
    let selector = match (parsed.value("pod"), parsed.value("label")) {
        (Some(pod), _) => Some(format!("label={SANDBOX_LABEL}={pod}")),
        (None, Some(label)) => Some(format!("label={label}")),
        (None, None) => None,
    };
    let ids: Vec<String> = parsed
        .value("id")
        .map(str::to_string)
        .into_iter()
        .chain(parsed.positionals.iter().cloned())
        .collect();
    match selector {
        Some(filter) => {
            out.raw_command(on_listed_ids(
                &words,
                &["docker", "ps", "-q", "--filter", filter.as_str()],
            ));
            if parsed.has("pod") {
                out.note(LABELS_NOTE);
            }
        }
        None => {
            words.extend(ids);
            out.command(&words);
        }
    }
    Ok(out)
}

const STATSP_FLAGS: &[FlagSpec] = &[
    valued("id", None),
    valued("label", None),
    valued("output", Some('o')),
    valued("seconds", Some('s')),
    switch("watch", Some('w')),
];

fn statsp(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, STATSP_FLAGS, None)?;
    let mut out = Translation::new(input, false);
    let mut words = owned_words(&["docker", "stats"]);
    if !parsed.has("watch") {
        words.push("--no-stream".into());
    }
    output_flag(&parsed, &mut out, &mut words);
    let pod = parsed
        .value("id")
        .map(str::to_string)
        .or_else(|| parsed.positionals.first().cloned());
    let filter = match pod {
        Some(pod) => format!("label={SANDBOX_LABEL}={pod}"),
        None => format!("label={POD_UID_LABEL}"),
    };
    out.raw_command(on_listed_ids(
        &words,
        &["docker", "ps", "-q", "--filter", filter.as_str()],
    ));
    out.note("docker has no pod statistics: this lists the pod's containers one by one, without a pod total");
    out.note(LABELS_NOTE);
    Ok(out)
}

const PODS_FLAGS: &[FlagSpec] = &[
    valued("id", None),
    valued("name", None),
    valued("namespace", None),
    valued("state", Some('s')),
    valued("label", None),
    switch("verbose", Some('v')),
    switch("quiet", Some('q')),
    valued("output", Some('o')),
    switch("latest", Some('l')),
    valued("last", Some('n')),
    switch("no-trunc", None),
];

/// crictl pods flags that docker ps has too, in docker's spelling.
const PODS_CARRIED: &CarriedFlags = &[
    ("last", "-n"),
    ("latest", "-l"),
    ("no-trunc", "--no-trunc"),
    ("quiet", "-q"),
];

fn pods(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, PODS_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, false);
    let mut words = owned_words(&["docker", "ps"]);

    let state = parsed
        .value("state")
        .map(|state| state.to_ascii_lowercase());
    match state.as_deref() {
        None => words.push("-a".into()),
        Some("ready" | "sandbox_ready") => push_filter(&mut words, "status=running"),
        Some("notready" | "sandbox_notready") => {
            words.push("-a".into());
            push_filter(&mut words, "status=exited");
        }
        Some(other) => {
            return Err(Error::usage(format!(
                "invalid pod state {other:?}: crictl pod states are ready and notready"
            )));
        }
    }
    push_filter(&mut words, SANDBOX_TYPE_FILTER);
    for flag in &parsed.flags {
        if carry_over(flag, PODS_CARRIED, &mut words) {
            continue;
        }
        let value = flag.value.clone().unwrap_or_default();
        match flag.name {
            "id" => push_filter(&mut words, format!("id={value}")),
            "name" => {
                push_filter(&mut words, format!("label={POD_NAME_LABEL}={value}"));
                out.note("crictl --name is a regular expression; the docker label filter matches the pod name exactly");
            }
            "namespace" => {
                push_filter(&mut words, format!("label={POD_NAMESPACE_LABEL}={value}"));
                out.note("crictl --namespace is a regular expression; the docker label filter matches the namespace exactly");
            }
            "label" => push_filter(&mut words, format!("label={value}")),
            "verbose" => {
                out.note("docker ps has no verbose listing: -v is dropped");
            }
            _ => {}
        }
    }
    output_flag(&parsed, &mut out, &mut words);
    out.command(&words);
    out.note("docker has no pods: dockershim and cri-dockerd run each pod sandbox as a pause container, which this lists");
    Ok(out)
}

const RUNP_FLAGS: &[FlagSpec] = &[
    valued("runtime", Some('r')),
    FlagSpec {
        long: "cancel-timeout",
        aliases: &[],
        short: Some('T'),
        takes_value: true,
    },
];

fn runp(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, RUNP_FLAGS, None)?;
    parsed.require_positional(name, "pod config")?;
    let mut out = Translation::new(input, false);
    out.command(&["kubectl", "apply", "-f", "pod.yaml"]);
    out.note("docker cannot create a pod sandbox: create the pod through the API server and the kubelet makes the sandbox");
    Ok(out)
}

const POD_REMOVE_FLAGS: &[FlagSpec] = &[switch("force", Some('f')), switch("all", Some('a'))];

fn stop_or_remove_pods(
    input: &[String],
    name: &str,
    command: &str,
    args: &[String],
) -> Result<Translation> {
    let specs: &[FlagSpec] = if command == "rmp" {
        POD_REMOVE_FLAGS
    } else {
        &[]
    };
    let parsed = parse(name, args, specs, None)?;
    let mut out = Translation::new(input, false);
    let remove = command == "rmp";
    let base = if remove {
        if parsed.has("force") {
            "docker rm -f"
        } else {
            "docker rm"
        }
    } else {
        "docker stop"
    };
    let list = if remove {
        "docker ps -a -q"
    } else {
        "docker ps -q"
    };

    if parsed.has("all") {
        out.raw_command(format!("{base} $({list} --filter label={POD_UID_LABEL})"));
    } else {
        parsed.require_positional(name, "pod id")?;
        for pod in &parsed.positionals {
            out.raw_command(format!(
                "{base} $({list} --filter label={SANDBOX_LABEL}={}) {}",
                crate::argv::shell_quote(pod),
                crate::argv::shell_quote(pod)
            ));
        }
    }
    out.note("docker has no pods: this handles the pod's containers and then its pause container");
    out.note(LABELS_NOTE);
    if remove {
        out.note("the kubelet recreates pods that still exist in the API server: delete those with kubectl delete pod");
    }
    Ok(out)
}

fn port_forward(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, &[], None)?;
    if parsed.positionals.len() != 2 {
        return Err(Error::usage(format!(
            "{name} takes a pod ID and a port: pass them as {name} POD-ID [LOCAL_PORT:]REMOTE_PORT"
        )));
    }
    let mut out = Translation::new(input, false);
    out.command(&[
        "kubectl",
        "port-forward",
        "pod/POD-NAME",
        parsed.positionals[1].as_str(),
    ]);
    out.note("docker cannot forward into a running pod: kubectl port-forward takes the pod's name, not its sandbox ID");
    Ok(out)
}

const IMAGEFSINFO_FLAGS: &[FlagSpec] = &[valued("output", Some('o')), valued("template", None)];

fn imagefsinfo(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, IMAGEFSINFO_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "system", "df"]);
    output_flag(&parsed, &mut out, &mut words);
    out.command(&words);
    out.note("docker system df reports space per images, containers, volumes and build cache, not per filesystem");
    Ok(out)
}

fn create_or_run(input: &[String], command: &str, args: &[String]) -> Result<Translation> {
    if args.is_empty() {
        return Err(Error::usage(format!(
            "missing config files for crictl {command}: pass them as crictl {command} {}container-config.json pod-config.json",
            if command == "create" { "POD-ID " } else { "" }
        )));
    }
    let mut out = Translation::new(input, true);
    out.command(&["docker", command, "IMAGE", "COMMAND"]);
    out.note(format!(
        "docker {command} takes flags instead of CRI config files: take the image, command, env, mounts and resources from container-config.json"
    ));
    Ok(out)
}

const UPDATE_FLAGS: &[FlagSpec] = &[
    valued("cpu-count", None),
    valued("cpu-maximum", None),
    valued("cpu-period", None),
    valued("cpu-quota", None),
    valued("cpu-share", None),
    valued("memory", None),
    valued("cpuset-cpus", None),
    valued("cpuset-mems", None),
    valued("oom-score-adj", None),
];

/// crictl update flags that docker update has too, in docker's spelling.
const UPDATE_CARRIED: &CarriedFlags = &[
    ("cpu-period", "--cpu-period"),
    ("cpu-quota", "--cpu-quota"),
    ("cpu-share", "--cpu-shares"),
    ("cpuset-cpus", "--cpuset-cpus"),
    ("cpuset-mems", "--cpuset-mems"),
    ("memory", "--memory"),
];

fn update(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, UPDATE_FLAGS, None)?;
    parsed.require_positional(name, "container id")?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "update"]);
    for flag in &parsed.flags {
        if carry_over(flag, UPDATE_CARRIED, &mut words) {
            continue;
        }
        out.note(format!(
            "docker update has no --{}: it is dropped",
            flag.name
        ));
    }
    words.extend(parsed.positionals.iter().cloned());
    out.command(&words);
    Ok(out)
}

const INFO_FLAGS: &[FlagSpec] = &[valued("output", Some('o')), switch("quiet", Some('q'))];

fn version_or_info(
    input: &[String],
    name: &str,
    command: &str,
    args: &[String],
) -> Result<Translation> {
    let specs: &[FlagSpec] = if command == "info" { INFO_FLAGS } else { &[] };
    let parsed = parse(name, args, specs, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", command]);
    output_flag(&parsed, &mut out, &mut words);
    if parsed.has("quiet") {
        out.note("docker info has no -q: it is dropped");
    }
    out.command(&words);
    Ok(out)
}

const EVENTS_FLAGS: &[FlagSpec] = &[valued("output", Some('o')), valued("template", None)];

fn events(input: &[String], name: &str, args: &[String]) -> Result<Translation> {
    let parsed = parse(name, args, EVENTS_FLAGS, None)?;
    parsed.reject_positionals(name)?;
    let mut out = Translation::new(input, true);
    let mut words = owned_words(&["docker", "events"]);
    output_flag(&parsed, &mut out, &mut words);
    out.command(&words);
    out.note("docker events also reports image, network and volume events; add --filter type=container for container events only");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_normalize() {
        assert_eq!(crictl_state("Running").unwrap(), "running");
        assert_eq!(crictl_state("CONTAINER_EXITED").unwrap(), "exited");
        assert!(crictl_state("paused").is_err());
    }

    #[test]
    fn registry_of_references() {
        assert_eq!(registry_of("nginx"), "docker.io");
        assert_eq!(registry_of("me/app"), "docker.io");
        assert_eq!(registry_of("ghcr.io/me/app:1"), "ghcr.io");
        assert_eq!(registry_of("localhost:5000/app"), "localhost:5000");
    }
}
