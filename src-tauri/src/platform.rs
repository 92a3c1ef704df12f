//! The desktop around the app, through Tauri's plugins so that each platform gets its own
//! mechanism: starting at login (`tauri-plugin-autostart`: an XDG autostart entry, a Windows
//! Run key, a macOS launch agent) and the `jumpgate://` scheme (`tauri-plugin-deep-link`),
//! plus writing exports without overwriting anything.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use jumpgate_core::launch::Os;
use tauri::Manager as _;
use tauri::{AppHandle, Runtime};
use tauri_plugin_autostart::AutoLaunchManager;
use tauri_plugin_deep_link::DeepLinkExt as _;

/// Whether the app starts at login (false where the plugin is not installed, as in the IPC
/// tests' mock app).
pub fn starts_at_login<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.try_state::<AutoLaunchManager>()
        .is_some_and(|a| a.is_enabled().unwrap_or(false))
}

/// Turns starting at login on or off. The entry starts the app with the arguments the plugin
/// was given (`--demo` in demo mode).
pub fn set_start_at_login<R: Runtime>(app: &AppHandle<R>, on: bool) -> Result<(), String> {
    let autostart = app
        .try_state::<AutoLaunchManager>()
        .ok_or("start at login is not available in this build")?;
    let result = if on {
        autostart.enable()
    } else if autostart.is_enabled().unwrap_or(false) {
        autostart.disable()
    } else {
        Ok(())
    };
    result.map_err(|e| e.to_string())
}

/// Whether the app registers `jumpgate://` for this user when it starts.
///
/// - Linux: a package (`.deb`, `.rpm`) registers the scheme in its desktop entry, so an app
///   installed under `/usr` leaves it alone; an AppImage or a build run from anywhere else
///   registers itself (a desktop entry in the user's data folder, made the default with
///   `xdg-mime`).
/// - Windows: the installer registers it; registering again points the user's key at this
///   executable, which keeps a portable copy working.
/// - macOS: the bundle's `Info.plist` declares it; there is nothing to register at run time.
pub fn registers_scheme_at_start(os: Os, exe: &Path, appimage: bool) -> bool {
    match os {
        Os::Linux => appimage || !exe.starts_with("/usr"),
        Os::Windows => true,
        Os::MacOs => false,
    }
}

/// Registers the app for `jumpgate://` links where [`registers_scheme_at_start`] says so.
/// Answers whether it registered.
pub fn register_scheme<R: Runtime>(app: &AppHandle<R>) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let appimage = std::env::var_os("APPIMAGE").is_some();
    if !registers_scheme_at_start(Os::CURRENT, &exe, appimage) {
        return Ok(false);
    }
    app.deep_link()
        .register_all()
        .map(|()| true)
        .map_err(|e| e.to_string())
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
    fn only_unpackaged_linux_builds_and_windows_register_links_at_start() {
        let usr = Path::new("/usr/bin/jumpgate-tray");
        let home = Path::new("/home/alice/bin/jumpgate-tray");
        assert!(!registers_scheme_at_start(Os::Linux, usr, false));
        assert!(registers_scheme_at_start(Os::Linux, usr, true));
        assert!(registers_scheme_at_start(Os::Linux, home, false));
        // "/usrx" is not under /usr.
        assert!(registers_scheme_at_start(
            Os::Linux,
            Path::new("/usrx/jumpgate-tray"),
            false
        ));
        assert!(registers_scheme_at_start(
            Os::Windows,
            Path::new(r"C:\Program Files\Jumpgate\jumpgate-tray.exe"),
            false
        ));
        assert!(!registers_scheme_at_start(
            Os::MacOs,
            Path::new("/Applications/Jumpgate.app/Contents/MacOS/jumpgate-tray"),
            false
        ));
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
}
