//! The subcommands: flags in, store and cluster set up, output printed.

pub mod backup;
pub mod location;
pub mod restore;

use shared::{Error, Result};

use crate::cli::LocationArgs;
use crate::locations::{LocationsConfig, Paths};
use crate::store::Store;

/// Opens the location that `--location` selects and, with `check`, proves it works.
pub async fn open_store(args: &LocationArgs, check: bool) -> Result<Store> {
    let paths = Paths::from_process()?;
    let config = LocationsConfig::load(&paths.config_file)?;
    let store_config = config.resolve(&paths, args)?;
    let store = Store::open(&store_config).map_err(Error::from)?;
    if check {
        store.check().await.map_err(Error::from)?;
    }
    Ok(store)
}

/// Exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;
