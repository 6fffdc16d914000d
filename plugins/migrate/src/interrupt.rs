//! Ctrl-C during the commands that must clean up or record an incomplete state first.
//!
//! Once a process listens for SIGINT through tokio, the signal no longer ends it, so a Ctrl-C
//! that arrives while nothing awaits it would be lost. One task listens for the whole process
//! instead. While a [`Guard`] is alive, Ctrl-C sets a flag that [`requested`] and
//! [`is_requested`] report at any later point. With no guard alive, Ctrl-C ends the process
//! with the interrupted exit code, as the default signal action would.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use crate::commands::EXIT_INTERRUPTED;

static FLAG: OnceLock<watch::Sender<bool>> = OnceLock::new();
static GUARDS: AtomicUsize = AtomicUsize::new(0);

/// A section of code that handles Ctrl-C itself, through [`requested`], while the guard lives.
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        GUARDS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts the listener if needed and takes a guard. Call inside the tokio runtime.
pub fn guard() -> Guard {
    flag();
    GUARDS.fetch_add(1, Ordering::SeqCst);
    Guard(())
}

fn flag() -> &'static watch::Sender<bool> {
    FLAG.get_or_init(|| {
        let (sender, _) = watch::channel(false);
        tokio::spawn(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                if let Some(flag) = FLAG.get() {
                    flag.send_replace(true);
                }
                if GUARDS.load(Ordering::SeqCst) == 0 {
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
            }
        });
        sender
    })
}

/// Reports whether Ctrl-C was pressed since the listener started.
pub fn is_requested() -> bool {
    FLAG.get().is_some_and(|flag| *flag.borrow())
}

/// Completes once Ctrl-C was pressed, at once if it already was.
pub async fn requested() {
    let mut receiver = flag().subscribe();
    // The sender lives in a static, so the channel never closes.
    let _ = receiver.wait_for(|pressed| *pressed).await;
}
