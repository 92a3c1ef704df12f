//! `jumpgate://connect?vm=…&port=…&duration=…&justification=…` (RELIABILITY #18): a link
//! that opens a prefilled Connect form and never submits it. Every parameter is checked here,
//! before the app shows anything: the VM by pattern (a name or a VM resource id), the port as
//! a number (the app checks it against the VM's JIT policy), the duration as ISO 8601 or the
//! short form, the justification's length and characters; anything else is refused.

use chrono::Duration;
use serde::Serialize;

/// The longest link accepted, in bytes.
pub const MAX_LINK: usize = 2048;
/// The longest justification a link may carry, in characters: the same as everywhere.
pub const MAX_JUSTIFICATION: usize = crate::input::MAX_JUSTIFICATION;

/// A validated Connect link: what to prefill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectLink {
    /// A VM name or a VM resource id.
    pub vm: String,
    pub port: Option<u16>,
    #[serde(serialize_with = "ser_duration")]
    pub duration: Option<Duration>,
    pub justification: Option<String>,
}

fn ser_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&crate::duration::to_iso(*d)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this jumpgate:// link was refused: {0}")]
pub struct LinkError(pub String);

fn refuse(why: impl Into<String>) -> LinkError {
    LinkError(why.into())
}

/// Parses and checks a link. Unknown or repeated parameters are refused, not ignored.
pub fn parse(link: &str) -> Result<ConnectLink, LinkError> {
    if link.len() > MAX_LINK {
        return Err(refuse(format!("it is longer than {MAX_LINK} bytes")));
    }
    let rest = link
        .strip_prefix("jumpgate://")
        .ok_or_else(|| refuse("it is not a jumpgate:// link"))?;
    let (action, query) = rest.split_once('?').unwrap_or((rest, ""));
    if action.trim_end_matches('/') != "connect" {
        return Err(refuse(format!(
            "'{}' is not something a link can do; only jumpgate://connect is",
            action.chars().take(40).collect::<String>()
        )));
    }
    let mut vm = None;
    let mut port = None;
    let mut duration = None;
    let mut justification = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot_taken = |taken: bool| {
            if taken {
                Err(refuse(format!("'{key}' is given twice")))
            } else {
                Ok(())
            }
        };
        match key.as_ref() {
            "vm" => {
                slot_taken(vm.is_some())?;
                let checked = crate::input::vm(&value).map_err(|e| refuse(e.to_string()))?;
                vm = Some(checked.to_string());
            }
            "port" => {
                slot_taken(port.is_some())?;
                let p: u16 = value
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| refuse("port must be a number from 1 to 65535"))?;
                port = Some(p);
            }
            "duration" => {
                slot_taken(duration.is_some())?;
                let d = crate::duration::parse(&value)
                    .map_err(|_| refuse("duration must be ISO 8601, such as PT1H"))?;
                if d > Duration::days(1) {
                    return Err(refuse("duration must be at most one day"));
                }
                duration = Some(d);
            }
            "justification" => {
                slot_taken(justification.is_some())?;
                // Empty is allowed here: the form asks for it.
                let text = crate::input::text("justification", &value, MAX_JUSTIFICATION)
                    .map_err(|e| refuse(e.to_string()))?;
                justification = Some(text.to_string()).filter(|t| !t.is_empty());
            }
            other => {
                return Err(refuse(format!(
                    "'{}' is not a parameter of jumpgate://connect",
                    other.chars().take(40).collect::<String>()
                )))
            }
        }
    }
    Ok(ConnectLink {
        vm: vm.ok_or_else(|| refuse("vm is missing"))?,
        port,
        duration,
        justification,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "/subscriptions/1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";

    #[test]
    fn a_good_link_prefills_everything() {
        let link = parse("jumpgate://connect?vm=jumpbox-win-01&port=3389&duration=PT2H&justification=Patch%20night%2C%20ticket%204711").expect("valid");
        assert_eq!(
            link,
            ConnectLink {
                vm: "jumpbox-win-01".into(),
                port: Some(3389),
                duration: Some(Duration::hours(2)),
                justification: Some("Patch night, ticket 4711".into()),
            }
        );
        let by_id = parse(&format!(
            "jumpgate://connect/?vm={}",
            ID.replace('/', "%2F")
        ))
        .expect("id");
        assert_eq!(by_id.vm, ID);
        assert_eq!(by_id.port, None);
    }

    #[test]
    fn reliability_18_every_parameter_is_checked() {
        let long = "x".repeat(MAX_JUSTIFICATION + 1);
        let cases: Vec<(String, &str)> = vec![
            ("https://evil.example/connect?vm=a".into(), "not a jumpgate"),
            ("jumpgate://approve?id=1".into(), "only jumpgate://connect"),
            ("jumpgate://connect?port=22".into(), "vm is missing"),
            ("jumpgate://connect?vm=../../etc".into(), "VM name"),
            ("jumpgate://connect?vm=a%20b".into(), "VM name"),
            ("jumpgate://connect?vm=/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v".into(), "VM name"),
            ("jumpgate://connect?vm=/subscriptions/1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/v".into(), "VM name"),
            ("jumpgate://connect?vm=a&port=0".into(), "port must be"),
            ("jumpgate://connect?vm=a&port=70000".into(), "port must be"),
            ("jumpgate://connect?vm=a&port=3389&port=22".into(), "given twice"),
            ("jumpgate://connect?vm=a&duration=forever".into(), "duration must be"),
            ("jumpgate://connect?vm=a&duration=P2D".into(), "at most one day"),
            (format!("jumpgate://connect?vm=a&justification={long}"), "longer than"),
            ("jumpgate://connect?vm=a&justification=ok%0Ainjected".into(), "control characters"),
            ("jumpgate://connect?vm=a&submit=true".into(), "not a parameter"),
            (format!("jumpgate://connect?vm=a&justification={}", "y".repeat(MAX_LINK)), "longer than 2048"),
        ];
        for (link, why) in cases {
            let err = parse(&link).expect_err(&link);
            assert!(err.0.contains(why), "{link}: {err}");
        }
    }

    #[test]
    fn reliability_22_links_refuse_bidi_formatting() {
        for link in [
            "jumpgate://connect?vm=a&justification=evil%E2%80%AEtxt.exe",
            "jumpgate://connect?vm=a&justification=iso%E2%81%A6x%E2%81%A9",
            "jumpgate://connect?vm=a&justification=mark%E2%80%8F",
            "jumpgate://connect?vm=a%E2%80%AE",
        ] {
            let err = parse(link).expect_err(link);
            assert!(
                err.0.contains("bidi") || err.0.contains("VM name"),
                "{link}: {err}"
            );
        }
    }
}
