//! `kubectl migrate location add|get|set-default|delete`.

use shared::{Error, OutputFormat, Result, Table};

use crate::cli::{LocationAddArgs, LocationCommand, LocationGetArgs, LocationNameArgs};
use crate::locations::{BUILT_IN_DEFAULT, Location, LocationsConfig, Paths, store_config};
use crate::store::StoreUrl;

/// Runs one `location` subcommand.
pub async fn run(command: LocationCommand) -> Result<()> {
    let paths = Paths::from_process()?;
    let mut config = LocationsConfig::load(&paths.config_file)?;
    match command {
        LocationCommand::Add(args) => add(&paths, &mut config, args),
        LocationCommand::Get(args) => get(&paths, &config, &args),
        LocationCommand::SetDefault(LocationNameArgs { name }) => {
            if config.find(&name).is_none() && name != BUILT_IN_DEFAULT {
                return Err(unknown(&name));
            }
            config.default = (name != BUILT_IN_DEFAULT).then_some(name.clone());
            config.save(&paths.config_file)?;
            shared::output::print(&format!("default location is now {name}\n"))
        }
        LocationCommand::Delete(LocationNameArgs { name }) => {
            let before = config.locations.len();
            config.locations.retain(|l| l.name != name);
            if config.locations.len() == before {
                return Err(unknown(&name));
            }
            if config.default.as_deref() == Some(name.as_str()) {
                config.default = None;
            }
            config.save(&paths.config_file)?;
            shared::output::print(&format!("location {name} deleted (its files are kept)\n"))
        }
    }
}

fn unknown(name: &str) -> Error {
    Error::usage(format!(
        "unknown location {name:?}: list locations with `kubectl migrate location get`"
    ))
}

fn add(paths: &Paths, config: &mut LocationsConfig, args: LocationAddArgs) -> Result<()> {
    crate::format::validate_name("location", &args.name).map_err(Error::usage)?;
    if args.name == BUILT_IN_DEFAULT {
        return Err(Error::usage(format!(
            "location name {BUILT_IN_DEFAULT:?} is reserved for the built-in folder: choose another name"
        )));
    }
    StoreUrl::parse(&args.url).map_err(Error::from)?;
    let location = Location {
        name: args.name.clone(),
        url: args.url,
        endpoint: args.s3.endpoint,
        region: args.s3.region,
        addressing: args.s3.addressing,
        credentials_file: args.s3.credentials_file,
        profile: args.s3.profile,
        read_only: args.read_only,
    };
    // Builds the store settings once so that a bad endpoint is rejected now, not at backup.
    store_config(&location, &Default::default())?;

    config.locations.retain(|l| l.name != location.name);
    config.locations.push(location);
    config.locations.sort_by(|a, b| a.name.cmp(&b.name));
    if args.default {
        config.default = Some(args.name.clone());
    }
    config.save(&paths.config_file)?;
    shared::output::print(&format!("location {} added\n", args.name))
}

fn get(paths: &Paths, config: &LocationsConfig, args: &LocationGetArgs) -> Result<()> {
    let mut all = vec![LocationsConfig::built_in(paths)];
    all.extend(config.locations.iter().cloned());
    let default_name = config
        .default
        .clone()
        .unwrap_or_else(|| BUILT_IN_DEFAULT.to_string());

    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&all, args.output.output)
        }
        OutputFormat::Name => {
            let names: String = all.iter().map(|l| format!("{}\n", l.name)).collect();
            shared::output::print(&names)
        }
        OutputFormat::Table | OutputFormat::Wide => {
            let mut table = Table::new(&["name", "url", "access", "default"]).with_wide_columns(&[
                "endpoint",
                "region",
                "credentials",
            ]);
            for location in &all {
                table.add_row([
                    location.name.clone(),
                    location.url.clone(),
                    if location.read_only {
                        "ReadOnly"
                    } else {
                        "ReadWrite"
                    }
                    .to_string(),
                    (location.name == default_name).to_string(),
                    location.endpoint.clone().unwrap_or_default(),
                    location.region.clone().unwrap_or_default(),
                    location
                        .credentials_file
                        .as_ref()
                        .map(|p| {
                            format!(
                                "{} [{}]",
                                p.display(),
                                location.profile.as_deref().unwrap_or("default")
                            )
                        })
                        .unwrap_or_default(),
                ]);
            }
            shared::output::print(&table.render(args.output.output == OutputFormat::Wide))
        }
    }
}
