//! The result of translating one command line, and how it prints.

use serde::Serialize;

use crate::argv::join_quoted;

/// One translated command line: the commands to run and what the translation changes or loses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// The command line that was translated, shell-quoted.
    pub input: String,
    /// Whether the target CLI (crictl for docker input, docker for crictl input) has an
    /// equivalent. It is false when the commands use another tool, such as nerdctl or kubectl.
    pub equivalent: bool,
    /// Shell command lines to run, in order.
    pub commands: Vec<String>,
    /// Flags that differ or are lost, and other facts the user needs before running the commands.
    pub notes: Vec<String>,
}

impl Translation {
    /// Starts a translation of `input` (the words as given, tool name first).
    pub fn new(input: &[String], equivalent: bool) -> Self {
        Translation {
            input: join_quoted(input),
            equivalent,
            commands: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Appends a command built from words that are quoted for the shell.
    pub fn command<S: AsRef<str>>(&mut self, words: &[S]) -> &mut Self {
        self.commands.push(join_quoted(words));
        self
    }

    /// Appends a command line written as is, for lines with `$(...)` substitutions.
    pub fn raw_command(&mut self, line: impl Into<String>) -> &mut Self {
        self.commands.push(line.into());
        self
    }

    /// Appends a note.
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }

    /// Renders the commands one per line, then each note as a `# ` shell comment, so that the
    /// output can be pasted into a shell.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for command in &self.commands {
            text.push_str(command);
            text.push('\n');
        }
        for note in &self.notes {
            text.push_str("# ");
            text.push_str(note);
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_puts_notes_after_commands() {
        let input = vec!["docker".to_string(), "kill".to_string(), "web".to_string()];
        let mut translation = Translation::new(&input, true);
        translation
            .command(&["crictl", "stop", "--timeout", "0", "web"])
            .note("signals are lost");
        assert_eq!(
            translation.render(),
            "crictl stop --timeout 0 web\n# signals are lost\n"
        );
        assert_eq!(translation.input, "docker kill web");
    }
}
