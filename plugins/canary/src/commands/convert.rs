//! `convert`: legacy Ingress manifests rewritten as networking.k8s.io/v1.

use std::io::Read;

use shared::{Error, Result, ResultExt};

use crate::cli::{ConvertArgs, ConvertFormat};
use crate::convert;

/// Runs `convert`; reads `-` as standard input.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let path = &args.filename;
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context(|| "failed to read standard input".to_string())?;
        text
    } else {
        std::fs::read_to_string(path).context(|| format!("failed to read {}", path.display()))?
    };

    let converted = convert::convert_manifests(&text)
        .map_err(|error| Error::failed(format!("{}: {error}", path.display())))?;
    for warning in &converted.warnings {
        eprintln!("warning: {warning}");
    }
    if converted.converted == 0 {
        eprintln!(
            "{}: no extensions/v1beta1 or networking.k8s.io/v1beta1 Ingress found; documents printed unchanged",
            path.display()
        );
    }

    match args.output {
        ConvertFormat::Yaml => {
            let text = convert::to_yaml_stream(&converted.documents).map_err(Error::failed)?;
            shared::output::print(&text)
        }
        ConvertFormat::Json => {
            let values: Vec<serde_json::Value> = converted
                .documents
                .iter()
                .map(serde_json::to_value)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::failed(format!("failed to encode JSON: {e}")))?;
            let value = match <[serde_json::Value; 1]>::try_from(values) {
                Ok([one]) => one,
                Err(many) => shared::output::kube_list(many),
            };
            shared::output::print_structured(&value, shared::OutputFormat::Json)
        }
    }
}
