//! The desktop around the app: starting at login and the `jumpgate://` scheme (XDG desktop
//! entries on Linux), and writing exports without overwriting anything.

use std::io::Write as _;
use std::path::{Path, PathBuf};

const AUTOSTART: &str = "dev.jumpgate.tray.desktop";
const HANDLER: &str = "dev.jumpgate.tray-handler.desktop";

fn autostart_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("autostart").join(AUTOSTART))
}

/// A value for a desktop entry's `Exec` key: quoted, with `"`, `` ` ``, `$` and `\` escaped.
fn exec_arg(arg: &str) -> String {
    let mut out = String::from("\"");
    for c in arg.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn entry(exec: &str, extra: &str) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Jumpgate\nComment=Just-in-time access to jump boxes\nExec={exec}\nIcon=jumpgate\nTerminal=false\n{extra}"
    )
}

fn exe() -> std::io::Result<String> {
    Ok(std::env::current_exe()?.display().to_string())
}

/// Whether the app starts at login.
pub fn starts_at_login() -> bool {
    autostart_file().is_some_and(|f| f.is_file())
}

/// Writes or removes the autostart entry. In demo mode the entry starts the demo.
pub fn set_start_at_login(on: bool, demo: bool) -> std::io::Result<()> {
    let file = autostart_file().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no configuration folder")
    })?;
    autostart(&file, on, &exe()?, demo)
}

fn autostart(file: &Path, on: bool, exe: &str, demo: bool) -> std::io::Result<()> {
    if !on {
        return match std::fs::remove_file(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
    }
    let mut exec = exec_arg(exe);
    if demo {
        exec.push_str(" --demo");
    }
    replace(file, &entry(&exec, "X-GNOME-Autostart-enabled=true\n"))
}

/// Registers the app as the handler of `jumpgate://` links for this user: a desktop entry
/// with the scheme's MIME type, made the default with `xdg-mime` when it is installed. A
/// link then starts the app (or reaches the running one, which checks it).
pub fn register_scheme() -> std::io::Result<PathBuf> {
    let dir = dirs::data_dir()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no data folder"))?
        .join("applications");
    let file = dir.join(HANDLER);
    let text = entry(
        &format!("{} %u", exec_arg(&exe()?)),
        "NoDisplay=true\nMimeType=x-scheme-handler/jumpgate;\n",
    );
    if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
        replace(&file, &text)?;
    }
    let _ = std::process::Command::new("xdg-mime")
        .args(["default", HANDLER, "x-scheme-handler/jumpgate"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    Ok(file)
}

/// Writes `text` to `path` through a temporary file and a rename: a crash leaves the old
/// file or the new one, never half of one.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no folder"))?;
    std::fs::create_dir_all(dir)?;
    jumpgate_azure::private::write_atomic(path, text.as_bytes())
}

/// Writes a new file `stem.ext` in `dir` (`stem-2.ext` and so on when it exists), readable by
/// the user only, and answers its path. Nothing existing is overwritten.
pub fn write_new(dir: &Path, stem: &str, ext: &str, text: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}-{n}.{ext}")
        };
        let path = dir.join(name);
        match jumpgate_azure::private::create_new(&path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{stem}.{ext} and 998 numbered copies exist"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_values_are_quoted_so_a_path_cannot_add_arguments() {
        assert_eq!(exec_arg("/opt/jump gate/app"), "\"/opt/jump gate/app\"");
        assert_eq!(exec_arg("/a\"b$c`d\\e"), "\"/a\\\"b\\$c\\`d\\\\e\"");
    }

    #[test]
    fn exports_never_overwrite() {
        let dir = tempfile::tempdir().expect("dir");
        let a = write_new(dir.path(), "h", "csv", "one").expect("first");
        let b = write_new(dir.path(), "h", "csv", "two").expect("second");
        assert_ne!(a, b);
        assert_eq!(std::fs::read_to_string(&a).expect("a"), "one");
        assert_eq!(std::fs::read_to_string(&b).expect("b"), "two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&b).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn start_at_login_writes_and_removes_an_autostart_entry() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("autostart").join(AUTOSTART);
        autostart(&file, true, "/opt/Jump Gate/jumpgate-tray", true).expect("on");
        let text = std::fs::read_to_string(&file).expect("entry");
        assert!(
            text.contains("Exec=\"/opt/Jump Gate/jumpgate-tray\" --demo\n"),
            "{text}"
        );
        assert!(
            text.starts_with("[Desktop Entry]\nType=Application\n"),
            "{text}"
        );
        autostart(&file, false, "", false).expect("off");
        assert!(!file.exists());
        // Turning it off twice is not an error.
        autostart(&file, false, "", false).expect("off again");
    }
}
