//! A stand-in for the RDP and SSH clients the CLI's tests let `jumpgate` start, on every
//! platform (a shell script cannot be one on Windows). The test copies it under the name of
//! the client it plays, and it records how it was started in a file beside itself:
//!
//! - `fake-rdp` and `mstsc`: the `.rdp` file named by its first argument, appended to
//!   `rdp-launches`, and its arguments, one line per start, to `rdp-arguments`;
//! - `fake-ssh`: its arguments, space-separated, one line per start, in `ssh-launches`.

use std::io::Write as _;

fn main() {
    let me = std::env::current_exe().unwrap_or_default();
    let dir = me.parent().map(|d| d.to_path_buf()).unwrap_or_default();
    let name = me
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let append = |file: &str, bytes: &[u8]| {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(file))
            .and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            eprintln!("stand-in {name}: cannot write {file}: {e}");
            std::process::exit(2);
        }
    };
    match name.as_str() {
        "fake-rdp" | "mstsc" => {
            let Some(file) = args.first() else {
                eprintln!("stand-in {name}: no .rdp file given");
                std::process::exit(2);
            };
            match std::fs::read(file) {
                Ok(text) => append("rdp-launches", &text),
                Err(e) => {
                    eprintln!("stand-in {name}: cannot read {file}: {e}");
                    std::process::exit(2);
                }
            }
            append("rdp-arguments", format!("{}\n", args.join(" ")).as_bytes());
        }
        "fake-ssh" => append("ssh-launches", format!("{}\n", args.join(" ")).as_bytes()),
        other => {
            eprintln!("stand-in: started as {other}, which it does not play");
            std::process::exit(2);
        }
    }
}
