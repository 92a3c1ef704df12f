//! Private state on disk (RELIABILITY #24): the state directory is 0700 and owned by the user,
//! every file in it is 0600, and temporary files have unique names and are created with
//! `create_new`, so nothing planted at a predictable path (a symlink to another file) is
//! followed or overwritten.
//!
//! Every writer of the state directory goes through these helpers: `ensure_dir` before use,
//! `write_atomic` for files replaced whole (a unique temporary file in the same directory,
//! synced, then renamed over the target), `open_append` for journals and `open_lock` for lock
//! files (both refuse to follow a symlink), `create_new` for files that must not exist yet.

use std::fs::{File, OpenOptions};
use std::io::{Error, ErrorKind, Result, Write as _};
use std::path::Path;

/// Creates `dir` (and its parents) if needed, the last component with mode 0700, and refuses
/// a directory that someone else owns or that the group or others may enter.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    #[cfg(unix)]
    let builder = {
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
    };
    #[cfg(not(unix))]
    let builder = std::fs::DirBuilder::new();
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(e),
    }
    check_private_dir(dir)
}

/// The facts `ensure_dir` judges: who owns the directory and its permission bits.
#[cfg(unix)]
fn check_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(dir)?;
    judge_dir(
        dir,
        meta.uid(),
        rustix::process::geteuid().as_raw(),
        meta.mode(),
    )
}

#[cfg(not(unix))]
fn check_private_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Refuses a directory owned by another user or open to the group or others, saying what to do.
pub fn judge_dir(dir: &Path, owner: u32, me: u32, mode: u32) -> Result<()> {
    let shown = dir.display();
    if owner != me {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "the state directory {shown} belongs to user id {owner}, not to you (user id {me}); \
                 set storage.state_dir to a directory of your own, or remove {shown} so that Jumpgate creates it"
            ),
        ));
    }
    if mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "the state directory {shown} can be read by other users (mode {:03o}); \
                 run `chmod 700 {shown}` and try again",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options
}

/// Makes an existing file 0600 (a file an older version created with the default mode).
fn tighten(file: &File) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let _ = file;
    Ok(())
}

/// `bytes` in a unique 0600 temporary file beside `path` (created with `O_EXCL`, never
/// through a symlink), synced, ready to be put in its place.
fn synced_temp(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // tempfile creates it 0600 with O_EXCL under a random name.
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Replaces `path` with `bytes`: a synced temporary file renamed over `path`. A crash leaves
/// the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    synced_temp(path, bytes)?
        .persist(path)
        .map_err(|e| e.error)?;
    Ok(())
}

/// Writes `path` as [`write_atomic`] does, but only if nothing is there yet: the temporary
/// file is linked to `path`, which fails when a file (or a symlink) already exists, so an
/// existing file is never replaced and a crash never leaves half of a new one.
pub fn write_new_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    synced_temp(path, bytes)?
        .persist_noclobber(path)
        .map_err(|e| e.error)?;
    Ok(())
}

/// Opens `path` for appending (and reading), creating it 0600; a symlink is refused.
pub fn open_append(path: &Path) -> Result<File> {
    let file = private(OpenOptions::new().read(true).append(true).create(true)).open(path)?;
    tighten(&file)?;
    Ok(file)
}

/// Opens a lock file, creating it 0600 and leaving its content alone; a symlink is refused.
pub fn open_lock(path: &Path) -> Result<File> {
    let file = private(OpenOptions::new().write(true).create(true).truncate(false)).open(path)?;
    tighten(&file)?;
    Ok(file)
}

/// Creates `path`, 0600, failing if anything (a file or a symlink) is already there.
pub fn create_new(path: &Path) -> Result<File> {
    private(OpenOptions::new().write(true).create_new(true)).open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("meta").mode() & 0o777
    }

    #[test]
    fn reliability_24_the_state_directory_is_created_0700() {
        let home = tempfile::tempdir().expect("dir");
        let dir = home.path().join("a").join("state");
        ensure_dir(&dir).expect("created");
        assert_eq!(mode(&dir), 0o700);
        ensure_dir(&dir).expect("an existing private dir is fine");
    }

    #[test]
    fn reliability_24_a_directory_others_can_read_is_refused() {
        let home = tempfile::tempdir().expect("dir");
        let dir = home.path().join("state");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = ensure_dir(&dir).expect_err("0755 is refused");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("chmod 700"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710)).expect("chmod");
        assert!(ensure_dir(&dir).is_err(), "group access is refused too");
    }

    #[test]
    fn reliability_24_a_directory_owned_by_someone_else_is_refused() {
        let me = rustix::process::geteuid().as_raw();
        let err = judge_dir(Path::new("/x"), me + 1, me, 0o700).expect_err("not mine");
        assert!(err.to_string().contains("storage.state_dir"), "{err}");
        judge_dir(Path::new("/x"), me, me, 0o700).expect("mine");
        // As root (CI), a real directory handed to nobody is refused too.
        if me == 0 {
            let home = tempfile::tempdir().expect("dir");
            let dir = home.path().join("state");
            ensure_dir(&dir).expect("created");
            rustix::fs::chown(&dir, Some(rustix::process::Uid::from_raw(65534)), None)
                .expect("chown to nobody");
            let err = ensure_dir(&dir).expect_err("owned by nobody");
            assert!(err.to_string().contains("65534"), "{err}");
        }
    }

    #[test]
    fn reliability_24_files_are_0600() {
        let home = tempfile::tempdir().expect("dir");
        let replaced = home.path().join("watch.json");
        write_atomic(&replaced, b"{}").expect("write");
        assert_eq!(mode(&replaced), 0o600);
        assert_eq!(std::fs::read(&replaced).expect("read"), b"{}");
        let journal = home.path().join("audit.jsonl");
        std::fs::write(&journal, "old\n").expect("legacy file");
        std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        drop(open_append(&journal).expect("append"));
        assert_eq!(mode(&journal), 0o600, "a legacy file is tightened");
        drop(open_lock(&home.path().join("x.lock")).expect("lock"));
        assert_eq!(mode(&home.path().join("x.lock")), 0o600);
        drop(create_new(&home.path().join("export.csv")).expect("new"));
        assert_eq!(mode(&home.path().join("export.csv")), 0o600);
        assert!(create_new(&home.path().join("export.csv")).is_err());
        // Nothing but the target is left behind.
        let names: Vec<_> = std::fs::read_dir(home.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn reliability_24_a_planted_symlink_is_not_followed() {
        let home = tempfile::tempdir().expect("dir");
        let victim = home.path().join("victim");
        std::fs::write(&victim, "precious").expect("victim");
        for name in ["audit.jsonl", "x.lock", "export.csv"] {
            std::os::unix::fs::symlink(&victim, home.path().join(name)).expect("plant");
        }
        assert!(open_append(&home.path().join("audit.jsonl")).is_err());
        assert!(open_lock(&home.path().join("x.lock")).is_err());
        assert!(create_new(&home.path().join("export.csv")).is_err());
        // Temporary names are unique, so a symlink at an old fixed name is never used.
        for name in ["tokens.tmp", "tokens.json.tmp", "watch.json.tmp"] {
            std::os::unix::fs::symlink(&victim, home.path().join(name)).expect("plant");
        }
        write_atomic(&home.path().join("tokens.json"), b"new").expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    }

    #[test]
    fn reliability_24_a_new_file_never_replaces_one_that_is_there() {
        let home = tempfile::tempdir().expect("dir");
        let config = home.path().join("config.toml");
        write_new_atomic(&config, b"mine").expect("write");
        assert_eq!(mode(&config), 0o600);
        let err = write_new_atomic(&config, b"theirs").expect_err("exists");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&config).expect("read"), b"mine");
        // Nor a symlink planted there, nor what it points to.
        let victim = home.path().join("victim");
        std::fs::write(&victim, "precious").expect("victim");
        let planted = home.path().join("planted.toml");
        std::os::unix::fs::symlink(&victim, &planted).expect("plant");
        assert!(write_new_atomic(&planted, b"x").is_err());
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(home.path()).expect("list").count(), 3);
    }
}
