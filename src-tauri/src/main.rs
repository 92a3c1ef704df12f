//! `jumpgate-tray`: Jumpgate in the system tray. `--demo` runs the simulator in-process with
//! the demo tenant; `--config PATH` picks a configuration as the CLI does.

// A release build on Windows is a GUI program: no console window, for the app or the
// popover's helper process.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    jumpgate_tray::main()
}
