//! The command lines that start the RDP and SSH clients on each platform.
//!
//! Pure functions, so every platform's quoting is tested on any machine; `jumpgate-azure`'s
//! `launch` module only checks what is installed and spawns what these build. No command line
//! goes through a shell or `cmd.exe`: each argument reaches the program as one argument. Where
//! a program parses its own arguments further (Windows Terminal splits on `;`, macOS Terminal
//! runs a shell command given through AppleScript), the text is escaped for that parser too.

/// The platforms Jumpgate launches clients on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Windows,
    MacOs,
}

impl Os {
    /// The platform this build runs on (the BSDs launch as Linux does).
    pub const CURRENT: Os = if cfg!(windows) {
        Os::Windows
    } else if cfg!(target_os = "macos") {
        Os::MacOs
    } else {
        Os::Linux
    };
}

/// A program and its arguments, spawned without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: String,
    pub args: Vec<String>,
    /// Windows: start the program in a console window of its own (`CREATE_NEW_CONSOLE`).
    pub new_console: bool,
}

impl CommandLine {
    fn new(program: &str, args: impl IntoIterator<Item = String>) -> CommandLine {
        CommandLine {
            program: program.to_string(),
            args: args.into_iter().collect(),
            new_console: false,
        }
    }
}

/// Microsoft's RDP client on macOS ("Windows App", formerly "Microsoft Remote Desktop"), by
/// bundle id so that either name opens it.
pub const MAC_RDP_BUNDLE: &str = "com.microsoft.rdc.macos";

/// The RDP clients tried on Linux, in order, with the arguments before the `.rdp` file.
const LINUX_RDP: [(&str, &[&str]); 3] =
    [("xfreerdp3", &[]), ("xfreerdp", &[]), ("remmina", &["-c"])];

/// Splits a configured command (`launch.rdp_command`, `launch.ssh_command`, …) into words.
fn words(configured: &str, key: &str) -> Result<(String, Vec<String>), String> {
    let mut parts = configured.split_whitespace().map(str::to_string);
    let program = parts.next().ok_or_else(|| format!("{key} is empty"))?;
    Ok((program, parts.collect()))
}

/// The RDP client that opens an `.rdp` file: `launch.rdp_command` when set, else the
/// platform's own (`mstsc` on Windows, Windows App through `open -W` on macOS, which returns
/// when the app exits so the file outlives its reading), else the first of xfreerdp3,
/// xfreerdp and remmina that `installed` finds on Linux.
pub fn rdp(
    os: Os,
    configured: Option<&str>,
    file: &str,
    installed: &dyn Fn(&str) -> bool,
) -> Result<CommandLine, String> {
    let (program, mut args) = match configured {
        Some(cmd) => words(cmd, "launch.rdp_command")?,
        None => match os {
            Os::Windows => ("mstsc".into(), Vec::new()),
            Os::MacOs => (
                "open".into(),
                vec!["-W".into(), "-b".into(), MAC_RDP_BUNDLE.into()],
            ),
            Os::Linux => LINUX_RDP
                .iter()
                .find(|(p, _)| installed(p))
                .map(|(p, a)| (p.to_string(), a.iter().map(|s| s.to_string()).collect()))
                .ok_or_else(|| rdp_missing(os))?,
        },
    };
    // The file is a path of ours, but a path that starts with `-` would read as an option.
    args.push(if file.starts_with('-') {
        format!("./{file}")
    } else {
        file.to_string()
    });
    Ok(CommandLine::new(&program, args))
}

/// What to install when no RDP client is found.
pub fn rdp_missing(os: Os) -> String {
    match os {
        Os::Windows => "mstsc (Remote Desktop Connection) is missing: it ships with Windows; set launch.rdp_command to use another client".into(),
        Os::MacOs => "install Microsoft's Windows App from the App Store to open RDP sessions, or set launch.rdp_command".into(),
        Os::Linux => "no RDP client found: install freerdp2-x11 (xfreerdp) or remmina, or set launch.rdp_command".into(),
    }
}

/// The SSH command itself (`launch.ssh_command` and the arguments for the endpoint), run in
/// the terminal Jumpgate was started from.
pub fn ssh(ssh_command: &str, ssh_args: &[String]) -> Result<CommandLine, String> {
    let (program, mut args) = words(ssh_command, "launch.ssh_command")?;
    args.extend(ssh_args.iter().cloned());
    Ok(CommandLine::new(&program, args))
}

/// The SSH command in a terminal window of its own, for the tray app, which has none:
///
/// - Linux: `launch.terminal_command` (else `x-terminal-emulator`) with `-e` and the command;
/// - Windows: a Windows Terminal tab (`wt.exe new-tab`, with `;` escaped, since Windows
///   Terminal splits its command line there) when `installed("wt.exe")`, else `ssh` in a new
///   console window;
/// - macOS: Terminal, told through AppleScript to run the command, quoted for the shell and
///   then for AppleScript.
pub fn ssh_in_terminal(
    os: Os,
    terminal_command: Option<&str>,
    ssh_command: &str,
    ssh_args: &[String],
    installed: &dyn Fn(&str) -> bool,
) -> Result<CommandLine, String> {
    let ssh = ssh(ssh_command, ssh_args)?;
    let command: Vec<String> = std::iter::once(ssh.program).chain(ssh.args).collect();
    match (os, terminal_command) {
        (Os::Linux, _) | (_, Some(_)) => {
            let terminal = terminal_command.unwrap_or("x-terminal-emulator");
            let (program, mut args) = words(terminal, "launch.terminal_command")?;
            args.push("-e".into());
            args.extend(command);
            Ok(CommandLine::new(&program, args))
        }
        (Os::Windows, None) if installed("wt.exe") => {
            let mut args: Vec<String> = ["new-tab", "--title", "Jumpgate", "--"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(command.iter().map(|a| windows_terminal_escape(a)));
            Ok(CommandLine::new("wt.exe", args))
        }
        (Os::Windows, None) => {
            let mut line = CommandLine::new(&command[0], command[1..].to_vec());
            line.new_console = true;
            Ok(line)
        }
        (Os::MacOs, None) => {
            let shell: Vec<String> = command.iter().map(|a| posix_quote(a)).collect();
            let script = format!(
                "tell application \"Terminal\" to do script \"{}\"",
                applescript_escape(&shell.join(" "))
            );
            Ok(CommandLine::new(
                "osascript",
                [
                    "-e".to_string(),
                    script,
                    "-e".to_string(),
                    "tell application \"Terminal\" to activate".to_string(),
                ],
            ))
        }
    }
}

/// One word for a POSIX shell: single-quoted, with each `'` written as `'\''`.
pub fn posix_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Text for an AppleScript string literal: `\` and `"` escaped, and line breaks (which would
/// end the statement) written as escapes.
pub fn applescript_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out
}

/// An argument for Windows Terminal, which treats an unescaped `;` as the start of another
/// of its own commands.
pub fn windows_terminal_escape(arg: &str) -> String {
    arg.replace(';', "\\;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    fn all(_: &str) -> bool {
        true
    }

    fn ssh_args(target: &str) -> Vec<String> {
        vec!["-p".into(), "22".into(), "--".into(), target.into()]
    }

    /// Splits a POSIX shell command line the way `sh` would for the quoting `posix_quote`
    /// produces (plain words and single-quoted runs, `\'` outside quotes).
    fn sh_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    in_word = true;
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        word.push(q);
                    }
                }
                '\\' => {
                    in_word = true;
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                ' ' => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    // Anything a shell would act on must never appear unquoted.
                    assert!(
                        !";&|$`<>(){}*?!#~\"\n".contains(c),
                        "unquoted {c:?} in {line}"
                    );
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }

    #[test]
    fn rdp_uses_each_platforms_own_client() {
        let f = "/tmp/jumpgate-1/jumpgate.rdp";
        let win = rdp(Os::Windows, None, f, &none).expect("windows");
        assert_eq!(
            (win.program.as_str(), win.args.clone()),
            ("mstsc", vec![f.to_string()])
        );
        let mac = rdp(Os::MacOs, None, f, &none).expect("macos");
        assert_eq!(mac.program, "open");
        assert_eq!(mac.args, ["-W", "-b", MAC_RDP_BUNDLE, f]);
        let linux = rdp(Os::Linux, None, f, &|p| p == "remmina").expect("linux");
        assert_eq!(linux.args, ["-c", f]);
        assert_eq!(
            rdp(Os::Linux, None, f, &all).expect("first").program,
            "xfreerdp3"
        );
        assert!(rdp(Os::Linux, None, f, &none)
            .expect_err("none")
            .contains("freerdp2-x11"));
        let configured = rdp(Os::Windows, Some("C:\\rdp\\client.exe /f"), f, &none).expect("set");
        assert_eq!(configured.program, "C:\\rdp\\client.exe");
        assert_eq!(configured.args, ["/f", f]);
        assert!(rdp(Os::Linux, Some("   "), f, &all).is_err());
        // A file name that looks like an option is made a relative path.
        assert_eq!(
            rdp(Os::Windows, None, "-x.rdp", &none).expect("dash").args,
            ["./-x.rdp"]
        );
    }

    #[test]
    fn no_platform_launches_through_a_shell() {
        let args = ssh_args("alice@host");
        for os in [Os::Linux, Os::Windows, Os::MacOs] {
            for installed in [none as fn(&str) -> bool, all] {
                let lines = [
                    rdp(os, None, "/tmp/a.rdp", &installed),
                    ssh_in_terminal(os, None, "ssh", &args, &installed),
                    ssh("ssh", &args),
                ];
                for line in lines.into_iter().flatten() {
                    let p = line.program.to_ascii_lowercase();
                    assert!(
                        !["cmd", "cmd.exe", "powershell", "pwsh", "sh", "bash"]
                            .contains(&p.as_str()),
                        "{os:?}: {line:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn linux_runs_ssh_in_the_configured_terminal() {
        let line = ssh_in_terminal(
            Os::Linux,
            Some("gnome-terminal --wait"),
            "ssh -i key",
            &ssh_args("host"),
            &none,
        )
        .expect("linux");
        assert_eq!(line.program, "gnome-terminal");
        assert_eq!(
            line.args,
            ["--wait", "-e", "ssh", "-i", "key", "-p", "22", "--", "host"]
        );
        let default =
            ssh_in_terminal(Os::Linux, None, "ssh", &ssh_args("host"), &none).expect("default");
        assert_eq!(default.program, "x-terminal-emulator");
    }

    #[test]
    fn windows_terminal_cannot_be_given_a_second_command() {
        // A user name is checked before it gets here, but `;` must not start a new command
        // of Windows Terminal's even if one slipped through.
        let line = ssh_in_terminal(
            Os::Windows,
            None,
            "ssh",
            &ssh_args("a;new-tab calc.exe@host"),
            &|p| p == "wt.exe",
        )
        .expect("wt");
        assert_eq!(line.program, "wt.exe");
        assert_eq!(&line.args[..4], ["new-tab", "--title", "Jumpgate", "--"]);
        assert!(line
            .args
            .iter()
            .all(|a| !a.contains(';') || a.contains("\\;")));
        assert_eq!(
            line.args.last().map(String::as_str),
            Some("a\\;new-tab calc.exe@host")
        );
        assert!(!line.new_console);
        // Without Windows Terminal: ssh itself, in a console of its own.
        let console =
            ssh_in_terminal(Os::Windows, None, "ssh", &ssh_args("host"), &none).expect("conhost");
        assert_eq!(console.program, "ssh");
        assert_eq!(console.args, ["-p", "22", "--", "host"]);
        assert!(console.new_console);
    }

    #[test]
    fn macos_terminal_gets_one_quoted_command_that_a_user_name_cannot_break_out_of() {
        for user in [
            "alice",
            "o'brien",
            "x\"; do shell script \"touch /tmp/pwned",
            "$(touch /tmp/pwned)",
            "`id`;rm -rf ~",
            "back\\slash",
        ] {
            let target = format!("{user}@host.example");
            let line = ssh_in_terminal(Os::MacOs, None, "ssh -A", &ssh_args(&target), &none)
                .expect("macos");
            assert_eq!(line.program, "osascript");
            assert_eq!(line.args.len(), 4);
            let script = &line.args[1];
            let prefix = "tell application \"Terminal\" to do script \"";
            let body = script
                .strip_prefix(prefix)
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or_else(|| panic!("{script}"));
            // No unescaped quote ends the AppleScript string early.
            let mut unescaped = body.chars();
            let mut literal = String::new();
            while let Some(c) = unescaped.next() {
                match c {
                    '\\' => literal.push(unescaped.next().expect("escape")),
                    '"' => panic!("an unescaped quote in {script}"),
                    c => literal.push(c),
                }
            }
            // And the shell sees exactly the words that were meant.
            assert_eq!(
                sh_words(&literal),
                ["ssh", "-A", "-p", "22", "--", target.as_str()],
                "{literal}"
            );
        }
    }

    #[test]
    fn quoting_helpers() {
        assert_eq!(posix_quote("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(posix_quote(""), "''");
        assert_eq!(posix_quote("a b"), "'a b'");
        assert_eq!(posix_quote("it's"), "'it'\\''s'");
        assert_eq!(applescript_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(windows_terminal_escape("a;b;c"), "a\\;b\\;c");
    }
}
