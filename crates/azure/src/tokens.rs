//! Tokens at rest, in the OS keychain (RELIABILITY #8).
//!
//! A token set is JSON, split into chunks of at most 1000 characters because Windows limits a
//! credential to 2560 bytes and Entra refresh tokens can be larger. A header entry names the
//! chunks' generation, their count and a checksum. A write puts a new generation's chunks
//! first and switches the header last, so a crash mid-write leaves the old set readable, and
//! a set that does not add up (a chunk missing) reads as absent, never as garbage. Where no
//! keychain runs, a mode-0600 file is used only when the configuration explicitly allows it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who is signed in, from the access token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub upn: String,
    pub oid: String,
    pub tid: String,
    pub name: String,
    /// Every name the token gives the account (`upn`, `preferred_username`, `unique_name`,
    /// `email`): a guest's token names them by their home address, while ARM records the
    /// directory's UPN (`erin_fabrikam.example#EXT#@contoso.example`). Absent from sign-ins
    /// stored before it was kept.
    #[serde(default)]
    pub names: Vec<String>,
}

impl Account {
    /// Whether `requestor`, a name ARM recorded (a JIT request's `requestor`), is this
    /// account: any of its names, or the directory UPN Entra gives a B2B guest for one of
    /// them (`local_domain#EXT#@` any tenant domain). The JIT history gives no object id, so
    /// names are all there is.
    pub fn is(&self, requestor: &str) -> bool {
        let requestor = requestor.trim();
        if requestor.is_empty() {
            return false;
        }
        let guest_home = requestor
            .split_once("#EXT#@")
            .map(|(home, _)| home.to_ascii_lowercase());
        std::iter::once(&self.upn)
            .chain(&self.names)
            .filter(|n| !n.trim().is_empty())
            .any(|name| {
                name.eq_ignore_ascii_case(requestor)
                    || guest_home
                        .as_deref()
                        .is_some_and(|home| home == name.to_ascii_lowercase().replacen('@', "_", 1))
            })
    }
}

/// How the tokens were obtained, so they are renewed the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Browser,
    DeviceCode,
    AzureCli,
}

/// What a sign-in was made for: its refresh token goes to this authority only, for this
/// client, and its tokens are for these audiences (ARM's scope, then Graph's). A configuration
/// that names anything else never gets to use it: one changed by someone else would otherwise
/// have Jumpgate send the refresh token, or an ARM token, wherever it points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// `https://login.microsoftonline.com/{tenant}`.
    pub authority: String,
    pub client_id: String,
    pub audiences: Vec<String>,
}

impl Binding {
    /// What differs from `now`, the configuration's, as "was made for … and the
    /// configuration now names …"; `None` when nothing does.
    pub fn differs(&self, now: &Binding) -> Option<String> {
        let shown = |s: &str| jumpgate_core::text::line(s).into_owned();
        let (what, then, later) = if self.authority != now.authority {
            (
                "the authority",
                shown(&self.authority),
                shown(&now.authority),
            )
        } else if self.client_id != now.client_id {
            (
                "the client id",
                shown(&self.client_id),
                shown(&now.client_id),
            )
        } else if self.audiences != now.audiences {
            (
                "the audiences",
                shown(&self.audiences.join(", ")),
                shown(&now.audiences.join(", ")),
            )
        } else {
            return None;
        };
        Some(format!(
            "was made for {what} {then}, and the configuration now names {later}"
        ))
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    /// Unix seconds, in the token issuer's clock.
    pub expires_at: i64,
    pub refresh_token: Option<String>,
    pub source: Source,
    pub account: Account,
    /// Absent from sign-ins stored before it was kept: those are not used either.
    #[serde(default)]
    pub made_for: Option<Binding>,
}

// Tokens never reach logs, not even through Debug (RELIABILITY #7).
impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("source", &self.source)
            .field("account", &self.account)
            .field("made_for", &self.made_for)
            .finish()
    }
}

const CHUNK: usize = 1000;

/// Where tokens are kept.
#[derive(Debug, Clone)]
pub struct TokenStore {
    service: String,
    key: String,
    file_fallback: Option<PathBuf>,
}

impl TokenStore {
    /// `key` names the sign-in (the tenant id); `file_fallback` is the file to use when no
    /// keychain runs, given only when the user allowed it.
    pub fn new(service: &str, key: &str, file_fallback: Option<PathBuf>) -> TokenStore {
        TokenStore {
            service: service.into(),
            key: key.into(),
            file_fallback,
        }
    }

    pub fn load(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<TokenSet>>> + Send + 'static {
        self.clone().load_owned()
    }

    // Owned receivers keep these futures free of borrowed state, so they are Send for any
    // caller lifetime.
    async fn load_owned(self) -> Result<Option<TokenSet>> {
        let this = self.clone();
        let text = once_more(move || this.read_chunks()).await;
        match text {
            Ok(found) => {
                // The keychain works again. A fallback file was written while it was away, so
                // it is the newest set: it moves into the keychain, and only then is removed.
                if let Some(path) = &self.file_fallback {
                    if let Ok(moved) = std::fs::read_to_string(path) {
                        let this = self.clone();
                        let text = moved.clone();
                        if blocking(move || this.write_chunks(&text)).await.is_ok() {
                            let _ = std::fs::remove_file(path);
                        }
                        return Ok(serde_json::from_str(&moved).ok());
                    }
                }
                Ok(found.and_then(|text| serde_json::from_str(&text).ok()))
            }
            Err(KeychainError::Unavailable(detail)) => match &self.file_fallback {
                Some(path) => Ok(std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())),
                None => Err(no_keychain(&detail)),
            },
            Err(KeychainError::Failed(detail)) => Err(Error::Keychain(format!(
                "the OS keychain failed: {detail}; try again (the sign-in is not written to a file while a keychain exists)"
            ))),
        }
    }

    pub fn save(
        &self,
        tokens: &TokenSet,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let text = serde_json::to_string(tokens).map_err(|e| Error::Other(e.to_string()));
        let this = self.clone();
        async move { this.save_owned(text?).await }
    }

    async fn save_owned(self, text: String) -> Result<()> {
        let this = self.clone();
        let written = once_more({
            let text = text.clone();
            move || this.write_chunks(&text)
        })
        .await;
        match written {
            Ok(()) => {
                // Saved where it belongs: a fallback file from a time without a keychain goes.
                if let Some(path) = &self.file_fallback {
                    let _ = std::fs::remove_file(path);
                }
                Ok(())
            }
            Err(KeychainError::Unavailable(detail)) => match &self.file_fallback {
                Some(path) => write_private(path, &text),
                None => Err(no_keychain(&detail)),
            },
            Err(KeychainError::Failed(detail)) => Err(Error::Keychain(format!(
                "the OS keychain refused to store the sign-in: {detail}"
            ))),
        }
    }

    pub fn delete(&self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        self.clone().delete_owned()
    }

    async fn delete_owned(self) -> Result<()> {
        let this = self.clone();
        let _ = blocking(move || this.delete_chunks()).await;
        if let Some(path) = &self.file_fallback {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    fn entry(&self, user: &str) -> std::result::Result<keyring::Entry, KeychainError> {
        keyring::Entry::new(&self.service, user).map_err(classify)
    }

    fn header_user(&self) -> String {
        self.key.clone()
    }

    /// The name of chunk `i` of the set the header of generation `generation` describes.
    /// Sets stored before generations were kept (`v1`) name their chunks by index alone.
    fn chunk_user(&self, generation: Option<u32>, i: usize) -> String {
        match generation {
            Some(g) => format!("{}#{g}.{i}", self.key),
            None => format!("{}#{i}", self.key),
        }
    }

    fn read_chunks(&self) -> std::result::Result<Option<String>, KeychainError> {
        #[cfg(target_os = "linux")]
        if let Some(found) = self.read_chunks_one_session() {
            return Ok(found);
        }
        self.read_chunks_per_entry()
    }

    /// Reads every entry of this service over one Secret Service session (one key exchange,
    /// then a round trip per entry), instead of keyring's session per entry. `None` when that
    /// is not possible (locked items, no service); the caller then reads entry by entry,
    /// which unlocks or reports as usual.
    #[cfg(target_os = "linux")]
    fn read_chunks_one_session(&self) -> Option<Option<String>> {
        use secret_service::blocking::SecretService;
        use secret_service::EncryptionType;
        let ss = SecretService::connect(EncryptionType::Dh).ok()?;
        let search = ss
            .search_items(std::collections::HashMap::from([(
                "service",
                self.service.as_str(),
            )]))
            .ok()?;
        if !search.locked.is_empty() {
            return None;
        }
        let mut entries = std::collections::HashMap::new();
        for item in &search.unlocked {
            let attributes = item.get_attributes().ok()?;
            if let Some(user) = attributes.get("username") {
                entries.insert(
                    user.clone(),
                    String::from_utf8(item.get_secret().ok()?).ok()?,
                );
            }
        }
        let Some(header) = entries.get(&self.header_user()) else {
            return Some(None);
        };
        let Some(header) = Header::parse(header) else {
            return Some(None);
        };
        let mut text = String::new();
        for i in 0..header.count {
            match entries.get(&self.chunk_user(header.generation, i)) {
                Some(part) => text.push_str(part),
                None => return Some(None),
            }
        }
        Some(header.matches(&text).then_some(text))
    }

    fn read_chunks_per_entry(&self) -> std::result::Result<Option<String>, KeychainError> {
        let Some(header) = self.read_header()? else {
            return Ok(None);
        };
        let mut text = String::new();
        for i in 0..header.count {
            match self
                .entry(&self.chunk_user(header.generation, i))?
                .get_password()
            {
                Ok(part) => text.push_str(&part),
                Err(keyring::Error::NoEntry) => return Ok(None),
                Err(e) if being_deleted(&e) => return Ok(None),
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(header.matches(&text).then_some(text))
    }

    /// The header of the stored set, `None` when there is none or it is not one of ours.
    fn read_header(&self) -> std::result::Result<Option<Header>, KeychainError> {
        match self.entry(&self.header_user())?.get_password() {
            Ok(h) => Ok(Header::parse(&h)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) if being_deleted(&e) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Writes the set so that a crash at any point (of this process, or of the keychain
    /// itself: gnome-keyring's daemon can abort while a client opens a session) leaves
    /// either the old set or the new one readable. The new chunks go under a new generation
    /// first; the header, one item, then switches to them; only then are the old
    /// generation's chunks removed. Until the switch, readers read the old set whole. On
    /// macOS the header is made anew (see [`TokenStore::fresh`]): a crash in that one step
    /// leaves none. Renewals write under the renewal lock; a sign-in saved while another
    /// process renews is not kept apart from it.
    fn write_chunks(&self, text: &str) -> std::result::Result<(), KeychainError> {
        let old = self.read_header()?;
        let generation = old
            .as_ref()
            .and_then(|h| h.generation)
            .map_or(1, |g| g.wrapping_add(1));
        let chunks: Vec<&str> = split(text, CHUNK);
        for (i, part) in chunks.iter().enumerate() {
            self.fresh(&self.chunk_user(Some(generation), i))?
                .set_password(part)
                .map_err(classify)?;
        }
        // Chunks of this generation a longer write, stopped before its header, left behind.
        self.delete_from(Some(generation), chunks.len())?;
        let header = Header {
            generation: Some(generation),
            count: chunks.len(),
            sum: checksum(text),
        };
        self.replaceable(&self.header_user())?
            .set_password(&header.to_string())
            .map_err(classify)?;
        // The old generation: a `v1` set, or the one this header replaced.
        match old {
            Some(h) if h.generation != Some(generation) => self.delete_from(h.generation, 0)?,
            _ => {}
        }
        // And any other a write stopped part-way left, so no old token stays behind.
        self.sweep(Some(generation), true);
        Ok(())
    }

    /// Deletes the chunks of this sign-in, but those of generation `near` when `keep`: on
    /// Linux all of them, found by a search; elsewhere, where a keychain cannot be searched
    /// this way, the generations around `near` and those of a `v1` set. Failures are left for
    /// next time.
    fn sweep(&self, near: Option<u32>, keep: bool) {
        let keep = near.filter(|_| keep);
        #[cfg(target_os = "linux")]
        {
            use secret_service::blocking::SecretService;
            use secret_service::EncryptionType;
            let prefix = format!("{}#", self.key);
            let kept = keep.map(|g| format!("{prefix}{g}."));
            if let Ok(ss) = SecretService::connect(EncryptionType::Dh) {
                if let Ok(found) = ss.search_items(std::collections::HashMap::from([(
                    "service",
                    self.service.as_str(),
                )])) {
                    for item in found.unlocked.iter().chain(&found.locked) {
                        let user = item
                            .get_attributes()
                            .ok()
                            .and_then(|a| a.get("username").cloned());
                        let stale = user.is_some_and(|u| {
                            u.starts_with(&prefix)
                                && kept.as_ref().is_none_or(|k| !u.starts_with(k.as_str()))
                        });
                        if stale {
                            let _ = item.delete();
                        }
                    }
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let around = near.unwrap_or(1);
            for g in around.saturating_sub(2)..=around.saturating_add(1) {
                if Some(g) != keep {
                    let _ = self.delete_from(Some(g), 0);
                }
            }
            let _ = self.delete_from(None, 0);
        }
    }

    /// Deletes chunks `from`, `from + 1`, … of a generation, up to the first that is absent.
    fn delete_from(
        &self,
        generation: Option<u32>,
        from: usize,
    ) -> std::result::Result<(), KeychainError> {
        let mut i = from;
        while self
            .entry(&self.chunk_user(generation, i))?
            .delete_credential()
            .is_ok()
        {
            i += 1;
        }
        Ok(())
    }

    /// The entry for the header, written over in one step where the keychain replaces an
    /// item in place (Secret Service, Credential Manager): there is no moment without a
    /// header. On macOS an item is made anew (see [`TokenStore::fresh`]).
    fn replaceable(&self, user: &str) -> std::result::Result<keyring::Entry, KeychainError> {
        if cfg!(target_os = "macos") {
            self.fresh(user)
        } else {
            self.entry(user)
        }
    }

    /// The entry for `user`, with any item already stored under it deleted, so that the
    /// next write creates the item anew. On macOS, writing to an existing item keeps its
    /// access list: an item another program created first under our service and account
    /// names, with an access list that lets it read, would be reused and read by it. One
    /// that cannot be deleted is not written to.
    fn fresh(&self, user: &str) -> std::result::Result<keyring::Entry, KeychainError> {
        let entry = self.entry(user)?;
        match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(entry),
            Err(e) => Err(classify(e)),
        }
    }

    /// Deletes the set: its chunks first (a header left by a crash then names chunks that are
    /// gone, which reads as absent), any other generation's, then the header.
    fn delete_chunks(&self) -> std::result::Result<(), KeychainError> {
        let generation = self.read_header().ok().flatten().and_then(|h| h.generation);
        if generation.is_some() {
            self.delete_from(generation, 0)?;
        }
        self.sweep(generation, false);
        let _ = self.entry(&self.header_user())?.delete_credential();
        Ok(())
    }
}

/// An entry another process is deleting at this very moment, while it writes the set anew:
/// absent, as a set half written is, to a reader who reads again once the writer is done.
/// Windows reports a credential that is gone as not found; Wine's Credential Manager, kept
/// in its registry, can answer ERROR_KEY_DELETED (1018) instead while the deletion runs.
fn being_deleted(e: &keyring::Error) -> bool {
    #[cfg(windows)]
    if let keyring::Error::PlatformFailure(inner) = e {
        return inner
            .downcast_ref::<keyring::windows::Error>()
            .is_some_and(|code| code.0 == 1018);
    }
    let _ = e;
    false
}

/// Why the keychain was not used (RELIABILITY #8). Only `Unavailable` (there is no keychain
/// to talk to, or it refuses storage) may lead to the file fallback; anything else, such as a
/// timeout or an error from a keychain that runs, is reported and never falls back.
#[derive(Debug)]
enum KeychainError {
    Unavailable(String),
    Failed(String),
}

fn classify(e: keyring::Error) -> KeychainError {
    match e {
        keyring::Error::NoStorageAccess(inner) => KeychainError::Unavailable(inner.to_string()),
        keyring::Error::PlatformFailure(inner) if absent(inner.as_ref()) => {
            KeychainError::Unavailable(inner.to_string())
        }
        other => KeychainError::Failed(other.to_string()),
    }
}

/// A platform failure that means "no keychain here": on Linux, no session bus or no Secret
/// Service on it. Elsewhere a platform failure is never taken for absence.
fn absent(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    #[cfg(target_os = "linux")]
    if let Some(e) = inner.downcast_ref::<secret_service::Error>() {
        return match e {
            secret_service::Error::Unavailable => true,
            // A bus without a Secret Service on it.
            secret_service::Error::ZbusFdo(_) | secret_service::Error::Zbus(_) => {
                let shown = e.to_string();
                shown.contains("ServiceUnknown") || shown.contains("NameHasNoOwner")
            }
            _ => false,
        };
    }
    let _ = inner;
    false
}

fn no_keychain(detail: &str) -> Error {
    Error::Keychain(format!(
        "no OS keychain is available to keep your sign-in ({detail}). Start one (gnome-keyring or KWallet through the Secret Service), or set storage.allow_file_fallback = true to keep tokens in a file only you can read."
    ))
}

/// Runs a keychain call, and on Linux once more 300 ms later if the keychain failed (not if
/// there is none). A keychain daemon that crashed in the middle of the call (gnome-keyring
/// aborts when another client vanishes while opening a session) is started again by the
/// session bus, and the call then goes through. Writes may be repeated: each writes a whole
/// new generation, and the header switches last. Elsewhere a failure is often the person
/// refusing access (the macOS Keychain's prompt), which must not be asked twice.
async fn once_more<T: Send + 'static>(
    f: impl Fn() -> std::result::Result<T, KeychainError> + Send + Sync + 'static,
) -> std::result::Result<T, KeychainError> {
    let f = std::sync::Arc::new(f);
    let first = {
        let f = f.clone();
        blocking(move || f()).await
    };
    match first {
        Err(KeychainError::Failed(detail)) if cfg!(target_os = "linux") => {
            tracing::debug!("the keychain failed ({detail}); trying once more");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            blocking(move || f()).await
        }
        other => other,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn split(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// The header item of a stored set: `v2:GENERATION:COUNT:SUM`, or `v1:COUNT:SUM` as sets
/// were stored before generations were kept.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    generation: Option<u32>,
    count: usize,
    sum: u64,
}

impl Header {
    fn parse(h: &str) -> Option<Header> {
        let mut parts = h.split(':');
        let generation = match parts.next()? {
            "v1" => None,
            "v2" => Some(parts.next()?.parse().ok()?),
            _ => return None,
        };
        let count = parts.next()?.parse().ok()?;
        let sum = u64::from_str_radix(parts.next()?, 16).ok()?;
        (parts.next().is_none() && count <= 64).then_some(Header {
            generation,
            count,
            sum,
        })
    }

    fn matches(&self, text: &str) -> bool {
        checksum(text) == self.sum
    }
}

impl std::fmt::Display for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.generation {
            Some(g) => write!(f, "v2:{g}:{}:{:016x}", self.count, self.sum),
            None => write!(f, "v1:{}:{:016x}", self.count, self.sum),
        }
    }
}

/// FNV-1a: enough to tell a torn write from a whole one.
fn checksum(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The file fallback: a unique 0600 temporary file in the private state directory, renamed
/// over the token file (RELIABILITY #24).
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        crate::private::ensure_dir(dir)
            .map_err(|e| Error::Keychain(format!("cannot use {}: {e}", dir.display())))?;
    }
    crate::private::write_atomic(path, text.as_bytes())
        .map_err(|e| Error::Keychain(format!("cannot write {}: {e}", path.display())))
}

/// Alice's sign-in with these tokens, for tests here and in `session`.
#[cfg(test)]
pub(crate) fn alice_signed_in(access: String, refresh: String, expires_at: i64) -> TokenSet {
    TokenSet {
        access_token: access,
        expires_at,
        refresh_token: Some(refresh),
        source: Source::Browser,
        account: Account {
            upn: "alice@contoso.example".into(),
            oid: "o".into(),
            tid: "t".into(),
            name: "Alice".into(),
            names: Vec::new(),
        },
        made_for: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_on_char_boundaries_and_rejoin() {
        let text = "é".repeat(700) + &"x".repeat(1500);
        let parts = split(&text, CHUNK);
        assert!(parts.iter().all(|p| p.len() <= CHUNK));
        assert_eq!(parts.concat(), text);
        assert!(split("", CHUNK).is_empty());
    }

    #[test]
    fn every_chunk_fits_a_windows_credential() {
        // Windows' Credential Manager keeps a secret as UTF-16, at most 2560 bytes; keyring's
        // windows-native store refuses a larger one. A chunk of any text stays below it.
        for text in [
            "x".repeat(20_000),
            "é".repeat(9_000),
            "\u{1F511}".repeat(5_000),
        ] {
            for part in split(&text, CHUNK) {
                assert!(part.encode_utf16().count() * 2 <= 2560, "{}", part.len());
            }
        }
    }

    #[test]
    fn a_guest_is_known_by_every_name_and_by_the_directory_upn() {
        let erin = Account {
            upn: "erin@fabrikam.example".into(),
            oid: "e".into(),
            tid: "t".into(),
            name: "Erin".into(),
            names: vec![
                "erin@fabrikam.example".into(),
                "Erin@Fabrikam.example".into(),
            ],
        };
        for me in [
            "erin@fabrikam.example",
            "ERIN@fabrikam.example",
            "erin_fabrikam.example#EXT#@contoso.example",
            "Erin_Fabrikam.Example#EXT#@contoso.onmicrosoft.com",
        ] {
            assert!(erin.is(me), "{me}");
        }
        for other in [
            "",
            "alice@contoso.example",
            "erin_fabrikam.example@contoso.example",
            "mallory_fabrikam.example#EXT#@contoso.example",
            "erin_fabrikam.example.evil#EXT#@contoso.example",
        ] {
            assert!(!erin.is(other), "{other}");
        }
        // A sign-in stored before the names were kept still knows its UPN.
        let old = Account {
            names: Vec::new(),
            upn: "alice@contoso.example".into(),
            ..erin
        };
        assert!(old.is("Alice@Contoso.example"));
    }

    #[test]
    fn headers_parse_strictly() {
        let v1 = Header::parse("v1:3:00000000000000ff").expect("v1");
        assert_eq!((v1.generation, v1.count, v1.sum), (None, 3, 255));
        let v2 = Header::parse("v2:7:3:00000000000000ff").expect("v2");
        assert_eq!((v2.generation, v2.count, v2.sum), (Some(7), 3, 255));
        assert_eq!(v2.to_string(), "v2:7:3:00000000000000ff");
        assert_eq!(Header::parse(&v1.to_string()), Some(v1));
        for bad in [
            "",
            "v2:3:ff",
            "v1:x:ff",
            "v1:3",
            "v1:999:ff",
            "v1:3:ff:1",
            "v2:-1:3:ff",
            "v3:1:3:ff",
        ] {
            assert_eq!(Header::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn reliability_08_only_an_absent_keychain_allows_the_file() {
        let unavailable = |e: keyring::Error| matches!(classify(e), KeychainError::Unavailable(_));
        let io = |kind| Box::new(std::io::Error::new(kind, "x"));
        assert!(unavailable(keyring::Error::NoStorageAccess(io(
            std::io::ErrorKind::Other
        ))));
        // Transient or unknown failures of a keychain are reported, never a reason for the file.
        assert!(!unavailable(keyring::Error::PlatformFailure(io(
            std::io::ErrorKind::TimedOut
        ))));
        assert!(!unavailable(keyring::Error::BadEncoding(vec![0xff])));
        assert!(!unavailable(keyring::Error::TooLong("x".into(), 1)));
        #[cfg(target_os = "linux")]
        {
            assert!(unavailable(keyring::Error::PlatformFailure(Box::new(
                secret_service::Error::Unavailable
            ))));
            assert!(!unavailable(keyring::Error::PlatformFailure(Box::new(
                secret_service::Error::Crypto("bad")
            ))));
        }
    }

    /// A sign-in larger than one credential may hold (Windows caps one at 2560 bytes; Entra's
    /// refresh tokens and tokens with many groups pass that) goes through the platform's real
    /// keychain in chunks and comes back whole: Secret Service here, the Credential Manager
    /// in the Windows run (scripts/cross.sh).
    #[tokio::test]
    async fn a_sign_in_larger_than_a_credential_round_trips_through_the_keychain() {
        let store = TokenStore::new(
            &format!("jumpgate-tokens-test-{}", uuid::Uuid::new_v4().simple()),
            "tenant",
            None,
        );
        let big = alice_signed_in("a".repeat(4100), "r\u{e9}".repeat(1500), 1);
        assert!(serde_json::to_string(&big).expect("json").len() > 3 * 2560);
        store.save(&big).await.expect("saved");
        assert_eq!(store.load().await.expect("loaded"), Some(big));
        store.delete().await.expect("deleted");
        assert_eq!(store.load().await.expect("loaded"), None);
    }

    fn a_set(refresh: &str) -> TokenSet {
        alice_signed_in("a".repeat(1500), refresh.repeat(700), 1)
    }

    // The keychain's blocking calls run off the test's runtime, as the store's own do.
    async fn stored(store: &TokenStore, user: &str) -> bool {
        let (store, user) = (store.clone(), user.to_string());
        blocking(move || store.entry(&user).expect("entry").get_password().is_ok()).await
    }

    async fn put(store: &TokenStore, user: String, value: String) {
        let store = store.clone();
        blocking(move || store.entry(&user).expect("entry").set_password(&value))
            .await
            .expect("stored");
    }

    /// A write stopped at any point, here after the new chunks and before the header, leaves
    /// the old set readable; the next write finishes the job and leaves nothing behind. A set
    /// in the layout of earlier versions (`v1`) is read, and rewritten in the new one.
    #[tokio::test]
    async fn a_write_stopped_half_way_leaves_the_old_set_and_old_layouts_are_read() {
        let store = TokenStore::new(
            &format!("jumpgate-tokens-test-{}", uuid::Uuid::new_v4().simple()),
            "tenant",
            None,
        );
        // The layout of earlier versions: `tenant` holds `v1:COUNT:SUM`, chunks `tenant#I`.
        let old = a_set("o");
        let text = serde_json::to_string(&old).expect("json");
        let chunks = split(&text, CHUNK);
        for (i, part) in chunks.iter().enumerate() {
            put(&store, format!("tenant#{i}"), part.to_string()).await;
        }
        let v1 = Header {
            generation: None,
            count: chunks.len(),
            sum: checksum(&text),
        };
        put(&store, "tenant".into(), v1.to_string()).await;
        assert_eq!(store.load().await.expect("loaded"), Some(old.clone()));

        let first = a_set("r");
        store.save(&first).await.expect("saved");
        assert_eq!(store.load().await.expect("loaded"), Some(first.clone()));
        assert!(!stored(&store, "tenant#0").await, "the v1 chunks are gone");
        assert!(stored(&store, "tenant#1.0").await);

        // A longer write of generation 2 that stopped before its header: the set read is
        // still the first, whole.
        let torn = serde_json::to_string(&a_set("t")).expect("json");
        let torn_chunks = split(&torn, CHUNK).len() + 2;
        for i in 0..torn_chunks {
            put(&store, format!("tenant#2.{i}"), "torn".into()).await;
        }
        assert_eq!(store.load().await.expect("loaded"), Some(first));

        // A generation an earlier write left behind, past its header switch.
        put(&store, "tenant#0.0".into(), "stale".into()).await;
        let second = a_set("s");
        store.save(&second).await.expect("saved");
        assert!(
            !stored(&store, "tenant#0.0").await,
            "the stale generation is swept"
        );
        assert_eq!(store.load().await.expect("loaded"), Some(second));
        assert!(
            !stored(&store, "tenant#1.0").await,
            "the first generation is gone"
        );
        assert!(
            !stored(&store, &format!("tenant#2.{}", torn_chunks - 1)).await,
            "and the torn tail"
        );

        put(&store, "tenant#1.0".into(), "stale".into()).await;
        store.delete().await.expect("deleted");
        assert_eq!(store.load().await.expect("loaded"), None);
        for gone in ["tenant", "tenant#2.0", "tenant#1.0"] {
            assert!(
                !stored(&store, gone).await,
                "{gone} is deleted with the sign-in"
            );
        }
    }

    #[tokio::test]
    async fn on_linux_a_failed_keychain_call_is_tried_once_more_and_an_absent_keychain_is_not() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let calls = Arc::new(AtomicUsize::new(0));
        let failing_first = {
            let calls = calls.clone();
            move || match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(KeychainError::Failed(
                    "NoReply: the daemon went away".into(),
                )),
                _ => Ok("read"),
            }
        };
        let tries = if cfg!(target_os = "linux") { 2 } else { 1 };
        let first = once_more(failing_first).await;
        assert_eq!(calls.swap(0, Ordering::SeqCst), tries);
        if tries == 2 {
            assert!(matches!(first, Ok("read")));
        }
        let absent = {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(KeychainError::Unavailable("no bus".into()))
            }
        };
        assert!(matches!(
            once_more(absent).await,
            Err(KeychainError::Unavailable(_))
        ));
        assert_eq!(
            calls.swap(0, Ordering::SeqCst),
            1,
            "no keychain: no second try"
        );
        let broken = {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(KeychainError::Failed("locked".into()))
            }
        };
        assert!(matches!(
            once_more(broken).await,
            Err(KeychainError::Failed(_))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), tries, "once more at most");
    }

    #[test]
    fn only_an_entry_in_the_middle_of_its_deletion_reads_as_absent() {
        #[cfg(windows)]
        {
            let code =
                |c: u32| keyring::Error::PlatformFailure(Box::new(keyring::windows::Error(c)));
            assert!(being_deleted(&code(1018)));
            assert!(!being_deleted(&code(5)));
        }
        assert!(!being_deleted(&keyring::Error::NoEntry));
        assert!(!being_deleted(&keyring::Error::PlatformFailure(Box::new(
            std::io::Error::other("1018")
        ))));
    }

    #[test]
    fn debug_never_shows_tokens() {
        let t = TokenSet {
            access_token: "secret-at".into(),
            expires_at: 1,
            refresh_token: Some("secret-rt".into()),
            source: Source::Browser,
            account: Account {
                upn: "a@b".into(),
                oid: "o".into(),
                tid: "t".into(),
                name: "A".into(),
                names: Vec::new(),
            },
            made_for: None,
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
