//! Parsing of docker and crictl command lines against per-command flag tables, the argument
//! checks and flag carry-over that both translators share, and shell quoting of the translated
//! words.

use shared::{Error, Result};

/// One flag a docker or crictl subcommand accepts.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// Long name without dashes; also the key under which the parsed flag is stored.
    pub long: &'static str,
    /// Other long names of the same flag (`docker logs --tail` also spelled `-n`).
    pub aliases: &'static [&'static str],
    /// One-letter name, if any.
    pub short: Option<char>,
    /// Whether the flag takes a value (`--tail 100`) rather than being a switch (`-f`).
    pub takes_value: bool,
}

/// Builds a switch with an optional one-letter name.
pub const fn switch(long: &'static str, short: Option<char>) -> FlagSpec {
    FlagSpec {
        long,
        aliases: &[],
        short,
        takes_value: false,
    }
}

/// Builds a flag that takes a value, with an optional one-letter name.
pub const fn valued(long: &'static str, short: Option<char>) -> FlagSpec {
    FlagSpec {
        long,
        aliases: &[],
        short,
        takes_value: true,
    }
}

/// A flag as given on the command line, keyed by its canonical long name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFlag {
    /// Canonical long name from the [`FlagSpec`].
    pub name: &'static str,
    /// Value of a flag that takes one; `None` for a switch.
    pub value: Option<String>,
}

/// A parsed command line: the flags in the order given and the positional arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedArgs {
    /// Flags in command-line order; a flag given twice appears twice.
    pub flags: Vec<ParsedFlag>,
    /// Positional arguments, including everything after `--` or after the last flag position.
    pub positionals: Vec<String>,
}

impl ParsedArgs {
    /// Reports whether the switch or flag `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|flag| flag.name == name)
    }

    /// Returns the last value given for `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|flag| flag.name == name)
            .and_then(|flag| flag.value.as_deref())
    }

    /// Rejects every positional argument of `command`, which takes only flags.
    pub fn reject_positionals(&self, command: &str) -> Result<()> {
        self.limit_positionals(command, 0, "only flags")
    }

    /// Rejects the positional arguments of `command` after the first `max`. The error message
    /// ends with `accepted`, the arguments the command takes (`one container`).
    pub fn limit_positionals(&self, command: &str, max: usize, accepted: &str) -> Result<()> {
        match self.positionals.get(max) {
            Some(extra) => Err(Error::usage(format!(
                "unexpected argument {extra:?} for {command}: {command} takes {accepted}"
            ))),
            None => Ok(()),
        }
    }

    /// Requires at least one positional argument of `command`. The error names it by
    /// `argument`, upper-cased in the usage it shows (`container id` becomes `CONTAINER-ID`).
    pub fn require_positional(&self, command: &str, argument: &str) -> Result<()> {
        if self.positionals.is_empty() {
            return Err(Error::usage(format!(
                "missing {argument} for {command}: pass it as {command} [FLAGS] {}",
                argument.to_uppercase().replace(' ', "-")
            )));
        }
        Ok(())
    }
}

/// Parses `args` of `command` (for errors, e.g. `docker logs`) against `specs`.
///
/// Accepts `--name value`, `--name=value`, `-n value`, `-n5`, clustered switches (`-it`, with a
/// valued flag allowed last: `-fn5`) and `--` as the end of flags. With `flags_end_after`
/// set to `Some(n)`, everything after the n-th positional argument is positional too, as for
/// `docker exec C sh -c ...`, where the flags after the container belong to the command run.
pub fn parse(
    command: &str,
    args: &[String],
    specs: &[FlagSpec],
    flags_end_after: Option<usize>,
) -> Result<ParsedArgs> {
    let mut parsed = ParsedArgs::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;

        let flags_ended = flags_end_after.is_some_and(|n| parsed.positionals.len() >= n);
        if flags_ended || arg == "-" || !arg.starts_with('-') {
            parsed.positionals.push(arg.clone());
            continue;
        }
        if arg == "--" {
            parsed.positionals.extend(args[index..].iter().cloned());
            break;
        }

        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline_value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let spec = find_long(specs, name).ok_or_else(|| unknown_flag(command, arg, specs))?;
            let value = flag_value(command, spec, arg, inline_value, args, &mut index)?;
            parsed.flags.push(ParsedFlag {
                name: spec.long,
                value,
            });
            continue;
        }

        // A cluster of one-letter flags: `-it`, `-n5`, `-fn 5`.
        let letters: Vec<char> = arg[1..].chars().collect();
        let mut position = 0;
        while position < letters.len() {
            let letter = letters[position];
            position += 1;
            let spec = specs
                .iter()
                .find(|spec| spec.short == Some(letter))
                .ok_or_else(|| unknown_flag(command, &format!("-{letter}"), specs))?;
            if !spec.takes_value {
                parsed.flags.push(ParsedFlag {
                    name: spec.long,
                    value: None,
                });
                continue;
            }
            let rest: String = letters[position..].iter().collect();
            let rest = rest.strip_prefix('=').map(str::to_string).unwrap_or(rest);
            let inline_value = (!rest.is_empty()).then_some(rest);
            let value = flag_value(
                command,
                spec,
                &format!("-{letter}"),
                inline_value,
                args,
                &mut index,
            )?;
            parsed.flags.push(ParsedFlag {
                name: spec.long,
                value,
            });
            break;
        }
    }
    Ok(parsed)
}

/// Pairs of a parsed flag name and its spelling in the target CLI, for the flags of a command
/// that both CLIs have.
pub type CarriedFlags = [(&'static str, &'static str)];

/// Appends `flag` to `words` in the target's spelling that `carried` lists for it, followed by
/// its value when it has one. Returns false, and appends nothing, for a flag `carried` lacks.
pub fn carry_over(flag: &ParsedFlag, carried: &CarriedFlags, words: &mut Vec<String>) -> bool {
    let Some((_, target)) = carried.iter().find(|(name, _)| *name == flag.name) else {
        return false;
    };
    words.push(target.to_string());
    words.extend(flag.value.clone());
    true
}

/// Splits the value of a `--filter KEY=VALUE` flag of `command` at the first `=`. The error
/// for a value without `=` shows `example` as a valid filter.
pub fn split_filter<'a>(
    filter: &'a str,
    command: &str,
    example: &str,
) -> Result<(&'a str, &'a str)> {
    filter.split_once('=').ok_or_else(|| {
        Error::usage(format!(
            "invalid filter {filter:?} for {command}: use KEY=VALUE, e.g. --filter {example}"
        ))
    })
}

/// Appends `--filter FILTER` to `words`, the filter flag of docker commands and crictl images.
pub fn push_filter(words: &mut Vec<String>, filter: impl Into<String>) {
    words.extend(["--filter".to_string(), filter.into()]);
}

fn find_long<'a>(specs: &'a [FlagSpec], name: &str) -> Option<&'a FlagSpec> {
    specs
        .iter()
        .find(|spec| spec.long == name || spec.aliases.contains(&name))
}

fn flag_value(
    command: &str,
    spec: &FlagSpec,
    written: &str,
    inline_value: Option<String>,
    args: &[String],
    index: &mut usize,
) -> Result<Option<String>> {
    if !spec.takes_value {
        return match inline_value.as_deref() {
            None | Some("true") => Ok(None),
            Some(other) => Err(Error::usage(format!(
                "invalid value {other:?} for the switch {written} of {command}: the switch takes no value"
            ))),
        };
    }
    if let Some(value) = inline_value {
        return Ok(Some(value));
    }
    match args.get(*index) {
        Some(value) => {
            *index += 1;
            Ok(Some(value.clone()))
        }
        None => Err(Error::usage(format!(
            "missing value for {written} of {command}: pass it as {written} VALUE"
        ))),
    }
}

fn unknown_flag(command: &str, written: &str, specs: &[FlagSpec]) -> Error {
    let mut known: Vec<String> = specs
        .iter()
        .map(|spec| match spec.short {
            Some(short) => format!("-{short}/--{}", spec.long),
            None => format!("--{}", spec.long),
        })
        .collect();
    known.sort();
    if known.is_empty() {
        return Error::usage(format!(
            "unknown flag {written} for {command}: {command} takes no flags here"
        ));
    }
    Error::usage(format!(
        "unknown flag {written} for {command}: known flags are {}",
        known.join(", ")
    ))
}

/// Copies `words` into a new word list, to start a command line that more words are appended to.
pub fn owned_words(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}

/// Quotes one word for a POSIX shell; plain words stay as they are.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '@' | '%' | '+' | '=' | ':' | ',' | '.' | '/' | '-')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Joins quoted words into one command line.
pub fn join_quoted<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|word| shell_quote(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        switch("follow", Some('f')),
        switch("timestamps", Some('t')),
        FlagSpec {
            long: "tail",
            aliases: &["lines"],
            short: Some('n'),
            takes_value: true,
        },
        valued("since", None),
    ];

    #[test]
    fn parses_long_short_and_inline_values() {
        let parsed = parse(
            "docker logs",
            &owned_words(&["--tail=5", "-f", "--since", "1h", "web"]),
            SPECS,
            None,
        )
        .unwrap();
        assert_eq!(parsed.value("tail"), Some("5"));
        assert!(parsed.has("follow"));
        assert_eq!(parsed.value("since"), Some("1h"));
        assert_eq!(parsed.positionals, owned_words(&["web"]));
    }

    #[test]
    fn splits_clusters_with_value_last() {
        let parsed = parse("docker logs", &owned_words(&["-ftn5", "web"]), SPECS, None).unwrap();
        assert!(parsed.has("follow"));
        assert!(parsed.has("timestamps"));
        assert_eq!(parsed.value("tail"), Some("5"));
        let parsed = parse(
            "docker logs",
            &owned_words(&["-fn", "7", "web"]),
            SPECS,
            None,
        )
        .unwrap();
        assert_eq!(parsed.value("tail"), Some("7"));
    }

    #[test]
    fn alias_maps_to_canonical_name() {
        let parsed = parse("docker logs", &owned_words(&["--lines", "3"]), SPECS, None).unwrap();
        assert_eq!(parsed.value("tail"), Some("3"));
    }

    #[test]
    fn flags_end_after_positionals() {
        let parsed = parse(
            "docker exec",
            &owned_words(&["-t", "web", "ls", "-f"]),
            SPECS,
            Some(1),
        )
        .unwrap();
        assert_eq!(parsed.positionals, owned_words(&["web", "ls", "-f"]));
    }

    #[test]
    fn double_dash_ends_flags() {
        let parsed = parse("docker logs", &owned_words(&["--", "-f"]), SPECS, None).unwrap();
        assert_eq!(parsed.positionals, owned_words(&["-f"]));
        assert!(!parsed.has("follow"));
    }

    #[test]
    fn unknown_flag_named_in_error() {
        let error = parse("docker logs", &owned_words(&["--bogus"]), SPECS, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown flag --bogus for docker logs: known flags are --since, -f/--follow, -n/--tail, -t/--timestamps"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn missing_value_rejected() {
        let error = parse("docker logs", &owned_words(&["--tail"]), SPECS, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "missing value for --tail of docker logs: pass it as --tail VALUE"
        );
    }

    #[test]
    fn switch_with_value_rejected() {
        let error = parse("docker logs", &owned_words(&["--follow=no"]), SPECS, None).unwrap_err();
        assert!(error.to_string().starts_with("invalid value \"no\""));
    }

    #[test]
    fn positionals_rejected_for_flag_only_command() {
        let parsed = parse(
            "docker ps",
            &owned_words(&["-a", "web"]),
            &[switch("all", Some('a'))],
            None,
        )
        .unwrap();
        let error = parsed.reject_positionals("docker ps").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unexpected argument \"web\" for docker ps: docker ps takes only flags"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn positionals_limited_after_max() {
        let parsed = parse("docker logs", &owned_words(&["web", "db"]), SPECS, None).unwrap();
        assert!(parsed.limit_positionals("docker logs", 2, "two").is_ok());
        let error = parsed
            .limit_positionals("docker logs", 1, "one container")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unexpected argument \"db\" for docker logs: docker logs takes one container"
        );
    }

    #[test]
    fn positional_required_names_argument() {
        let parsed = parse("crictl logs", &owned_words(&["-f"]), SPECS, None).unwrap();
        let error = parsed
            .require_positional("crictl logs", "container id")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "missing container id for crictl logs: pass it as crictl logs [FLAGS] CONTAINER-ID"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn carry_over_renames_flag_and_keeps_value() {
        const CARRIED: &CarriedFlags = &[("follow", "-f"), ("tail", "--lines")];
        let parsed = parse(
            "docker logs",
            &owned_words(&["-f", "--tail=5", "-t", "-f"]),
            SPECS,
            None,
        )
        .unwrap();
        let mut translated = Vec::new();
        let carried: Vec<bool> = parsed
            .flags
            .iter()
            .map(|flag| carry_over(flag, CARRIED, &mut translated))
            .collect();
        assert_eq!(carried, [true, true, false, true]);
        assert_eq!(translated, owned_words(&["-f", "--lines", "5", "-f"]));
    }

    #[test]
    fn filter_splits_at_first_equals() {
        assert_eq!(
            split_filter("label=a=b", "docker ps", "name=web").unwrap(),
            ("label", "a=b")
        );
        let error = split_filter("dangling", "docker images", "dangling=true").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid filter \"dangling\" for docker images: use KEY=VALUE, e.g. --filter dangling=true"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn quoting_keeps_plain_words() {
        assert_eq!(shell_quote("nginx:1.25"), "nginx:1.25");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            join_quoted(&["sh", "-c", "echo $HOME"]),
            "sh -c 'echo $HOME'"
        );
    }
}
