include!("commands.in");

fn main() {
    // The app's IPC commands, so that capabilities can grant them one by one.
    let manifest = tauri_build::AppManifest::new().commands(NAMES);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .expect("the Tauri build script failed");
}
