//! Private files written atomically and durably (keys, certificates, configs).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) with mode 0700, and makes its entry durable.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // A directory just created exists after a power failure only once its
    // parent's entry for it is on disk.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Writes `data` to `path` atomically and durably with mode 0600. On error the
/// message names the file.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let named = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{p}: {e}"))
    };
    let tmp = path.with_extension("tmp-write");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(named(&tmp))?;
    // `mode` applies only to a file it creates: a temporary an interrupted write
    // left behind keeps its own mode unless it is set here.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(named(&tmp))?;
    f.write_all(data).map_err(named(&tmp))?;
    f.sync_all().map_err(named(&tmp))?;
    std::fs::rename(&tmp, path).map_err(named(path))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(named(parent))?;
    }
    Ok(())
}
