//! The rules for text a person types that Jumpgate sends on: one set, used by the CLI, the
//! tray's IPC commands and the `jumpgate://` link parser, so no front end is laxer than
//! another (RELIABILITY #18, #22).

/// The longest justification, in characters.
pub const MAX_JUSTIFICATION: usize = 500;
/// The longest ticket system or ticket number, in characters.
pub const MAX_TICKET_PART: usize = 100;

/// Why a value was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {why}")]
pub struct Refused {
    pub field: &'static str,
    pub why: String,
}

fn refuse(field: &'static str, why: impl Into<String>) -> Refused {
    Refused {
        field,
        why: why.into(),
    }
}

/// One line of text: at most `max` characters, no controls, no bidi formatting. Returns it
/// trimmed.
pub fn text<'a>(field: &'static str, value: &'a str, max: usize) -> Result<&'a str, Refused> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(refuse(field, format!("is longer than {max} characters")));
    }
    if value.chars().any(crate::text::is_hostile) {
        return Err(refuse(
            field,
            "holds control characters or bidi formatting characters",
        ));
    }
    Ok(value)
}

/// A justification: not empty, at most [`MAX_JUSTIFICATION`] characters, one line.
pub fn justification(value: &str) -> Result<&str, Refused> {
    let value = text("justification", value, MAX_JUSTIFICATION)?;
    if value.is_empty() {
        return Err(refuse("justification", "is empty"));
    }
    Ok(value)
}

/// A ticket's system and number, each one line of at most [`MAX_TICKET_PART`] characters;
/// the number is required (the system may be left empty where the front end allows it).
pub fn ticket<'a>(system: &'a str, number: &'a str) -> Result<(&'a str, &'a str), Refused> {
    let system = text("ticket system", system, MAX_TICKET_PART)?;
    let number = text("ticket number", number, MAX_TICKET_PART)?;
    if number.is_empty() {
        return Err(refuse("ticket", "needs a number"));
    }
    Ok((system, number))
}

/// A ticket as one field holds it: `SYSTEM:NUMBER`, or a number alone (an empty system).
/// Empty is no ticket.
pub fn ticket_text(value: &str) -> Result<Option<(&str, &str)>, Refused> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let (system, number) = value.split_once(':').unwrap_or(("", value));
    ticket(system, number).map(Some)
}

/// The longest user name to connect as, in characters.
pub const MAX_USERNAME: usize = 64;

/// A user name to connect as (`ssh user@host`, the `.rdp` file's user name): letters,
/// digits, `.`, `_` and `-`, not starting with `-` (ssh would read it as an option), at most
/// [`MAX_USERNAME`]. It is put on a command line that a terminal's own shell may read again
/// (macOS Terminal runs it in the user's login shell, which may be fish or zsh), so no
/// character any shell gives a meaning to is allowed.
pub fn username(value: &str) -> Result<&str, Refused> {
    let field = "username";
    if value.is_empty() || value.chars().count() > MAX_USERNAME {
        return Err(refuse(
            field,
            format!("must be 1 to {MAX_USERNAME} characters"),
        ));
    }
    if value.starts_with('-') {
        return Err(refuse(field, "must not start with '-'"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Err(refuse(
            field,
            format!(
                "may hold only letters, digits, '.', '_' and '-', not {:?}: a domain account connects with its plain user name",
                c
            ),
        ));
    }
    Ok(value)
}

/// A VM as a person names it: a name as Azure allows it (1 to 64 letters, digits, `-`, `_`,
/// `.`, starting with a letter or digit), or a virtual machine resource id.
pub fn vm(value: &str) -> Result<&str, Refused> {
    let name_ok = |n: &str| {
        (1..=64).contains(&n.len())
            && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let ok = if value.starts_with('/') {
        let parts: Vec<&str> = value.split('/').collect();
        matches!(
            parts.as_slice(),
            ["", subs, sub, rgs, rg, providers, ns, vms, name]
                if subs.eq_ignore_ascii_case("subscriptions")
                    && uuid::Uuid::parse_str(sub).is_ok()
                    && rgs.eq_ignore_ascii_case("resourceGroups")
                    && (1..=90).contains(&rg.len())
                    && rg.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c))
                    && providers.eq_ignore_ascii_case("providers")
                    && ns.eq_ignore_ascii_case("Microsoft.Compute")
                    && vms.eq_ignore_ascii_case("virtualMachines")
                    && name_ok(name)
        )
    } else {
        name_ok(value)
    };
    if ok {
        Ok(value)
    } else {
        Err(refuse(
            "vm",
            "must be a VM name or a virtual machine resource id",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reliability_22_input_rules_refuse_what_others_would_see_garbled() {
        let long = "x".repeat(MAX_JUSTIFICATION + 1);
        let cases: Vec<(&str, &str)> = vec![
            ("", "is empty"),
            ("   ", "is empty"),
            (&long, "longer than 500"),
            ("ok\ninjected", "control characters"),
            ("ok\u{1b}[2J", "control characters"),
            ("evil\u{202E}txt", "bidi"),
            ("mark\u{200F}", "bidi"),
        ];
        for (input, why) in cases {
            let err = justification(input).expect_err(input);
            assert!(err.to_string().contains(why), "{input:?}: {err}");
        }
        assert_eq!(justification("  Patch night  "), Ok("Patch night"));
        assert_eq!(
            justification(&"é".repeat(MAX_JUSTIFICATION)).map(|j| j.chars().count()),
            Ok(MAX_JUSTIFICATION)
        );
    }

    #[test]
    fn reliability_22_tickets_and_vms_follow_the_same_rules() {
        assert_eq!(ticket("SNOW", "INC1"), Ok(("SNOW", "INC1")));
        assert!(ticket("SNOW", "INC\u{1b}1").is_err());
        assert!(ticket(&"s".repeat(101), "1").is_err());
        assert!(ticket("SNOW", " ").is_err());
        assert_eq!(ticket_text("  "), Ok(None));
        assert_eq!(ticket_text(" SNOW:INC1 "), Ok(Some(("SNOW", "INC1"))));
        assert_eq!(ticket_text("4711"), Ok(Some(("", "4711"))));
        assert!(ticket_text("SNOW:").is_err());
        assert_eq!(vm("jumpbox-01"), Ok("jumpbox-01"));
        for bad in [
            "",
            "../x",
            "a b",
            "a\u{202E}b",
            &"v".repeat(65),
            "/subscriptions/x",
        ] {
            assert!(vm(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_names_hold_nothing_a_shell_or_ssh_reads() {
        for ok in ["alice", "a.lice_1-x", "ADMIN01"] {
            assert_eq!(username(ok), Ok(ok));
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "a b",
            "a;b",
            "$(id)",
            "a'b",
            "a\\b",
            "alice@corp",
            "(x)",
            "é",
        ] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
        assert!(username(&"a".repeat(65)).is_err());
    }
}
