//! `jumpgate-tray`: Jumpgate in the system tray. `--demo` runs the simulator in-process with
//! the demo tenant; `--config PATH` picks a configuration as the CLI does.

fn main() -> std::process::ExitCode {
    jumpgate_tray::main()
}
