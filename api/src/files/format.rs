//! Format versions of data dirs: a `FORMAT` file holding the layout version of
//! what a directory keeps, so a binary never opens a dir a newer one wrote.
//!
//! A file outside the data it describes can be read before anything opens that
//! data (sled's recovery rewrites files; a later layout may not be sled at all).
//! A dir without the file predates format records and is version 1
//! ([`UNRECORDED`]): those are what users have, so they open unchanged. The file
//! is written once, when the dir's contents are first made, before them;
//! a binary only ever rewrites it when migrating to a version it knows.

use std::path::{Path, PathBuf};

/// The file name, inside the data dir it describes.
pub const FILE: &str = "FORMAT";

/// The version of a dir written before format records existed.
pub const UNRECORDED: u32 = 1;

/// What opening a dir does, decided from its record ([`decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Nothing there yet: record this binary's version, then create the contents.
    Create(u32),
    /// Open contents of this version (this binary's, or an older one it can
    /// read or migrate).
    Open(u32),
}

impl Opening {
    /// The version the dir holds once opened.
    pub fn version(self) -> u32 {
        match self {
            Opening::Create(v) | Opening::Open(v) => v,
        }
    }
}

/// A data dir this binary must not open.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A newer ferry wrote the dir.
    #[error(
        "{}: {what} format version {found}, written by a newer ferry; this binary reads \
         versions up to {supported}. Run a ferry that knows version {found} on this dir \
         (nothing in it was changed)",
        dir.display()
    )]
    Newer {
        /// The data dir.
        dir: PathBuf,
        /// What the dir holds (`master data dir`, `node data dir`).
        what: &'static str,
        /// The version its record names.
        found: u32,
        /// The newest version this binary knows.
        supported: u32,
    },
    /// The record is not a version number.
    #[error(
        "{}: not a format version ({text:?}); expected a number such as `1`. \
         Nothing in the dir was changed",
        path.display()
    )]
    Garbled {
        /// The `FORMAT` file.
        path: PathBuf,
        /// What it holds (at most 64 bytes of it).
        text: String,
    },
    /// The record could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The `FORMAT` file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Decides how to open a dir whose record says `found` (none: no record), whose
/// contents exist when `populated`, by a binary that knows versions up to
/// `supported`. `None`: the dir is newer than this binary.
pub fn decide(found: Option<u32>, populated: bool, supported: u32) -> Option<Opening> {
    match found {
        Some(v) if v > supported => None,
        Some(v) => Some(Opening::Open(v)),
        None if populated => Some(Opening::Open(UNRECORDED)),
        None => Some(Opening::Create(supported)),
    }
}

/// Reads the record of `dir`; `None` when it has none.
pub fn read(dir: &Path) -> Result<Option<u32>, FormatError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(FormatError::Io { path, source }),
    };
    match text.trim().parse::<u32>() {
        Ok(v) if v >= UNRECORDED => Ok(Some(v)),
        _ => Err(FormatError::Garbled {
            path,
            text: text.chars().take(64).collect(),
        }),
    }
}

/// Checks `dir` (holding `what`) without writing anything: how it would open.
pub fn check(
    dir: &Path,
    what: &'static str,
    populated: bool,
    supported: u32,
) -> Result<Opening, FormatError> {
    let found = read(dir)?;
    decide(found, populated, supported).ok_or_else(|| FormatError::Newer {
        dir: dir.to_path_buf(),
        what,
        found: found.unwrap_or_default(),
        supported,
    })
}

/// Records `version` in `dir`, atomically and durably (mode 0600).
pub fn record(dir: &Path, version: u32) -> Result<(), FormatError> {
    let path = dir.join(FILE);
    super::write_private(&path, format!("{version}\n").as_bytes())
        .map_err(|source| FormatError::Io { path, source })
}

/// [`check`], then the record written when the dir is new. Returns the version
/// the dir holds; the caller migrates an older one it knows.
pub fn prepare(
    dir: &Path,
    what: &'static str,
    populated: bool,
    supported: u32,
) -> Result<u32, FormatError> {
    let opening = check(dir, what, populated, supported)?;
    if let Opening::Create(v) = opening {
        super::create_private_dir(dir).map_err(|source| FormatError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        record(dir, v)?;
    }
    Ok(opening.version())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_record_the_contents_and_the_binary() {
        use Opening::*;
        let cases = [
            // (record, populated, supported) -> opening
            (None, false, 1, Some(Create(1))),
            (None, true, 1, Some(Open(1))),
            (None, true, 3, Some(Open(1))),
            (None, false, 3, Some(Create(3))),
            (Some(1), true, 1, Some(Open(1))),
            (Some(1), false, 1, Some(Open(1))),
            (Some(1), true, 2, Some(Open(1))),
            (Some(2), true, 2, Some(Open(2))),
            (Some(2), true, 1, None),
            (Some(9), false, 1, None),
        ];
        for (found, populated, supported, want) in cases {
            assert_eq!(
                decide(found, populated, supported),
                want,
                "record {found:?}, populated {populated}, binary knows {supported}"
            );
        }
    }

    #[test]
    fn a_dir_without_a_record_opens_as_version_one_and_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data"), b"old").unwrap();
        assert_eq!(prepare(dir.path(), "test dir", true, 1).unwrap(), 1);
        assert!(
            !dir.path().join(FILE).exists(),
            "an old dir stays as it was"
        );
    }

    #[test]
    fn a_new_dir_gets_the_binarys_version_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("data");
        assert_eq!(prepare(&new, "test dir", false, 2).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(new.join(FILE)).unwrap(), "2\n");
        assert_eq!(read(&new).unwrap(), Some(2));
        assert_eq!(prepare(&new, "test dir", true, 2).unwrap(), 2);
    }

    #[test]
    fn a_newer_dir_is_refused_untouched_with_a_message_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "7\n").unwrap();
        std::fs::write(dir.path().join("data"), b"future").unwrap();
        let before = listing(dir.path());
        let err = prepare(dir.path(), "test dir", true, 1).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(
            err,
            FormatError::Newer {
                found: 7,
                supported: 1,
                ..
            }
        ));
        for part in [
            &dir.path().display().to_string(),
            "test dir format version 7",
            "up to 1",
            "nothing in it was changed",
        ] {
            assert!(msg.contains(part), "{msg:?} names {part:?}");
        }
        assert_eq!(listing(dir.path()), before, "nothing written");
    }

    #[test]
    fn a_garbled_record_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "two", "0", "-1", "1.5"] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let err = check(dir.path(), "test dir", true, 1).unwrap_err();
            assert!(
                matches!(err, FormatError::Garbled { .. }),
                "{text:?}: {err}"
            );
            assert!(err.to_string().contains(FILE), "{err}");
        }
    }

    /// Every file of `dir` with its bytes.
    fn listing(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    }
}
