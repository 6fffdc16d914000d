//! Output formats (`-o table|wide|json|yaml|name`), kubectl-style tables and ages, and colour.

use std::io::{IsTerminal, Write};

use comfy_table::{CellAlignment, ContentArrangement, presets};
use serde::Serialize;

use crate::error::{Error, Result, ResultExt};

/// Value of `-o/--output`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns with uppercase headers.
    #[default]
    Table,
    /// The table with extra columns.
    Wide,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// `kind/name` of each object.
    Name,
}

/// Value of `--color`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Decides whether to colour, given whether stdout is a terminal and the NO_COLOR value.
    pub fn enabled(self, stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stdout_is_terminal && no_color.is_none_or(|value| value.is_empty())
            }
        }
    }
}

/// Output flags, flattened into commands that print objects or tables.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Output format: table, wide, json, yaml or name.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// When to colour the output: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

impl OutputArgs {
    /// Returns the painter for stdout as these flags and the environment choose.
    pub fn painter(&self) -> Painter {
        let no_color = std::env::var_os("NO_COLOR");
        Painter {
            enabled: self
                .color
                .enabled(std::io::stdout().is_terminal(), no_color.as_deref()),
        }
    }
}

/// Colours text to mean ok, warning or bad, or leaves it plain when colour is off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Painter {
    /// Whether ANSI colour codes are written.
    pub enabled: bool,
}

impl Painter {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Green: the state is as it should be.
    pub fn ok(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Yellow: needs attention.
    pub fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Red: failed or wrong.
    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }
}

/// The placeholder kubectl prints for an empty value.
pub const NONE: &str = "<none>";

/// A table printed the way kubectl prints one: uppercase headers, left-aligned columns three
/// spaces apart, no borders. Columns marked wide appear only with `-o wide`.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    wide_columns: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Starts a table with these column headers (uppercased when printed).
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.as_ref().to_uppercase()).collect(),
            wide_columns: vec![false; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Adds columns that only `-o wide` shows.
    pub fn with_wide_columns<S: AsRef<str>>(mut self, headers: &[S]) -> Self {
        for header in headers {
            self.headers.push(header.as_ref().to_uppercase());
            self.wide_columns.push(true);
        }
        self
    }

    /// Appends a row; an empty cell prints as `<none>`.
    pub fn add_row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        for cell in &mut row {
            if cell.is_empty() {
                *cell = NONE.to_string();
            }
        }
        row.resize(self.headers.len(), NONE.to_string());
        self.rows.push(row);
    }

    /// Reports whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Renders the table; `wide` includes the wide columns. Lines end with a newline.
    pub fn render(&self, wide: bool) -> String {
        let keep: Vec<usize> = (0..self.headers.len())
            .filter(|&i| wide || !self.wide_columns[i])
            .collect();
        let mut table = comfy_table::Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(keep.iter().map(|&i| self.headers[i].clone()));
        for row in &self.rows {
            table.add_row(keep.iter().map(|&i| row[i].clone()));
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 3));
            column.set_cell_alignment(CellAlignment::Left);
        }

        let mut text = String::new();
        for line in table.lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// Formats an age the way kubectl does (`45s`, `5m10s`, `3h`, `5d`, `2y30d`).
pub fn human_age(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }

    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            rest => format!("{minutes}m{rest}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }

    let hours = minutes / 60;
    let days = hours / 24;
    let years = days / 365;
    match hours {
        h if h < 8 => match minutes % 60 {
            0 => format!("{h}h"),
            rest => format!("{h}h{rest}m"),
        },
        h if h < 48 => format!("{h}h"),
        h if h < 24 * 8 => match h % 24 {
            0 => format!("{days}d"),
            rest => format!("{days}d{rest}h"),
        },
        h if h < 24 * 365 * 2 => format!("{days}d"),
        h if h < 24 * 365 * 8 => match days % 365 {
            0 => format!("{years}y"),
            rest => format!("{years}y{rest}d"),
        },
        _ => format!("{years}y"),
    }
}

/// Formats the age of a Kubernetes timestamp relative to now.
pub fn age_since(
    timestamp: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> String {
    match timestamp {
        Some(time) => {
            let now = k8s_openapi::jiff::Timestamp::now();
            human_age(now.duration_since(time.0).as_secs())
        }
        None => NONE.to_string(),
    }
}

/// Writes text to stdout. A closed pipe surfaces as an error that ends the command quietly.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context(|| "failed to write to stdout".to_string())?;
    stdout
        .flush()
        .context(|| "failed to write to stdout".to_string())
}

/// Writes a value as JSON (indented, as kubectl does) or YAML to stdout.
pub fn print_structured<T: Serialize>(value: &T, format: OutputFormat) -> Result<()> {
    let text = match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(value)
                .map_err(|e| Error::failed(format!("failed to encode JSON: {e}")))?;
            text.push('\n');
            text
        }
        OutputFormat::Yaml => serde_yaml::to_string(value)
            .map_err(|e| Error::failed(format!("failed to encode YAML: {e}")))?,
        other => {
            return Err(Error::failed(format!(
                "internal error: {other:?} is not a structured format"
            )));
        }
    };
    print(&text)
}

/// Removes `metadata.managedFields` from an object, as kubectl's YAML and JSON output does.
pub fn strip_managed_fields(object: &mut serde_json::Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
    }
}

/// Wraps several objects in the `List` kubectl prints for more than one object.
pub fn kube_list(items: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": { "resourceVersion": "" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_uppercases_and_aligns() {
        let mut table = Table::new(&["name", "ready", "age"]);
        table.add_row(["web", "1/1", "5d"]);
        table.add_row(["database-primary", "", "3h"]);
        assert_eq!(
            table.render(false),
            "NAME               READY    AGE\nweb                1/1      5d\ndatabase-primary   <none>   3h\n"
        );
    }

    #[test]
    fn wide_columns_only_in_wide() {
        let mut table = Table::new(&["name"]).with_wide_columns(&["node"]);
        table.add_row(["web", "node-1"]);
        assert_eq!(table.render(false), "NAME\nweb\n");
        assert_eq!(table.render(true), "NAME   NODE\nweb    node-1\n");
    }

    #[test]
    fn ages_match_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (130, "2m10s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (47 * 3600, "47h"),
            (5 * 86400, "5d"),
            (5 * 86400 + 3 * 3600, "5d3h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 10 * 86400, "3y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_age(seconds), expected, "age of {seconds}s");
        }
    }

    #[test]
    fn color_auto_follows_terminal_and_no_color() {
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(!ColorChoice::Auto.enabled(true, Some(std::ffi::OsStr::new("1"))));
        assert!(ColorChoice::Auto.enabled(true, Some(std::ffi::OsStr::new(""))));
        assert!(ColorChoice::Always.enabled(false, Some(std::ffi::OsStr::new("1"))));
        assert!(!ColorChoice::Never.enabled(true, None));
    }

    #[test]
    fn painter_plain_when_disabled() {
        assert_eq!(Painter { enabled: false }.bad("x"), "x");
        assert_eq!(Painter { enabled: true }.ok("x"), "\x1b[32mx\x1b[0m");
    }

    #[test]
    fn managed_fields_stripped() {
        let mut object = serde_json::json!({"metadata": {"name": "a", "managedFields": []}});
        strip_managed_fields(&mut object);
        assert_eq!(object, serde_json::json!({"metadata": {"name": "a"}}));
    }
}
