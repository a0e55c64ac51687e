//! Standard output for the CLI: a closed pipe (`ferry ... | head`) ends the
//! command quietly instead of panicking, as Unix tools do.

use std::io::Write;

/// Writes one line to stdout; exits 0 if stdout is a closed pipe.
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|_| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => { crate::output::line(format_args!($($arg)*)) };
}
