//! Shell completion: scripts for bash, zsh and fish, and the Cobra `__complete` protocol that
//! kubectl 1.26+ speaks with a plugin's `kubectl_complete-<name>` executable.

use clap::{Arg, ArgAction, Command, ValueHint};
use clap_complete::Shell;

/// Cobra directive: complete nothing but the listed words (no file names).
pub const DIRECTIVE_NO_FILE: u32 = 4;
/// Cobra directive: fall back to the shell's file completion.
pub const DIRECTIVE_DEFAULT: u32 = 0;

/// Arguments of a plugin's `completion` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct CompletionArgs {
    /// Shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script of `command` for `shell`, for use as `kubectl-<name>`.
pub fn write_script(mut command: Command, shell: Shell, out: &mut dyn std::io::Write) {
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name, out);
}

/// Returns completions in Cobra's `__complete` format for `words`, the arguments after the
/// plugin name with the word being completed last: one candidate per line (`word\tdescription`),
/// then `:<directive>`.
pub fn cobra_complete(root: &Command, words: &[String]) -> String {
    let (current, before) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };

    // Walk the finished words to find the subcommand being typed and any flag awaiting a value.
    let mut command = root.clone();
    command.build();
    let mut pending_flag: Option<Arg> = None;
    let mut positional_index = 0;
    for word in before {
        if let Some(flag) = pending_flag.take() {
            let _ = flag;
            continue;
        }
        if word == "--" {
            continue;
        }
        if let Some(flag) = word.strip_prefix('-') {
            if !flag.contains('=')
                && let Some(arg) = find_flag(&command, flag)
                && takes_value(&arg)
                && !(word.starts_with('-') && !word.starts_with("--") && flag.len() > 1)
            {
                pending_flag = Some(arg);
            }
            continue;
        }
        match command.find_subcommand(word) {
            Some(sub) => {
                command = sub.clone();
                positional_index = 0;
            }
            None => positional_index += 1,
        }
    }

    let mut lines = Vec::new();
    let mut directive = DIRECTIVE_NO_FILE;

    if let Some(arg) = pending_flag {
        directive = complete_values(&arg, current, &mut lines);
    } else if let Some((flag, value)) = current
        .strip_prefix("--")
        .and_then(|rest| rest.split_once('='))
    {
        if let Some(arg) = find_flag(&command, &format!("-{flag}")) {
            let mut values = Vec::new();
            directive = complete_values(&arg, value, &mut values);
            lines.extend(values.into_iter().map(|v| format!("--{flag}={v}")));
        }
    } else if current.starts_with('-') {
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                let candidate = format!("--{long}");
                if candidate.starts_with(current) {
                    lines.push(with_description(
                        &candidate,
                        arg.get_help().map(|h| h.to_string()),
                    ));
                }
            }
            if let Some(short) = arg.get_short() {
                let candidate = format!("-{short}");
                if current.len() <= 2 && candidate.starts_with(current) && arg.get_long().is_none()
                {
                    lines.push(with_description(
                        &candidate,
                        arg.get_help().map(|h| h.to_string()),
                    ));
                }
            }
        }
    } else if command.has_subcommands() {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name().starts_with(current) && sub.get_name() != "help" {
                lines.push(with_description(
                    sub.get_name(),
                    sub.get_about().map(|a| a.to_string()),
                ));
            }
        }
    } else if let Some(arg) = command.get_positionals().nth(positional_index) {
        directive = complete_values(arg, current, &mut lines);
    }

    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&format!(":{directive}\n"));
    text
}

fn complete_values(arg: &Arg, current: &str, lines: &mut Vec<String>) -> u32 {
    let values = arg.get_possible_values();
    if !values.is_empty() {
        for value in values.iter().filter(|v| !v.is_hide_set()) {
            if value.get_name().starts_with(current) {
                lines.push(with_description(
                    value.get_name(),
                    value.get_help().map(|h| h.to_string()),
                ));
            }
        }
        return DIRECTIVE_NO_FILE;
    }
    match arg.get_value_hint() {
        ValueHint::FilePath | ValueHint::AnyPath | ValueHint::DirPath | ValueHint::Unknown => {
            DIRECTIVE_DEFAULT
        }
        _ => DIRECTIVE_NO_FILE,
    }
}

fn with_description(word: &str, description: Option<String>) -> String {
    match description {
        Some(text) if !text.is_empty() => {
            let first_line = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches('.');
            format!("{word}\t{first_line}")
        }
        _ => word.to_string(),
    }
}

fn find_flag(command: &Command, flag: &str) -> Option<Arg> {
    let flag = flag.split('=').next().unwrap_or(flag);
    command
        .get_arguments()
        .find(|arg| match flag.strip_prefix('-') {
            Some(long) => {
                arg.get_long() == Some(long)
                    || arg.get_all_aliases().is_some_and(|a| a.contains(&long))
            }
            None => flag
                .chars()
                .next()
                .is_some_and(|c| arg.get_short() == Some(c)),
        })
        .cloned()
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

/// Handles the hidden `__complete` entry: when the first argument is `__complete`, prints
/// Cobra-format completions for the rest and returns true.
pub fn handle_complete_request(root: &Command, args: &[String]) -> bool {
    if args.first().map(String::as_str) != Some("__complete") {
        return false;
    }
    print!("{}", cobra_complete(root, &args[1..]));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Command {
        Command::new("kubectl-demo")
            .arg(
                Arg::new("namespace")
                    .short('n')
                    .long("namespace")
                    .global(true),
            )
            .subcommand(
                Command::new("backup")
                    .about("Manage backups.")
                    .subcommand(Command::new("create").about("Create a backup."))
                    .subcommand(Command::new("get").about("List backups.")),
            )
            .subcommand(
                Command::new("status").arg(
                    Arg::new("output")
                        .short('o')
                        .long("output")
                        .value_parser(["table", "json", "yaml"]),
                ),
            )
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn completes_top_level_subcommands() {
        assert_eq!(
            cobra_complete(&sample(), &words(&["b"])),
            "backup\tManage backups\n:4\n"
        );
    }

    #[test]
    fn completes_nested_subcommands() {
        let text = cobra_complete(&sample(), &words(&["backup", ""]));
        assert_eq!(text, "create\tCreate a backup\nget\tList backups\n:4\n");
    }

    #[test]
    fn completes_flag_values() {
        let text = cobra_complete(&sample(), &words(&["status", "-o", "y"]));
        assert_eq!(text, "yaml\n:4\n");
        let text = cobra_complete(&sample(), &words(&["status", "--output=j"]));
        assert_eq!(text, "--output=json\n:4\n");
    }

    #[test]
    fn completes_flag_names() {
        let text = cobra_complete(&sample(), &words(&["status", "--o"]));
        assert_eq!(text, "--output\n:4\n");
    }

    #[test]
    fn skips_flag_values_while_walking() {
        let text = cobra_complete(&sample(), &words(&["-n", "backup", "backup", "c"]));
        assert_eq!(text, "create\tCreate a backup\n:4\n");
    }

    #[test]
    fn ignores_other_entries() {
        assert!(!handle_complete_request(&sample(), &words(&["backup"])));
    }
}
