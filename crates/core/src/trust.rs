//! Whether the system-wide configuration file may configure Jumpgate at all (RELIABILITY #29).
//!
//! The file sets where tokens go (`authority_host`, `arm_endpoint`), which commands run, and
//! which keys users may not override. So it counts only when nobody but the machine's
//! administrators could have written it: the file and every folder above it are owned by root
//! (on Windows by Administrators, SYSTEM or TrustedInstaller), and nobody else can change them.
//! A folder others may add entries to is accepted when they cannot remove or rename what is
//! already there: a sticky folder such as `/tmp` on Unix, or `C:\` and `C:\ProgramData`,
//! whose users may create folders, on Windows. The entry below it must then be trusted itself.
//!
//! The judges are pure, so every platform's rules are tested on every platform; the readers
//! at the bottom are the edge.

use std::path::{Path, PathBuf};

/// One file or folder on the way to the system file, as Unix describes it.
#[derive(Debug, Clone)]
pub struct UnixEntry {
    pub path: PathBuf,
    pub uid: u32,
    pub mode: u32,
    pub kind: Kind,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
}

const STICKY: u32 = 0o1000;

/// `Err` with what is wrong, and the command that fixes it, unless every entry is owned by
/// root and no one else can write it (a sticky folder may be writable: only the owner of an
/// entry in it can remove or rename that entry, and the entry below is checked too).
pub fn judge_unix(chain: &[UnixEntry]) -> Result<(), String> {
    for entry in chain {
        let shown = entry.path.display();
        if entry.uid != 0 {
            return Err(format!(
                "{shown} is owned by uid {} rather than root: run `sudo chown root {shown}`",
                entry.uid
            ));
        }
        let writable = entry.mode & 0o022 != 0;
        let tolerated = match entry.kind {
            // A link's own mode is never used.
            Kind::Link => true,
            Kind::Dir => entry.mode & STICKY != 0,
            Kind::File => false,
        };
        if writable && !tolerated {
            let what = if entry.kind == Kind::Dir {
                "the folder "
            } else {
                ""
            };
            return Err(format!(
                "group or others can write {what}{shown} (mode {:o}): run `sudo chmod go-w {shown}`",
                entry.mode & 0o777
            ));
        }
    }
    Ok(())
}

/// One access rule of a Windows file's DACL.
#[derive(Debug, Clone)]
pub struct WinAce {
    /// The account, as a string SID (`S-1-5-32-545`).
    pub sid: String,
    pub mask: u32,
    /// An allow rule (an explicit deny only takes rights away).
    pub allow: bool,
    /// Applies only to what is created below, not to this entry.
    pub inherit_only: bool,
}

/// One file or folder on the way to the system file, as Windows describes it.
#[derive(Debug, Clone)]
pub struct WinEntry {
    pub path: PathBuf,
    /// The owner, as a string SID.
    pub owner: String,
    /// `None`: a null DACL, which lets everyone do anything.
    pub dacl: Option<Vec<WinAce>>,
    /// An access rule of a kind that cannot be read here (a callback or object rule).
    pub unreadable_rule: bool,
    pub is_dir: bool,
}

const SYSTEM: &str = "S-1-5-18";
const ADMINISTRATORS: &str = "S-1-5-32-544";
const TRUSTED_INSTALLER: &str = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464";

fn trusted_sid(sid: &str) -> bool {
    [SYSTEM, ADMINISTRATORS, TRUSTED_INSTALLER].contains(&sid)
}

const DELETE: u32 = 0x0001_0000;
const WRITE_DAC: u32 = 0x0004_0000;
const WRITE_OWNER: u32 = 0x0008_0000;
const GENERIC_ALL: u32 = 0x1000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;
const FILE_WRITE_DATA: u32 = 0x0002;
const FILE_APPEND_DATA: u32 = 0x0004;
const FILE_WRITE_EA: u32 = 0x0010;
const FILE_DELETE_CHILD: u32 = 0x0040;
const FILE_WRITE_ATTRIBUTES: u32 = 0x0100;

/// Rights that let someone change the file's text, or replace it.
const FILE_CHANGES: u32 = FILE_WRITE_DATA
    | FILE_APPEND_DATA
    | FILE_WRITE_EA
    | FILE_WRITE_ATTRIBUTES
    | DELETE
    | WRITE_DAC
    | WRITE_OWNER
    | GENERIC_ALL
    | GENERIC_WRITE;

/// Rights that let someone remove, rename or take over what a folder holds. Adding an entry
/// (`FILE_ADD_FILE`, `FILE_ADD_SUBDIRECTORY`, and `GENERIC_WRITE`, which maps to them) is not
/// one: the entry below is checked for its own owner.
const FOLDER_CHANGES: u32 = FILE_DELETE_CHILD | DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_ALL;

/// `Err` with what is wrong unless every entry is owned by Administrators, SYSTEM or
/// TrustedInstaller and grants no one else a right to change or replace it.
pub fn judge_windows(chain: &[WinEntry]) -> Result<(), String> {
    for entry in chain {
        let shown = entry.path.display();
        if !trusted_sid(&entry.owner) {
            return Err(format!(
                "{shown} is owned by {} rather than Administrators or SYSTEM: an administrator should run `icacls \"{shown}\" /setowner Administrators`",
                entry.owner
            ));
        }
        if entry.unreadable_rule {
            return Err(format!(
                "{shown} has an access rule of a kind Jumpgate cannot check: an administrator should remove it"
            ));
        }
        let Some(dacl) = &entry.dacl else {
            return Err(format!(
                "{shown} has no access list, so everyone can change it: an administrator should run `icacls \"{shown}\" /reset`"
            ));
        };
        let changes = if entry.is_dir {
            FOLDER_CHANGES
        } else {
            FILE_CHANGES
        };
        let writer = dacl
            .iter()
            .find(|a| a.allow && !a.inherit_only && a.mask & changes != 0 && !trusted_sid(&a.sid));
        if let Some(ace) = writer {
            return Err(format!(
                "{} can change or replace {shown}: an administrator should run `icacls \"{shown}\" /remove {}`",
                ace.sid, ace.sid
            ));
        }
    }
    Ok(())
}

/// `Ok` when the system file at `path` may configure Jumpgate; else why not, with the fix.
pub fn system_file(path: &Path) -> Result<(), String> {
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
    // The path as named (each link on it) and where it leads.
    for named in [path, canonical.as_path()] {
        let chain = read_chain(named)?;
        judge(&chain)?;
    }
    Ok(())
}

#[cfg(unix)]
type Entry = UnixEntry;
#[cfg(unix)]
fn judge(chain: &[UnixEntry]) -> Result<(), String> {
    judge_unix(chain)
}

#[cfg(unix)]
fn read_chain(path: &Path) -> Result<Vec<Entry>, String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut chain = Vec::new();
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let m = std::fs::symlink_metadata(p)
            .map_err(|e| format!("{} cannot be checked ({e})", p.display()))?;
        let kind = if m.file_type().is_symlink() {
            Kind::Link
        } else if m.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        chain.push(UnixEntry {
            path: p.to_path_buf(),
            uid: m.uid(),
            mode: m.mode(),
            kind,
        });
    }
    Ok(chain)
}

#[cfg(windows)]
fn judge(chain: &[WinEntry]) -> Result<(), String> {
    judge_windows(chain)
}

#[cfg(windows)]
fn read_chain(path: &Path) -> Result<Vec<WinEntry>, String> {
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .map(windows::entry)
        .collect()
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod windows {
    //! The owner and access list of a file, through `GetNamedSecurityInfoW`.
    use super::{WinAce, WinEntry};
    use std::os::windows::ffi::OsStrExt as _;
    use std::path::Path;
    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetAce, ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, DACL_SECURITY_INFORMATION, INHERIT_ONLY_ACE,
        OWNER_SECURITY_INFORMATION, PSID,
    };

    const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
    /// The deny rules (plain, object, callback, callback object): they only take rights away.
    const DENY_TYPES: [u8; 4] = [1, 6, 10, 12];

    /// The string form of a SID, such as `S-1-5-18`.
    fn sid_string(sid: PSID) -> Result<String, String> {
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: `sid` points into a security descriptor that outlives this call; `text` is
        // allocated by the call and freed below.
        if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 || text.is_null() {
            return Err("an account cannot be read".into());
        }
        // SAFETY: `text` is a NUL-terminated wide string the call returned.
        let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
        // SAFETY: `len` wide characters were counted above.
        let s = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
        // SAFETY: allocated by ConvertSidToStringSidW with LocalAlloc.
        unsafe { LocalFree(text.cast()) };
        Ok(s)
    }

    pub(super) fn entry(path: &Path) -> Result<WinEntry, String> {
        let shown = path.display();
        let is_dir = std::fs::metadata(path)
            .map_err(|e| format!("{shown} cannot be checked ({e})"))?
            .is_dir();
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
        let mut owner: PSID = std::ptr::null_mut();
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut descriptor = std::ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated; the out pointers point into `descriptor`, which is
        // freed below once they have been read.
        let status = unsafe {
            GetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                &mut owner,
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut descriptor,
            )
        };
        if status != ERROR_SUCCESS {
            return Err(format!(
                "{shown} cannot be checked for its owner (Windows error {status})"
            ));
        }
        let read = || -> Result<WinEntry, String> {
            let owner = sid_string(owner)?;
            let mut unreadable_rule = false;
            let dacl = if dacl.is_null() {
                None
            } else {
                let mut aces = Vec::new();
                // SAFETY: a non-null DACL from GetNamedSecurityInfoW.
                let count = unsafe { (*dacl).AceCount };
                for i in 0..u32::from(count) {
                    let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
                    // SAFETY: `i` is below the ACL's count.
                    if unsafe { GetAce(dacl, i, &mut ace) } == 0 {
                        unreadable_rule = true;
                        continue;
                    }
                    // SAFETY: every ACE starts with an ACE_HEADER.
                    let header = unsafe { &*(ace as *const ACE_HEADER) };
                    let inherit_only = u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0;
                    match header.AceType {
                        ACCESS_ALLOWED_ACE_TYPE => {
                            // SAFETY: the header says this is an ACCESS_ALLOWED_ACE, whose SID
                            // starts at SidStart.
                            let allowed = unsafe { &*(ace as *const ACCESS_ALLOWED_ACE) };
                            let sid = std::ptr::addr_of!(allowed.SidStart) as PSID;
                            aces.push(WinAce {
                                sid: sid_string(sid)?,
                                mask: allowed.Mask,
                                allow: true,
                                inherit_only,
                            });
                        }
                        t if DENY_TYPES.contains(&t) => {}
                        _ if inherit_only => {}
                        _ => unreadable_rule = true,
                    }
                }
                Some(aces)
            };
            Ok(WinEntry {
                path: path.to_path_buf(),
                owner,
                dacl,
                unreadable_rule,
                is_dir,
            })
        };
        let entry = read();
        // SAFETY: allocated by GetNamedSecurityInfoW; nothing points into it any more.
        unsafe { LocalFree(descriptor) };
        entry
    }
}

/// The folder Windows keeps machine-wide program data in (`C:\ProgramData`), from the
/// known-folder API: an environment variable is the user's to change.
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn program_data() -> Option<PathBuf> {
    use std::os::windows::ffi::OsStringExt as _;
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
    let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: `text` receives a buffer the call allocates, freed below whatever the result.
    let status =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut text) };
    let path = if status == 0 && !text.is_null() {
        // SAFETY: a NUL-terminated wide string from the call.
        let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
        // SAFETY: `len` wide characters were counted above.
        let wide = unsafe { std::slice::from_raw_parts(text, len) };
        Some(PathBuf::from(std::ffi::OsString::from_wide(wide)))
    } else {
        None
    };
    // SAFETY: allocated by SHGetKnownFolderPath (CoTaskMemFree accepts null).
    unsafe { CoTaskMemFree(text.cast()) };
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(path: &str, uid: u32, mode: u32, kind: Kind) -> UnixEntry {
        UnixEntry {
            path: PathBuf::from(path),
            uid,
            mode,
            kind,
        }
    }

    fn deployed() -> Vec<UnixEntry> {
        vec![
            unix("/etc/jumpgate/config.toml", 0, 0o100644, Kind::File),
            unix("/etc/jumpgate", 0, 0o40755, Kind::Dir),
            unix("/etc", 0, 0o40755, Kind::Dir),
            unix("/", 0, 0o40755, Kind::Dir),
        ]
    }

    #[test]
    fn a_file_root_deployed_is_trusted() {
        assert_eq!(judge_unix(&deployed()), Ok(()));
    }

    #[test]
    fn anyone_else_who_could_write_the_file_or_a_folder_above_it_is_named_with_the_fix() {
        let cases: [(usize, u32, u32, &str); 5] = [
            (
                0,
                1000,
                0o100644,
                "sudo chown root /etc/jumpgate/config.toml",
            ),
            (0, 0, 0o100664, "sudo chmod go-w /etc/jumpgate/config.toml"),
            (0, 0, 0o100646, "mode 646"),
            (1, 1000, 0o40755, "sudo chown root /etc/jumpgate`"),
            (1, 0, 0o40777, "the folder /etc/jumpgate (mode 777)"),
        ];
        for (at, uid, mode, says) in cases {
            let mut chain = deployed();
            chain[at].uid = uid;
            chain[at].mode = mode;
            let why = judge_unix(&chain).expect_err(says);
            assert!(why.contains(says), "{says}: {why}");
        }
        // A folder high above counts as much as the file's own.
        let mut chain = deployed();
        chain[2].mode = 0o40775;
        assert!(judge_unix(&chain).expect_err("/etc").contains("/etc "));
    }

    #[test]
    fn a_sticky_folder_may_be_writable_but_what_is_in_it_must_be_roots() {
        let mut chain = deployed();
        chain[1] = unix("/tmp", 0, 0o41777, Kind::Dir);
        assert_eq!(judge_unix(&chain), Ok(()));
        chain[0].uid = 1000;
        assert!(judge_unix(&chain).is_err());
        // A link's own mode means nothing, but its owner still counts.
        let mut chain = deployed();
        chain[1] = unix("/etc/jumpgate", 0, 0o120777, Kind::Link);
        assert_eq!(judge_unix(&chain), Ok(()));
        chain[1].uid = 1000;
        assert!(judge_unix(&chain).is_err());
    }

    const USERS: &str = "S-1-5-32-545";
    const AUTHENTICATED: &str = "S-1-5-11";
    const READ_EXECUTE: u32 = 0x0012_00a9;
    const FULL: u32 = 0x001f_01ff;

    fn ace(sid: &str, mask: u32, inherit_only: bool) -> WinAce {
        WinAce {
            sid: sid.into(),
            mask,
            allow: true,
            inherit_only,
        }
    }

    fn entry(path: &str, owner: &str, aces: Vec<WinAce>, is_dir: bool) -> WinEntry {
        WinEntry {
            path: PathBuf::from(path),
            owner: owner.into(),
            dacl: Some(aces),
            unreadable_rule: false,
            is_dir,
        }
    }

    /// What Windows sets up, with an administrator's `Jumpgate` folder and file.
    fn windows_deployed() -> Vec<WinEntry> {
        let admins = || ace(ADMINISTRATORS, FULL, false);
        let system = || ace(SYSTEM, FULL, false);
        vec![
            entry(
                "C:\\ProgramData\\Jumpgate\\config.toml",
                ADMINISTRATORS,
                vec![system(), admins(), ace(USERS, READ_EXECUTE, false)],
                false,
            ),
            entry(
                "C:\\ProgramData\\Jumpgate",
                ADMINISTRATORS,
                vec![
                    system(),
                    admins(),
                    ace(USERS, READ_EXECUTE, false),
                    // Inherited from ProgramData: users may add files and folders.
                    ace(USERS, FILE_WRITE_DATA | FILE_APPEND_DATA, false),
                    // CREATOR OWNER, for what is created below.
                    ace("S-1-3-0", FULL, true),
                ],
                true,
            ),
            entry(
                "C:\\ProgramData",
                SYSTEM,
                vec![
                    system(),
                    admins(),
                    ace(USERS, READ_EXECUTE, false),
                    ace(USERS, FILE_WRITE_DATA | FILE_APPEND_DATA, false),
                    ace("S-1-3-0", FULL, true),
                ],
                true,
            ),
            entry(
                "C:\\",
                TRUSTED_INSTALLER,
                vec![
                    system(),
                    admins(),
                    ace(USERS, READ_EXECUTE, false),
                    ace(AUTHENTICATED, FILE_APPEND_DATA, false),
                    ace(AUTHENTICATED, 0x0013_01bf, true),
                ],
                true,
            ),
        ]
    }

    #[test]
    fn windows_defaults_with_an_administrators_file_are_trusted() {
        assert_eq!(judge_windows(&windows_deployed()), Ok(()));
    }

    #[test]
    fn a_folder_a_standard_user_made_first_is_not_trusted() {
        // The attack: a user creates C:\ProgramData\Jumpgate before any administrator.
        let mut chain = windows_deployed();
        let user = "S-1-5-21-1-2-3-1001";
        chain[1].owner = user.into();
        chain[0].owner = user.into();
        let why = judge_windows(&chain).expect_err("owned by a user");
        assert!(why.contains(user) && why.contains("/setowner"), "{why}");
    }

    #[test]
    fn anyone_else_allowed_to_change_the_file_or_empty_a_folder_is_named() {
        let mut chain = windows_deployed();
        chain[0]
            .dacl
            .as_mut()
            .expect("dacl")
            .push(ace(USERS, FILE_WRITE_DATA, false));
        let why = judge_windows(&chain).expect_err("users write the file");
        assert!(why.contains(USERS) && why.contains("config.toml"), "{why}");
        let mut chain = windows_deployed();
        chain[2]
            .dacl
            .as_mut()
            .expect("dacl")
            .push(ace(USERS, FILE_DELETE_CHILD, false));
        assert!(judge_windows(&chain)
            .expect_err("users delete in ProgramData")
            .contains("C:\\ProgramData:"));
        // A deny rule, or a rule only for what is created below, gives nobody anything here.
        let mut chain = windows_deployed();
        chain[0].dacl.as_mut().expect("dacl").extend([
            ace(USERS, FULL, true),
            WinAce {
                allow: false,
                ..ace(USERS, FULL, false)
            },
        ]);
        assert_eq!(judge_windows(&chain), Ok(()));
        // No access list at all is everyone's; an unreadable rule is not guessed at.
        let mut chain = windows_deployed();
        chain[0].dacl = None;
        assert!(judge_windows(&chain).expect_err("null").contains("/reset"));
        let mut chain = windows_deployed();
        chain[1].unreadable_rule = true;
        assert!(judge_windows(&chain).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_files_on_this_machine_are_read_as_they_are() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let as_root = std::fs::metadata(&file)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        match system_file(&file) {
            Ok(()) => assert!(as_root, "a file not owned by root was trusted"),
            Err(why) => assert!(!as_root, "{why}"),
        }
        if as_root {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
            assert!(system_file(&file).expect_err("0666").contains("chmod go-w"));
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .expect("chmod");
            assert!(system_file(&file)
                .expect_err("folder")
                .contains("the folder"));
            // A link from a trusted place to a file in an untrusted one is not trusted.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
            let open = tempfile::tempdir().expect("dir");
            std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777))
                .expect("chmod");
            let target = open.path().join("real.toml");
            std::fs::write(&target, "").expect("write");
            let link = dir.path().join("linked.toml");
            std::os::unix::fs::symlink(&target, &link).expect("link");
            assert!(system_file(&link).expect_err("link").contains("the folder"));
        }
        assert!(system_file(&dir.path().join("missing")).is_err());
    }
}
