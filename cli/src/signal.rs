//! Ctrl-C (SIGINT) and SIGTERM: raise a flag the main loop polls, so a station shuts down
//! cleanly (sockets closed, threads joined, spool consistent) instead of dying mid-write.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Relaxed: the flag carries no data; the main loop only needs to see it eventually.
    STOP.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> Result<(), String> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `action` is zero-initialised (a valid `sigaction`) and then filled in; the
        // handler only stores to an atomic, which is async-signal-safe; a null old-action
        // pointer is allowed by sigaction(2).
        let result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if result != 0 {
            return Err(format!(
                "cannot install the signal handler: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}
